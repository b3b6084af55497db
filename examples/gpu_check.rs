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
use rar::train::{OptimizerConfig, RarOptimizer, StepMetrics, Trainer, TrainingConfig};
use rar::train::{TrainingInputs, toy_training_data};
use serde_json::{Value, json};

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
        let done = common::bench::train_step(&model, &mut optim, input(t)?, ComputePrecision::F32)?;
        model = done.model;
        times.extend((t > 0).then_some(done.seconds));
    }
    let (best, median, _) = common::best_median_mean(&mut times);
    let tokens = (args.train_batch * shape.tokens) as f64;
    report["training"] = json!({
        "batch": args.train_batch, "best_step_s": best, "median_step_s": median,
        "images_per_s": args.train_batch as f64 / median, "tokens_per_s": tokens / median,
    });
    report["bf16_vs_fp32"] = match ComputePrecision::Bf16.check_device(&device) {
        Err(reason) => json!({ "status": "skipped", "reason": reason.to_string() }),
        Ok(()) => {
            let t = args.train_steps as u64 + 1;
            let step = |precision| -> Result<(f64, f64)> {
                let mut optim =
                    RarOptimizer::new(&model, &config.adamw, config.lr_schedule()?, 1.0)?;
                let done = common::bench::train_step(&model, &mut optim, input(t)?, precision)?;
                Ok((done.loss as f64, done.stats.grad_norm))
            };
            let ((loss32, norm32), (loss16, norm16)) =
                (step(ComputePrecision::F32)?, step(ComputePrecision::Bf16)?);
            let (loss_rel, norm_rel) = (rel(loss16, loss32), rel(norm16, norm32));
            // bf16 rounds each product's operands to 8 significant bits (2⁻⁹ ≈ 2e-3).
            let ok = loss_rel <= 1e-2 && norm_rel <= 5e-2;
            json!({ "status": if ok { "ok" } else { "failed" }, "loss_f32": loss32,
                    "loss_bf16": loss16, "loss_rel": loss_rel, "grad_norm_f32": norm32,
                    "grad_norm_bf16": norm16, "grad_norm_rel": norm_rel })
        }
    };
    report["two_devices_vs_accumulation"] = data_parallel(&args.device)?;
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

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

/// A short toy run on two devices against one device accumulating two micro-batches (the
/// same arithmetic; `rar-train`'s `parallel.rs`). CPU backends use one device twice, so that
/// the code path is exercised where there is no second GPU to use.
fn data_parallel(name: &str) -> Result<Value> {
    let pair = if name.starts_with("cuda") || name.starts_with("wgpu") {
        let gpus = rar::device::gpus_like(name);
        if gpus.len() < 2 {
            let reason = format!("{} device(s) of this kind", gpus.len());
            return Ok(json!({ "status": "skipped", "reason": reason }));
        }
        gpus[..2].to_vec()
    } else {
        vec![rar::device::parse_device(name)?; 2]
    };
    let config = TrainingConfig::new(common::toy_model(64, 2, 4), OptimizerConfig::new())
        .with_steps(4)
        .with_warmup_steps(2)
        .with_base_lr(3e-3)
        .with_batch_size(8)
        .with_train_size(64)
        .with_log_every(1);
    let losses = |config: TrainingConfig, devices| -> Result<Vec<f64>> {
        let mut trainer = Trainer::new(config.clone(), toy_training_data(&config)?, devices)?;
        Ok(trainer
            .run(&mut |_: &StepMetrics| {})?
            .iter()
            .map(|m| m.loss)
            .collect())
    };
    let two = losses(config.clone(), pair.clone())?;
    let one = losses(config.with_accum_steps(2), pair[..1].to_vec())?;
    let worst = two
        .iter()
        .zip(&one)
        .map(|(a, b)| rel(*a, *b))
        .fold(0.0, f64::max);
    Ok(
        json!({ "status": if worst <= 1e-4 { "ok" } else { "failed" }, "devices": pair.len(),
               "losses_two_devices": two, "losses_one_device_accumulating": one,
               "worst_loss_rel": worst }),
    )
}
