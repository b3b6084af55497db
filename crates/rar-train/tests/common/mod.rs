//! Shared pieces of rar-train's integration tests.

use burn::tensor::Device;
use rar_model::RarConfig;
use rar_train::toy::{TOY_CLASSES, TOY_CODEBOOK, TOY_TOKENS};
use rar_train::{AdamWSettings, ToyTrainer, ToyTrainingConfig};

/// A tiny toy run (1 block of width 32, batch 4, 64 training samples, no dropout) that
/// trains for `steps` optimizer steps and logs every step; tests override what they vary.
pub fn tiny_toy_config(steps: u64) -> ToyTrainingConfig {
    let model = RarConfig::new(32, 1, 2, 64)
        .with_image_seq_len(TOY_TOKENS)
        .with_codebook_size(TOY_CODEBOOK)
        .with_num_classes(TOY_CLASSES)
        .with_dropout(0.0)
        .with_attn_drop(0.0);
    ToyTrainingConfig::new(model, AdamWSettings::new())
        .with_steps(steps)
        .with_batch_size(4)
        .with_base_lr(3e-3)
        .with_warmup_steps(2)
        .with_train_size(64)
        .with_log_every(1)
}

/// Trains `config` from scratch on flex and returns the logged losses.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn toy_losses(config: ToyTrainingConfig) -> Vec<f64> {
    toy_losses_on(config, vec![Device::flex()])
}

/// Trains `config` from scratch on `devices` (data parallel when several) and returns the
/// logged losses.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn toy_losses_on(config: ToyTrainingConfig, devices: Vec<Device>) -> Vec<f64> {
    ToyTrainer::new_on_devices(config, devices)
        .unwrap()
        .run(|_| {})
        .unwrap()
        .iter()
        .map(|m| m.loss)
        .collect()
}

/// Runs `trainer` until `stop` optimizer steps are done and returns the logged losses.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn losses_until(trainer: &mut ToyTrainer, stop: u64) -> Vec<f64> {
    trainer
        .run_until(stop, |_| {})
        .unwrap()
        .iter()
        .map(|m| m.loss)
        .collect()
}
