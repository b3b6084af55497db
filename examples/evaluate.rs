//! The ADM evaluator's five numbers — Inception Score, FID, sFID, precision, recall — for a
//! sample set, in Rust (no TensorFlow):
//!
//!     cargo run --release --example evaluate -- \
//!         --reference VIRTUAL_imagenet256_labeled.npz --samples rar_b.npz \
//!         --inception weights-inception-2015-12-05-6726825d.pth --device cuda:0
//!
//! `--samples` is the `.npz` that `sample_imagenet --npz` (or the official sampling script)
//! writes, or a folder of PNGs; `--reference` is the evaluator's reference batch (its stored
//! `mu`/`sigma`/`mu_s`/`sigma_s` are used for FID and sFID, its images for precision and
//! recall). `--inception` takes torch-fidelity's or pytorch-fid's published weights
//! unchanged. Each set's statistics are cached next to it (`<file>.rar-eval.npz`), so a
//! re-run, or the next model against the same reference, skips the network.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rar::eval::{
    CacheOutcome, DEFAULT_BATCH, DistancePrecision, Evaluator, InceptionExtractor, InceptionV3,
    ManifoldEstimator, Stage,
};

#[derive(Parser, Debug)]
#[command(
    about = "FID, sFID, Inception Score, precision and recall as the ADM evaluator computes them"
)]
struct Args {
    /// The reference batch (e.g. VIRTUAL_imagenet256_labeled.npz), or any image set.
    #[arg(long)]
    reference: PathBuf,
    /// The samples: an `.npz` with `arr_0` uint8 [N, H, W, 3], or a folder of PNGs.
    #[arg(long)]
    samples: PathBuf,
    /// InceptionV3 weights: torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`,
    /// pytorch-fid's `pt_inception-2015-12-05-*.pth`, or a `.safetensors` with their keys.
    #[arg(long)]
    inception: PathBuf,
    /// Device: flex, ndarray, wgpu, cuda:N …
    #[arg(long, default_value = "flex")]
    device: String,
    /// Images per network batch.
    #[arg(long, default_value_t = DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Write the report as JSON here [default: <samples>.eval.json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// Recompute everything and write no cache.
    #[arg(long)]
    no_cache: bool,
    /// Precision/recall distances in float32 instead of the evaluator's float16.
    #[arg(long)]
    float32_distances: bool,
}

fn bar(stage: Stage, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} images, {per_sec}, eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(match stage {
        Stage::Reference => "reference",
        Stage::Samples => "samples",
        Stage::PrecisionRecall => "prec/rec",
    });
    bar
}

fn describe(what: &str, outcome: &CacheOutcome) {
    match outcome {
        CacheOutcome::Hit(p) => eprintln!("{what}: statistics from cache {}", p.display()),
        CacheOutcome::Written(p) => eprintln!("{what}: statistics cached in {}", p.display()),
        CacheOutcome::NotWritten(why) => eprintln!("{what}: statistics not cached ({why})"),
        CacheOutcome::Disabled => {}
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    for (flag, path) in [
        ("--reference", &args.reference),
        ("--samples", &args.samples),
        ("--inception", &args.inception),
    ] {
        if !path.exists() {
            bail!("{flag} {}: no such file or folder", path.display());
        }
    }
    if args.inception.is_dir() {
        bail!(
            "--inception {}: is a directory, not a weight file",
            args.inception.display()
        );
    }
    let json = args.json.clone().unwrap_or_else(|| {
        let mut name = args.samples.file_name().unwrap_or_default().to_os_string();
        name.push(".eval.json");
        args.samples.with_file_name(name)
    });
    if json.is_dir() {
        bail!("--json {}: is a directory", json.display());
    }
    let device = rar::device::parse_device(&args.device)?;
    let model = InceptionV3::from_file(&args.inception, &device)
        .with_context(|| format!("loading --inception {}", args.inception.display()))?;
    let evaluator = Evaluator::new(
        InceptionExtractor::new(model, &device),
        Evaluator::weights_id(&args.inception)?,
    )
    .with_batch(args.batch as usize)
    .with_cache(!args.no_cache)
    .with_estimator(ManifoldEstimator {
        distances: if args.float32_distances {
            DistancePrecision::Float32
        } else {
            DistancePrecision::Float16
        },
        ..ManifoldEstimator::default()
    });

    let start = Instant::now();
    let mut current: Option<(Stage, ProgressBar)> = None;
    let report = evaluator.evaluate(&args.reference, &args.samples, |stage, done, total| {
        if current.as_ref().map(|(s, _)| *s) != Some(stage) {
            if let Some((_, old)) = current.take() {
                old.finish();
            }
            current = Some((stage, bar(stage, total)));
        }
        if let Some((_, b)) = &current {
            b.set_position(done as u64);
        }
    });
    if let Some((_, b)) = current.take() {
        b.finish();
    }
    let report = report?;
    describe("reference", &report.reference_cache);
    describe("samples", &report.samples_cache);

    println!("Inception Score: {:.4}", report.inception_score);
    println!("FID: {:.4}", report.fid);
    println!("sFID: {:.4}", report.sfid);
    println!("Precision: {:.4}", report.precision);
    println!("Recall: {:.4}", report.recall);
    println!(
        "({} samples, {} reference images, reference statistics {}, {} distances, {:.1} s)",
        report.samples,
        report.reference_images,
        if report.reference_statistics_stored {
            "stored in the batch"
        } else {
            "computed from its images"
        },
        report.distances,
        start.elapsed().as_secs_f64()
    );
    let text = serde_json::to_string_pretty(&report)?;
    let partial = json.with_extension("json.partial");
    std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &json).with_context(|| format!("writing {}", json.display()))?;
    println!("report: {}", json.display());
    Ok(())
}
