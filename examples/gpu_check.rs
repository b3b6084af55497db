//! The device half of the one-command GPU check (`scripts/gpu-check.sh`, docs/BACKENDS.md):
//! a bf16 training step against fp32, two devices against one with accumulation, and the
//! throughput of sampling (the paper's Table 5 setting: RAR-B, batch 128, CFG) and of a
//! training step, printed as one JSON report. Random weights, no files, no network.
//!
//! ```text
//! cargo run --release --features cuda --example gpu_check -- --device cuda
//! cargo run --example gpu_check -- --device flex --model small --sample-batch 4 --train-batch 2
//! ```

mod common;

use anyhow::{Result, ensure};
use clap::{Parser, ValueEnum};
use common::shape::ModelShape;
use rar::model::{ComputePrecision, RarPreset};
use rar::sample::{Sampler, SamplingConfig};
use rar::train::{OptimizerConfig, RarOptimizer, TrainingConfig, TrainingInputs};
use serde_json::json;

/// Which model the throughput and precision checks use.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CheckModel {
    /// RAR-B (C 768, D 24, H 16, 261 M parameters), as in the paper's Table 5.
    RarB,
    /// C 64, D 2, H 4 over the same 256 tokens and 1024 codes: the CPU path of CI.
    Small,
}

#[derive(Parser, Debug)]
#[command(about = "Check a device: bf16 vs fp32, two devices vs one, sampling and training speed")]
struct Args {
    /// Device: cuda[:N], wgpu[:N], flex, ndarray.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Model of the throughput and precision checks.
    #[arg(long, value_enum, default_value_t = CheckModel::RarB)]
    model: CheckModel,
    /// Images per sampled batch (with CFG the model runs on twice as many rows).
    #[arg(long, default_value_t = 128)]
    sample_batch: usize,
    /// Samples per training step.
    #[arg(long, default_value_t = 32)]
    train_batch: usize,
    /// Timed training steps (after one untimed step).
    #[arg(long, default_value_t = 3)]
    train_steps: usize,
    /// The parity tests' outcome on this device, as `scripts/gpu-check.sh` passes it in.
    #[arg(long)]
    parity: Option<String>,
}

fn shape(model: CheckModel) -> ModelShape {
    let (hidden, depth, heads) = match model {
        CheckModel::RarB => (768, 24, 16),
        CheckModel::Small => (64, 2, 4),
    };
    ModelShape {
        hidden,
        depth,
        heads,
        mlp: 4 * hidden,
        tokens: 256,
        codebook: 1024,
        classes: 1000,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.sample_batch > 0 && args.train_batch > 0 && args.train_steps > 0);
    let device = rar::device::parse_device(&args.device)?;
    let shape = shape(args.model);
    let mut report = json!({
        "device": args.device, "device_debug": format!("{device:?}"), "model": shape.to_string(),
        "parity_tests": args.parity.clone().unwrap_or_else(|| "not run".into()),
    });

    // Sampling throughput, fp32, KV cache, the RAR-B evaluation guidance.
    let model = shape.config().try_init(&device)?;
    let options = SamplingConfig::preset(RarPreset::B);
    let classes: Vec<usize> = (0..args.sample_batch).map(|i| (i * 7) % 1000).collect();
    let mut sampler = Sampler::new(&model);
    let warm_up = common::bench::time_sampling(&mut sampler, &classes, &options, 0)?;
    let seconds = common::bench::time_sampling(&mut sampler, &classes, &options, 1)?;
    report["sampling"] = json!({
        "batch": args.sample_batch, "guidance": options.guidance.scale(), "first_batch_s": warm_up,
        "batch_s": seconds, "images_per_s": args.sample_batch as f64 / seconds,
        "paper_table5_a100_fp32_images_per_s": 17.0,
    });

    // Training-step throughput (fp32), then bf16 against fp32 from the same trained state.
    let config = TrainingConfig::new(shape.config(), OptimizerConfig::new()).with_steps(1000);
    let inputs = TrainingInputs::new(&config)?;
    let device = device.autodiff();
    let input = |t: u64| inputs.training(&shape.random_records(args.train_batch, 0, t), t, &device);
    let mut model = shape.config().try_init(&device)?;
    let mut optim = RarOptimizer::new(&model, &config.adamw, config.lr_schedule()?, 1.0)?;
    let mut times = Vec::new();
    for t in 0..=args.train_steps as u64 {
        let done = common::bench::train_step(model, &mut optim, input(t)?, ComputePrecision::F32)?;
        model = done.model;
        times.extend((t > 0).then_some(done.seconds));
    }
    let (best, median, _) = common::best_median_mean(&mut times);
    let tokens = (args.train_batch * shape.tokens) as f64;
    report["training"] = json!({
        "batch": args.train_batch, "best_step_s": best, "median_step_s": median,
        "images_per_s": args.train_batch as f64 / median, "tokens_per_s": tokens / median,
    });
    let t = args.train_steps as u64 + 1;
    report["bf16_vs_fp32"] = common::checks::bf16_vs_fp32(&model, &config, input(t)?)?;
    report["two_devices_vs_accumulation"] =
        common::checks::two_devices_vs_accumulation(&args.device)?;
    let failed = ["bf16_vs_fp32", "two_devices_vs_accumulation"]
        .iter()
        .any(|k| report[k]["status"] == "failed")
        || args
            .parity
            .as_deref()
            .is_some_and(|p| p.starts_with("failed"));
    report["ok"] = json!(!failed);
    println!("{}", serde_json::to_string_pretty(&report)?);
    ensure!(!failed, "a check failed (see the report above)");
    Ok(())
}
