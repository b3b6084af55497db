//! The comparisons of `gpu_check`: bf16 against fp32, and two devices against one device
//! accumulating micro-batches. Each returns a JSON object whose `status` is `ok`, `failed` or
//! `skipped` (with the `reason`).

use anyhow::Result;
use burn::module::Module;
use rar::model::{ComputePrecision, Rar, RarInput};
use rar::train::toy_training_data;
use rar::train::{OptimizerConfig, RarOptimizer, StepMetrics, Trainer, TrainingConfig};
use serde_json::{Value, json};

/// Relative difference `|a − b| / |b|`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

fn status(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

/// One optimizer step of `model` on `input` in fp32 and in bf16 (fresh AdamW state each), on
/// the model's device: loss and gradient norm must agree within bf16's rounding of each
/// product's operands to 8 significant bits (2⁻⁹ ≈ 2e-3 per product). Skipped where the
/// device has no bf16 tensors.
pub fn bf16_vs_fp32(model: &Rar, config: &TrainingConfig, input: RarInput) -> Result<Value> {
    let device = model.devices()[0].clone();
    if let Err(reason) = ComputePrecision::Bf16.check_device(&device) {
        return Ok(json!({ "status": "skipped", "reason": reason.to_string() }));
    }
    let step = |precision| -> Result<(f64, f64)> {
        let mut optim = RarOptimizer::new(model, &config.adamw, config.lr_schedule()?, 1.0)?;
        let done = super::bench::train_step(model.clone(), &mut optim, input.clone(), precision)?;
        Ok((done.loss as f64, done.stats.grad_norm))
    };
    let (loss32, norm32) = step(ComputePrecision::F32)?;
    let (loss16, norm16) = step(ComputePrecision::Bf16)?;
    let (loss_rel, norm_rel) = (rel(loss16, loss32), rel(norm16, norm32));
    Ok(json!({
        "status": status(loss_rel <= 1e-2 && norm_rel <= 5e-2),
        "loss_f32": loss32, "loss_bf16": loss16, "loss_rel": loss_rel,
        "grad_norm_f32": norm32, "grad_norm_bf16": norm16, "grad_norm_rel": norm_rel,
    }))
}

/// A short toy run on two devices against one device accumulating two micro-batches (the
/// same arithmetic; `rar-train`'s `parallel.rs`). CPU backends use one device twice, so that
/// the code path is exercised where there is no second GPU to use.
pub fn two_devices_vs_accumulation(name: &str) -> Result<Value> {
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
    let config = TrainingConfig::new(super::toy_model(64, 2, 4), OptimizerConfig::new())
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
        json!({ "status": status(worst <= 1e-4), "devices": pair.len(),
               "losses_two_devices": two, "losses_one_device_accumulating": one,
               "worst_loss_rel": worst }),
    )
}
