//! Training-step throughput: seconds per full optimizer step (forward, backward, global-norm
//! clip, AdamW with the reference's two groups) and tokens/s (`B·N` / step time).
//!
//! ```text
//! cargo build --release --example train_bench
//! ./target/release/examples/train_bench --threads 1 --dropout 0
//! ./target/release/examples/train_bench --threads 2 --dropout 0.1
//! ```
//!
//! Defaults: C 256, D 4, H 8, I 1024, N 256, V 1024, K 1000, batch 8, random weights and
//! records (a step costs the same whatever their values). Inputs come from the trainer's
//! `TrainingInputs` before the clock starts; the timed region is forward, backward and
//! `RarOptimizer::update`, which reads the gradient norm back and so waits for the step.

mod common;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rar::model::ComputePrecision;
use rar::train::{OptimizerConfig, RarOptimizer, TrainingConfig, TrainingInputs};

#[derive(Parser, Debug)]
#[command(about = "Measure RAR training-step throughput (forward, backward, clip, AdamW)")]
struct Args {
    /// Model size.
    #[command(flatten)]
    shape: common::shape::ModelShape,
    /// Samples per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Dropout (both `dropout` and `attn_drop`).
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Class-label dropout probability.
    #[arg(long, default_value_t = 0.1)]
    label_dropout: f64,
    /// Random-order probability r of the annealing schedule (1 = all orders random, 0 = raster).
    #[arg(long, default_value_t = 1.0)]
    ratio: f64,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Compute threads (rayon pool of burn-flex); 0 = rayon's default (all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Random seed of tokens, classes, orders and label dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: flex, ndarray, wgpu, cuda:N … (its autodiff variant is used).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Precision of the matrix products: f32, or bf16 over fp32 weights.
    #[arg(long, default_value = "f32", value_parser = common::sampling::parse_precision)]
    precision: ComputePrecision,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Every step frees and reallocates the same large buffers: keep them in the process.
    rar::allocator::retain_freed_memory();
    common::set_threads(args.threads);
    if args.batch == 0 || args.steps == 0 || !(0.0..=1.0).contains(&args.ratio) {
        bail!("--batch and --steps must be positive and --ratio in [0, 1]");
    }
    let device = rar::device::parse_device(&args.device)?.autodiff();
    let model_config = args.shape.config();
    let model_config = model_config
        .with_dropout(args.dropout)
        .with_attn_drop(args.dropout)
        .with_class_label_dropout(args.label_dropout);
    // r falls linearly from 1 to 0 over the run's steps, so the step (1 − ratio)·steps has
    // r = ratio (to 1e-6).
    const STEPS: u64 = 1_000_000;
    let config = TrainingConfig::new(model_config.clone(), OptimizerConfig::new())
        .with_steps(STEPS)
        .with_anneal_start(0.0)
        .with_anneal_end(1.0)
        .with_seed(args.seed);
    let step = ((1.0 - args.ratio) * STEPS as f64).round() as u64;
    let inputs = TrainingInputs::new(&config)?;
    let mut model = model_config.try_init(&device)?;
    let mut optim = RarOptimizer::new(&model, &config.adamw, config.lr_schedule()?, 1.0)?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "model: {}; batch {}; dropout {}; label dropout {}; random-order ratio {}; \
         threads {threads}; device {} (autodiff); products {:?}",
        args.shape,
        args.batch,
        args.dropout,
        args.label_dropout,
        args.ratio,
        args.device,
        args.precision
    );
    println!("{}", common::bench::cpu_kernels());
    let (mut times, mut cpu_times) = (Vec::new(), Vec::new());
    for t in 0..(args.warmup + args.steps) as u64 {
        let input = inputs.training(
            &args.shape.random_records(args.batch, args.seed, t),
            step,
            &device,
        )?;
        let cpu_start = common::process_cpu_seconds();
        let done = common::bench::train_step(model, &mut optim, input, args.precision)
            .with_context(|| format!("training step {t}"))?;
        model = done.model;
        let elapsed = done.seconds;
        let cpu = cpu_start
            .zip(common::process_cpu_seconds())
            .map_or(f64::NAN, |(a, b)| b - a);
        if t as usize >= args.warmup {
            times.push(elapsed);
            cpu_times.push(cpu);
        }
        let warm = if (t as usize) < args.warmup {
            "  (warm-up)"
        } else {
            ""
        };
        println!(
            "step {t:>3}: {elapsed:.3} s (cpu {cpu:.2} s)  loss {:.4}  grad norm {:.4}{warm}",
            done.loss, done.stats.grad_norm
        );
    }
    let tokens = (args.batch * args.shape.tokens) as f64;
    let (best, median, mean) = common::best_median_mean(&mut times);
    let (cpu_best, cpu_median, _) = common::best_median_mean(&mut cpu_times);
    println!(
        "train step: best {best:.3} s ({:.0} tokens/s), median {median:.3} s ({:.0} tokens/s), \
         mean {mean:.3} s over {} steps",
        tokens / best,
        tokens / median,
        args.steps
    );
    println!("cpu time per step (all threads): best {cpu_best:.2} s, median {cpu_median:.2} s");
    Ok(())
}
