//! Training-step throughput: seconds per full optimizer step (forward, backward, global-norm
//! clip, AdamW with the reference's two groups) and tokens/s (`B·N` / step time), issue #6.
//!
//! ```text
//! cargo build --release --example train_bench
//! ./target/release/examples/train_bench --threads 1 --dropout 0
//! ./target/release/examples/train_bench --threads 2 --dropout 0.1
//! ```
//!
//! The model is the small RAR of the issue by default (C 256, D 4, H 8, I 1024, N 256,
//! V 1024, K 1000, batch 8) with random weights and random tokens/classes; the cost of a step
//! does not depend on their values. Orders are drawn per sample with `rar_core::OrderSampler`
//! at the random-order probability `--ratio` (1 = every order random, the start of the
//! annealing; 0 = raster), class labels are dropped with probability 0.1, exactly as the
//! trainer builds its batches. Batches are built before the clock starts; the timed region is
//! `RarOptimizer::train_step` and the host read of its scalars (which forces the whole step).

use anyhow::{Context, Result, bail};
use burn::tensor::{Int, Tensor, TensorData};
use clap::Parser;
use rar::core::rng::Xoshiro256PlusPlus;
use rar::core::{OrderSampler, SequenceLayout, WarmupCosineLr};
use rar::model::condition::{condition_tensor, drop_class_labels_with_rng};
use rar::model::{BatchOrders, ComputePrecision, RarConfig, RarInput, with_compute_precision};
use rar::train::{AdamWSettings, RarOptimizer};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Measure RAR training-step throughput (forward, backward, clip, AdamW)")]
struct Args {
    /// Model size.
    #[command(flatten)]
    shape: rar::bench::ModelShape,
    /// Samples per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Dropout (both `dropout` and `attn_drop`); the issue compares 0 and 0.1.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Class-label dropout probability.
    #[arg(long, default_value_t = 0.1)]
    label_dropout: f64,
    /// Random-order probability r of the annealing schedule (1 = all orders random).
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
    #[arg(long, default_value = "f32", value_parser = rar::cli::parse_precision)]
    precision: ComputePrecision,
}

/// CPU time of the whole process (all threads, user + system) in seconds, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Less sensitive than wall time to other
/// processes competing for the cores, as long as this one does not use more threads than cores.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15
    // (1-based), in clock ticks of USER_HZ = 100 on Linux.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Builds the input of step `t` the way the trainer does: random tokens and classes, orders
/// from `OrderSampler` at probability `ratio`, class-label dropout from a seeded stream.
fn batch(
    args: &Args,
    config: &RarConfig,
    orders: &OrderSampler,
    t: u64,
    device: &burn::tensor::Device,
) -> Result<RarInput> {
    let (b, n) = (args.batch, args.shape.tokens);
    let mut rng = Xoshiro256PlusPlus::for_stream(args.seed, &[1, t]);
    let tokens: Vec<i64> = (0..b * n)
        .map(|_| (rng.next_f64() * args.shape.codebook as f64) as i64 % args.shape.codebook as i64)
        .collect();
    let classes: Vec<usize> = (0..b)
        .map(|_| (rng.next_f64() * args.shape.classes as f64) as usize % args.shape.classes)
        .collect();
    let layouts = orders
        .sample_batch(t, t * b as u64, b, args.ratio)
        .into_iter()
        .map(|o| SequenceLayout::new(o.order))
        .collect::<rar::core::Result<Vec<_>>>()?;
    let ids = drop_class_labels_with_rng(
        &classes,
        config.class_label_dropout,
        &config.token_space(),
        &mut rng,
    )?;
    Ok(RarInput {
        tokens: Tensor::<2, Int>::from_data(TensorData::new(tokens, [b, n]), device),
        condition: condition_tensor(&ids, device),
        orders: BatchOrders::new(layouts, device)?,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.threads > 0 {
        // burn-flex (and its gemm kernels) run on rayon's global pool, which reads
        // RAYON_NUM_THREADS when it is first used.
        // SAFETY: set at the start of `main`, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string()) };
    }
    if args.batch == 0 || args.steps == 0 {
        bail!("--batch and --steps must be positive");
    }
    if !(0.0..=1.0).contains(&args.ratio) {
        bail!("--ratio must be in [0, 1], got {}", args.ratio);
    }
    let device = rar::device::parse_device(&args.device)?.autodiff();
    let config = args
        .shape
        .config()
        .with_dropout(args.dropout)
        .with_attn_drop(args.dropout)
        .with_class_label_dropout(args.label_dropout);
    let mut model = config.try_init(&device)?;
    let mut optim = RarOptimizer::new(
        &model,
        &AdamWSettings::new(),
        WarmupCosineLr::default(),
        1.0,
    )?;
    let orders = OrderSampler::raster(args.seed, args.shape.tokens)?;
    let threads = match args.threads {
        0 => std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
        n => n.to_string(),
    };
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

    let mut times = Vec::with_capacity(args.steps);
    let mut cpu_times = Vec::with_capacity(args.steps);
    for t in 0..(args.warmup + args.steps) as u64 {
        let input = batch(&args, &config, &orders, t, &device)?;
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        // `train_step` reads the loss and gradient norm back to the host, so the whole step
        // (forward, backward, clip, AdamW update) has run when it returns.
        let (next, stats) =
            with_compute_precision(args.precision, || optim.train_step(model, input))
                .with_context(|| format!("training step {t}"))?;
        model = next;
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_start
            .zip(process_cpu_seconds())
            .map(|(a, b)| b - a)
            .unwrap_or(f64::NAN);
        if t as usize >= args.warmup {
            times.push(elapsed);
            cpu_times.push(cpu);
        }
        println!(
            "step {t:>3}: {elapsed:.3} s (cpu {cpu:.2} s)  loss {:.4}  grad norm {:.4}{}",
            stats.loss,
            stats.grad_norm,
            if (t as usize) < args.warmup {
                "  (warm-up)"
            } else {
                ""
            }
        );
    }
    times.sort_by(f64::total_cmp);
    cpu_times.sort_by(f64::total_cmp);
    let tokens = (args.batch * args.shape.tokens) as f64;
    let best = times[0];
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "train step: best {best:.3} s ({:.0} tokens/s), median {median:.3} s ({:.0} tokens/s), \
         mean {mean:.3} s over {} steps",
        tokens / best,
        tokens / median,
        args.steps
    );
    println!(
        "cpu time per step (all threads): best {:.2} s, median {:.2} s",
        cpu_times[0],
        cpu_times[cpu_times.len() / 2]
    );
    Ok(())
}
