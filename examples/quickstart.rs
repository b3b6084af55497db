//! Quickstart: train a small RAR on the embedded toy dataset (no downloads), sample a
//! class-conditional grid with the KV-cached sampler, and check the samples.
//! `cargo run --release --example quickstart`
//!
//! The model (hidden 128, 3 blocks, 4 heads; 8×8 grids of 8 colours, 10 shape classes) is
//! trained with the reference recipe at toy scale, with the randomness annealed between 10%
//! and 30% of the steps (earlier than the paper's 50%/75%, so a short CPU budget leaves most
//! steps to the raster order sampling uses). It then samples `--per-class` grids per class,
//! writes `quickstart.png` (a row per class) and prints the validation loss and the share of
//! samples the rule-based checker accepts (figures: README.md).

mod common;

use anyhow::{Context, Result};
use burn::module::Module;
use clap::Parser;
use rar::data::toy::{TOY_CLASSES, TOY_SIDE, is_valid_instance};
use rar::model::{ComputePrecision, Rar};
use rar::train::{
    ConsoleProgress, OptimizerConfig, Trainer, TrainingConfig, sample_validity, toy_training_data,
    toy_validation_data, validation_loss,
};
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
    /// Precision of the products: f32, or bf16 over fp32 weights (emulated, slower on CPUs).
    #[arg(long, default_value = "f32", value_parser = common::sampling::parse_precision)]
    precision: ComputePrecision,
    /// Optimizer steps.
    #[arg(long, default_value_t = 2500)]
    steps: u64,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Number of transformer blocks.
    #[arg(long, default_value_t = 3)]
    depth: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Start of the randomness annealing (fraction of the steps).
    #[arg(long, default_value_t = 0.1)]
    anneal_start: f64,
    /// End of the randomness annealing (fraction of the steps).
    #[arg(long, default_value_t = 0.3)]
    anneal_end: f64,
    /// Samples per class in the grid.
    #[arg(long, default_value_t = 10)]
    per_class: usize,
    /// How to sample.
    #[command(flatten)]
    sampling: common::sampling::ToySampling,
    /// Seed of data, orders, initialisation and sampling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print a metrics line every this many steps.
    #[arg(long, default_value_t = 250)]
    log_every: u64,
    /// Also save the trained weights here (burnpack, `.bpk`).
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// Skip training: sample from a `.bpk` of `--save-model` (same size flags).
    #[arg(long)]
    load_model: Option<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "quickstart.png")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let devices = rar::device::parse_devices(&args.device)?;
    // Every setting and output is checked before minutes of training.
    let sampling = args.sampling.options()?;
    sampling.validate()?;
    common::check_output(&args.out, None)?;
    args.save_model
        .iter()
        .try_for_each(|p| common::check_output(p, Some(WeightFormat::Burnpack)))?;
    let config = TrainingConfig::new(
        common::toy_model(args.hidden, args.depth, args.heads),
        OptimizerConfig::new(),
    )
    .with_steps(args.steps)
    .with_batch_size(args.batch_size)
    .with_base_lr(args.lr)
    .with_warmup_steps((args.steps / 20).max(1))
    .with_anneal_start(args.anneal_start)
    .with_anneal_end(args.anneal_end)
    .with_seed(args.seed)
    .with_precision(args.precision)
    .with_val_size(250)
    .with_log_every(args.log_every);
    println!("training RAR ({} parameters)", config.model.num_params());
    let start = Instant::now();
    let model = if let Some(path) = &args.load_model {
        Rar::from_burnpack(path, &config.model, &devices[0])?
    } else {
        let mut trainer = Trainer::new(config.clone(), toy_training_data(&config)?, devices)?;
        trainer.run(&mut ConsoleProgress::new(0, config.steps))?;
        println!("trained in {:.1} s", start.elapsed().as_secs_f64());
        trainer.model().valid()
    };
    let validation = toy_validation_data(&config);
    let (val_loss, val_acc) = validation_loss(&model, &validation, args.batch_size)?;
    println!("validation loss {val_loss:.4} (token accuracy {val_acc:.3}, raster order)");
    if let Some(path) = &args.save_model {
        model.save_burnpack(path)?;
        println!("saved {}", path.display());
    }

    let classes: Vec<usize> = (0..TOY_CLASSES)
        .flat_map(|c| std::iter::repeat_n(c, args.per_class))
        .collect();
    let (grids, validity) = sample_validity(&model, &classes, &sampling, args.seed)?;
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
