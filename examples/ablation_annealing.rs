//! The paper's Table 2 at toy scale: the same budget trained three ways — raster only, random
//! only, and annealed (random → raster between `--anneal-start` and `--anneal-end`, 50%/75% of
//! the steps by default, like 200/300 of 400 epochs) — evaluated with raster sampling (the
//! random-only model also with random-order sampling, as the paper does), printing validation
//! NLL (raster order) and sample validity per variant.
//!
//! ```text
//! cargo run --release --example ablation_annealing   # table and reading: docs/ABLATION.md
//! ```
//!
//! The random-order samples use one uniformly random permutation per sample
//! (`Sampler::sample_in_orders`, permutations from `OrderSampler` with ratio 1).

mod common;

use anyhow::{Context, Result};
use burn::module::Module;
use clap::Parser;
use rar::core::OrderSampler;
use rar::data::toy::{TOY_CLASSES, TOY_TOKENS, is_valid_instance};
use rar::model::Rar;
use rar::sample::{Sampler, SamplingConfig};
use rar::train::{
    OptimizerConfig, StepMetrics, Trainer, TrainingConfig, sample_validity, toy_training_data,
    toy_validation_data,
};
use std::time::Instant;

/// Share of samples drawn in per-sample random orders that the checker accepts.
fn random_order_validity(
    model: &Rar,
    classes: &[usize],
    options: &SamplingConfig,
    seed: u64,
) -> Result<f64> {
    let orders: Vec<Vec<usize>> = OrderSampler::raster(seed, TOY_TOKENS)?
        .sample_batch(0, 0, classes.len(), 1.0)
        .into_iter()
        .map(|o| o.order)
        .collect();
    let ids = Sampler::new(model).sample_in_orders(classes, &orders, options, Some(seed))?;
    let flat = ids
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| anyhow::anyhow!("sampled ids: {e:?}"))
        .context("reading the random-order samples")?;
    let valid = flat
        .chunks(TOY_TOKENS)
        .zip(classes)
        .filter(|(row, c)| {
            let grid: Vec<u32> = row.iter().map(|&t| t as u32).collect();
            is_valid_instance(&grid, **c)
        })
        .count();
    Ok(valid as f64 / classes.len() as f64)
}

#[derive(Parser, Debug)]
#[command(about = "Raster vs random vs annealed training on the toy dataset")]
struct Args {
    /// Device: flex, ndarray, wgpu[:N], cuda[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Optimizer steps per variant.
    #[arg(long, default_value_t = 1500)]
    steps: u64,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Hidden width (depth 3, 4 heads).
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Annealing start of the annealed variant (fraction of the steps).
    #[arg(long, default_value_t = 0.5)]
    anneal_start: f64,
    /// Annealing end of the annealed variant (fraction of the steps).
    #[arg(long, default_value_t = 0.75)]
    anneal_end: f64,
    /// Samples per class for the validity rate.
    #[arg(long, default_value_t = 10)]
    per_class: usize,
    /// How to sample.
    #[command(flatten)]
    sampling: common::sampling::ToySampling,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Every step frees and reallocates the same large buffers: keep them in the process.
    rar::allocator::retain_freed_memory();
    let device = rar::device::parse_device(&args.device)?;
    let base = TrainingConfig::new(common::toy_model(args.hidden, 3, 4), OptimizerConfig::new())
        .with_steps(args.steps)
        .with_batch_size(args.batch_size)
        .with_base_lr(args.lr)
        .with_warmup_steps((args.steps / 20).max(1))
        .with_seed(args.seed)
        .with_val_size(250)
        .with_log_every(args.steps.div_ceil(5).max(1));
    // (name, anneal start, anneal end): r = 1 before start, 0 from end on.
    let variants = [
        ("raster only", 0.0, 0.0),
        ("random only", 1.0, 1.0),
        ("annealed", args.anneal_start, args.anneal_end),
    ];
    let options = args.sampling.options()?;
    let classes: Vec<usize> = (0..TOY_CLASSES)
        .flat_map(|c| std::iter::repeat_n(c, args.per_class))
        .collect();
    let mut rows = Vec::new();
    for (name, start, end) in variants {
        println!("== {name} (anneal {start}→{end} of {} steps)", args.steps);
        let t = Instant::now();
        let config = base.clone().with_anneal_start(start).with_anneal_end(end);
        let data = toy_training_data(&config)?;
        let mut trainer = Trainer::new(config.clone(), data, vec![device.clone()])?;
        trainer.run(&mut |m: &StepMetrics| println!("{m}"))?;
        let (nll, _) = trainer.validate(&toy_validation_data(&config))?;
        let model = trainer.model().valid();
        let (_, validity) = sample_validity(&model, &classes, &options, args.seed)?;
        // The paper evaluates the random-only model in random orders too (Table 2).
        let random = if start >= 1.0 {
            Some(random_order_validity(
                &model, &classes, &options, args.seed,
            )?)
        } else {
            None
        };
        rows.push((name, nll, validity, random, t.elapsed().as_secs_f64()));
    }
    println!();
    println!(
        "| variant | val NLL (raster) | validity (raster sampling) | validity (random-order sampling) | time |"
    );
    println!("|---|---|---|---|---|");
    for (name, nll, validity, random, secs) in rows {
        let random = random.map_or("—".to_string(), |v| format!("{:.1}%", v * 100.0));
        println!(
            "| {name} | {nll:.4} | {:.1}% | {random} | {secs:.0} s |",
            validity * 100.0
        );
    }
    Ok(())
}
