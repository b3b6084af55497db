//! Shared pieces of rar-train's integration tests.

use burn::tensor::Device;
use rar_data::toy::{TOY_CLASSES, TOY_CODEBOOK, TOY_TOKENS};
use rar_model::RarConfig;
use rar_train::{OptimizerConfig, StepMetrics, Trainer, TrainingConfig, toy_training_data};

/// A tiny toy run (1 block of width 32, batch 4, 64 training samples, no dropout) that
/// trains for `steps` optimizer steps and logs every step; tests override what they vary.
#[allow(dead_code)]
pub fn tiny_toy_config(steps: u64) -> TrainingConfig {
    let model = RarConfig::new(32, 1, 2, 64)
        .with_image_seq_len(TOY_TOKENS)
        .with_codebook_size(TOY_CODEBOOK)
        .with_num_classes(TOY_CLASSES)
        .with_dropout(0.0)
        .with_attn_drop(0.0);
    TrainingConfig::new(model, OptimizerConfig::new())
        .with_steps(steps)
        .with_batch_size(4)
        .with_base_lr(3e-3)
        .with_warmup_steps(2)
        .with_train_size(64)
        .with_log_every(1)
}

/// A fresh toy run of `config` on `devices`.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn toy_trainer(config: TrainingConfig, devices: Vec<Device>) -> rar_train::Result<Trainer> {
    let data = toy_training_data(&config)?;
    Trainer::new(config, data, devices)
}

/// The toy run of the newest checkpoint in `dir`.
#[allow(dead_code)]
pub fn resume_toy(dir: &std::path::Path) -> rar_train::Result<Trainer> {
    Trainer::resume(dir, toy_training_data, vec![Device::flex()])
}

/// Trains `config` from scratch on flex and returns the logged losses.
#[allow(dead_code)]
pub fn toy_losses(config: TrainingConfig) -> Vec<f64> {
    toy_losses_on(config, vec![Device::flex()])
}

/// Trains `config` from scratch on `devices` (data parallel when several) and returns the
/// logged losses.
#[allow(dead_code)]
pub fn toy_losses_on(config: TrainingConfig, devices: Vec<Device>) -> Vec<f64> {
    let mut trainer = toy_trainer(config, devices).unwrap();
    losses(&trainer.run(&mut |_: &StepMetrics| {}).unwrap())
}

/// Runs `trainer` until `stop` optimizer steps are done and returns the logged losses.
#[allow(dead_code)]
pub fn losses_until(trainer: &mut Trainer, stop: u64) -> Vec<f64> {
    losses(&trainer.run_until(stop, &mut |_: &StepMetrics| {}).unwrap())
}

/// The losses of a run's metrics.
pub fn losses(history: &[StepMetrics]) -> Vec<f64> {
    history.iter().map(|m| m.loss).collect()
}
