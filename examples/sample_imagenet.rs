//! Class-conditional sampling from a RAR checkpoint: a PNG grid, or the 50k `.npz`
//! evaluation set for the ADM evaluator (spec §5, §7).
//!
//! ```text
//! # a grid of 8 samples with the checkpoint's recommended settings (preset inferred)
//! cargo run --release --example sample_imagenet -- --checkpoint rar_b.bin \
//!     --tokenizer maskgit-vqgan-imagenet-f16-256.bin --classes 1,7,282,604,724,179,751,404 \
//!     --grid samples.png --device cuda:0
//!
//! # the official RAR-B evaluation set (50 per class × 1000 classes) for the ADM evaluator
//! cargo run --release --example sample_imagenet -- --checkpoint rar_b.bin \
//!     --tokenizer maskgit-vqgan-imagenet-f16-256.bin --npz rar_b.npz --device cuda:0
//! ```
//!
//! Guidance, power and temperature default to the preset's recommended values (RAR-B: G 16,
//! p 2.75, τ 1.0; L: 15.5 / 2.5 / 1.02; XL: 6.9 / 1.5 / 1.02; XXL: 8.0 / 1.2 / 1.02).

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rar::core::{GuidanceSchedule, ScanOrder};
use rar::model::{Rar, RarConfig, RarPreset};
use rar::sample::{EvalSet, Sampler, SamplingOptions, write_eval_npz};
use rar::vq::Tokenizer;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Sample images from a RAR checkpoint")]
struct Args {
    /// Generator checkpoint (.bin from the official release, .safetensors or .bpk).
    #[arg(long)]
    checkpoint: PathBuf,
    /// MaskGIT-VQGAN tokenizer weights (.bin or .safetensors).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Model preset (rar-b, rar-l, rar-xl, rar-xxl); inferred from the checkpoint when absent.
    #[arg(long)]
    preset: Option<String>,
    /// A reference-format config.json instead of a preset (e.g. for small custom models).
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Comma-separated class ids for the grid.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,7,282,604,724,179,751,404"
    )]
    classes: Vec<usize>,
    /// Guidance scale G (0 = off). Default: the preset's.
    #[arg(long)]
    guidance: Option<f32>,
    /// Guidance power p of the power-cosine schedule. Default: the preset's.
    #[arg(long)]
    guidance_pow: Option<f32>,
    /// Softmax temperature. Default: the preset's.
    #[arg(long)]
    temperature: Option<f32>,
    /// Keep only the k most likely tokens at each step.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling mass.
    #[arg(long)]
    top_p: Option<f32>,
    /// Generation order (row-major for the released models).
    #[arg(long, default_value = "row-major")]
    order: ScanOrder,
    /// Seed (same seed, same backend → same images).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the samples as a PNG grid here.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Also write every sample as its own PNG into this directory (`{index:03}_class{c}.png`).
    #[arg(long)]
    png_dir: Option<PathBuf>,
    /// Grid columns (default: up to 8 per row).
    #[arg(long)]
    cols: Option<usize>,
    /// Write the evaluation set (per-class × all classes) as an ADM `.npz` here (resumable).
    #[arg(long)]
    npz: Option<PathBuf>,
    /// Images per class in the evaluation set.
    #[arg(long, default_value_t = 50)]
    per_class: usize,
    /// Images per batch in `--npz` mode.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Device: flex, ndarray, wgpu, cuda:N …
    #[arg(long, default_value = "flex")]
    device: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.grid.is_none() && args.png_dir.is_none() && args.npz.is_none() {
        bail!("nothing to do: give --grid, --png-dir and/or --npz");
    }
    let device = rar::device::parse_device(&args.device)?;
    let config = match (&args.preset, &args.config) {
        (Some(name), _) => Some(
            RarPreset::from_name(name)
                .with_context(|| {
                    format!("unknown preset '{name}' (rar-b, rar-l, rar-xl, rar-xxl)")
                })?
                .config(),
        ),
        (_, Some(path)) => Some(RarConfig::from_reference_json(path)?),
        _ => None,
    };
    let loaded = Rar::from_checkpoint(&args.checkpoint, config.as_ref(), &device)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    let model = loaded.model;
    let recommended = loaded.preset.unwrap_or(RarPreset::B).sampling();
    println!(
        "generator: {} ({}, {:.1} M parameters)",
        args.checkpoint.display(),
        loaded.preset.map_or("custom config", |p| p.name()),
        loaded.config.num_params() as f64 / 1e6
    );
    let (tokenizer, _) = Tokenizer::from_file(&args.tokenizer, &device)
        .with_context(|| format!("loading {}", args.tokenizer.display()))?;

    let options = SamplingOptions {
        guidance: GuidanceSchedule::power_cosine(
            args.guidance.unwrap_or(recommended.guidance_scale),
            args.guidance_pow.unwrap_or(recommended.guidance_power),
        )?,
        temperature: args.temperature.unwrap_or(recommended.temperature),
        top_k: args.top_k,
        top_p: args.top_p,
        order: args.order,
        use_cache: true,
    };
    println!(
        "sampling: guidance {:?}, temperature {}, top-k {:?}, top-p {:?}, order {}",
        options.guidance, options.temperature, options.top_k, options.top_p, options.order
    );
    let mut sampler = Sampler::new(&model);

    if args.grid.is_some() || args.png_dir.is_some() {
        let start = Instant::now();
        let tokens = sampler.sample(&args.classes, &options, Some(args.seed))?;
        let images = tokenizer.decode_to_images(tokens)?;
        println!(
            "sampled and decoded {} images in {:.2} s",
            images.len(),
            start.elapsed().as_secs_f64()
        );
        if let Some(grid) = &args.grid {
            let cols = args.cols.unwrap_or(images.len().min(8));
            let rows = images.len().div_ceil(cols);
            rar::vq::write_png_grid(&images, rows, cols, grid)?;
            println!("wrote {}", grid.display());
        }
        if let Some(dir) = &args.png_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (i, (image, class)) in images.iter().zip(&args.classes).enumerate() {
                let path = dir.join(format!("{i:03}_class{class}.png"));
                image
                    .save(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("wrote {} PNGs to {}", images.len(), dir.display());
        }
    }

    if let Some(npz) = &args.npz {
        let set = EvalSet {
            per_class: args.per_class,
            num_classes: loaded.config.num_classes,
            batch_size: args.batch_size,
            seed: args.seed,
        };
        let bar = ProgressBar::new(set.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}")
                .expect("valid progress template"),
        );
        let path = write_eval_npz(&mut sampler, &tokenizer, &options, &set, npz, |done, _| {
            bar.set_position(done as u64)
        })?;
        bar.finish();
        println!("wrote {} ({} images)", path.display(), set.len());
    }
    Ok(())
}
