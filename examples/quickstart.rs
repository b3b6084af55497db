//! Quickstart: train a small RAR on the embedded toy dataset (no downloads), sample a
//! class-conditional grid with the KV-cached sampler, and check the samples.
//! `cargo run --release --example quickstart`
//!
//! The model (hidden 128, 3 blocks, 4 heads; 8×8 grids of 8 colours, 10 shape classes) is
//! trained with the reference recipe at toy scale, with the randomness annealed between 10%
//! and 30% of the steps (earlier than the paper's 50%/75%, so a short CPU budget leaves most
//! steps to the raster order sampling uses). It then samples `--per-class` grids per class,
//! writes `quickstart.png` (a row per class) and prints the validation loss and the share of
//! samples the rule-based checker accepts (figures: README.md). The weights are saved as
//! `quickstart.bpk` (and its config as `quickstart.json`) for `--load-model` and for the
//! `serve` example.

mod common;

use anyhow::{Context, Result};
use clap::Parser;
use rar::data::toy::{TOY_CLASSES, TOY_SIDE, is_valid_instance};
use rar::train::{sample_validity, toy_validation_data, validation_loss};
use rar::weights::WeightFormat;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Train a small RAR on the embedded toy dataset and sample from it")]
struct Args {
    /// Device (flex, ndarray, wgpu[:N], cuda[:N]); a list (`cuda:0,cuda:1`) trains
    /// data-parallel.
    #[arg(long, default_value = "flex")]
    device: String,
    /// The model's size and training recipe.
    #[command(flatten)]
    training: common::toy::ToyTraining,
    /// Samples per class in the grid.
    #[arg(long, default_value_t = 10)]
    per_class: usize,
    /// How to sample.
    #[command(flatten)]
    sampling: common::sampling::ToySampling,
    /// Save the trained weights here (burnpack, with the model config beside it as `.json`):
    /// `serve` and `--load-model` use them.
    #[arg(long, default_value = common::toy::DEFAULT_TOY_MODEL)]
    save_model: PathBuf,
    /// Do not save the trained weights.
    #[arg(long)]
    no_save: bool,
    /// Skip training: sample from a `.bpk` saved by an earlier run.
    #[arg(long)]
    load_model: Option<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "quickstart.png")]
    out: PathBuf,
    /// Decode implementation of the sampling.
    #[command(flatten)]
    decoder: common::decoder::DecoderArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Every step frees and reallocates the same large buffers: keep them in the process.
    rar::allocator::retain_freed_memory();
    let devices = rar::device::parse_devices(&args.device)?;
    // Every setting and output is checked before minutes of training.
    let sampling = args.sampling.options()?;
    sampling.validate()?;
    common::check_output(&args.out, None)?;
    let save = (!args.no_save && args.load_model.is_none()).then_some(&args.save_model);
    save.iter()
        .try_for_each(|p| common::check_output(p, Some(WeightFormat::Burnpack)))?;
    let config = args.training.config();
    let start = Instant::now();
    let model = match &args.load_model {
        Some(path) => common::toy::load_toy(path, &config.model, &devices[0])?,
        None => args.training.train(devices)?,
    };
    let validation = toy_validation_data(&config);
    let (val_loss, val_acc) = validation_loss(&model, &validation, config.batch_size)?;
    println!("validation loss {val_loss:.4} (token accuracy {val_acc:.3}, raster order)");
    if let Some(path) = save {
        common::toy::save_toy(&model, path)?;
        println!(
            "saved {} and {} (serve them: cargo run --release --example serve)",
            path.display(),
            common::toy::config_path(path).display()
        );
    }

    let classes: Vec<usize> = (0..TOY_CLASSES)
        .flat_map(|c| std::iter::repeat_n(c, args.per_class))
        .collect();
    let first_device = args.device.split(',').next().unwrap_or("flex");
    let packed = args.decoder.pack(&model, first_device)?;
    let decoder = common::decoder::decoder(&model, packed.as_ref())?;
    let (grids, validity) = sample_validity(decoder, &classes, &sampling, config.seed)?;
    let per_class: Vec<String> = (0..TOY_CLASSES)
        .map(|c| {
            let ok = grids
                .iter()
                .zip(&classes)
                .filter(|(g, k)| **k == c && is_valid_instance(g, c));
            format!("{}/{}", ok.count(), args.per_class)
        })
        .collect();
    println!("valid samples per class: {}", per_class.join(" "));
    let (w, h, rgb) = rar::data::render_grid(&grids, TOY_SIDE, args.per_class.max(1), 4);
    let image = image::RgbImage::from_raw(w, h, rgb).context("grid buffer")?;
    rar::sample::write_png_grid(&[image], 1, 1, &args.out)?;
    println!("wrote {}", args.out.display());
    println!(
        "validation loss {val_loss:.4} | sample validity {:.1}% | total {:.1} s",
        validity * 100.0,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
