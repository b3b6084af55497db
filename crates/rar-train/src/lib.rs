//! RAR training (spec §4 and §6) on burn-train's `Learner`: the reference's training step
//! (AdamW with its two parameter groups, global-norm clipping, warm-up + cosine LR),
//! randomness annealing with per-sample orders, class-label dropout, gradient accumulation,
//! step-level checkpoints with exact resume (dropout included), periodic preview grids.
//!
//! * [`optim`] — weight-decay groups, AdamW settings, global-norm clipping;
//! * [`step`] — [`RarOptimizer`]: one optimizer step exactly as the reference, outside the
//!   Learner (the parity reference for the Learner path);
//! * [`source`] — [`TokenSource`] (the data a run reads), [`StepLoader`] (burn's
//!   `DataLoader` over a run's micro-batches) and the data position;
//! * [`learner`] — [`RarLearnerModel`] (`TrainStep`/`InferenceStep` around `Rar`),
//!   [`RarLrScheduler`] (burn's `LrScheduler` counting the global optimizer step);
//! * [`trainer`] — [`Trainer`] / [`ToyTrainer`]: the loop, a custom
//!   `SupervisedLearningStrategy` launched through `SupervisedTraining`, metrics lines,
//!   checkpoints, previews, validation loss and sample validity;
//! * [`shards`] — [`ShardSource`] (training on rar-vq token shards, in the shard stream's own
//!   seeded order, with previews decoded by the tokenizer) and [`TrainingRecipe`] (the
//!   official ImageNet recipe in absolute steps);
//! * [`toy`] — the embedded toy dataset and its validity checker.
//!
//! # What runs where
//!
//! Single-device training (flex, ndarray, or one GPU) is what the tests exercise. Several
//! devices go through burn-train's `MultiDevicesTrainStep` (the machinery of
//! `ExecutionStrategy::multi`), with CPU devices refused by [`TrainError::Devices`]; that path
//! compiles but has not been run (no GPU on the development machines), nor has dropout
//! reproducibility on fusion (GPU) backends, where random ops may execute lazily.
//!
//! bf16: burn 0.22 has a per-device default dtype (`Device::configure(FloatDType::BF16)`,
//! before any tensor is created on the device), but it makes *everything* bf16 — parameters,
//! gradients and AdamW moments — with no autocast and no fp32 master weights, unlike the
//! reference's mixed precision; this crate does not offer it.
#![warn(missing_docs)]

pub mod error;
pub mod learner;
pub mod optim;
pub mod shards;
pub mod source;
pub mod step;
pub mod toy;
pub mod trainer;

pub use error::{Result, TrainError};
pub use learner::{RarLearnerModel, RarLrScheduler, StepContext, StepOutput};
pub use optim::{AdamWSettings, WeightDecayGroups, clip_grad_norm_global, weight_decay_groups};
pub use shards::{PREVIEW_CLASSES, ShardSource, TrainingRecipe};
pub use source::{BatchPlan, StepLoader, TokenBatch, TokenSource};
pub use step::{BackwardPass, RarOptimizer, StepStats, forward_backward};
pub use trainer::{
    StepMetrics, ToyTrainer, ToyTrainingConfig, Trainer, TrainingConfig, list_checkpoints,
    render_grid, sample_grids, sample_validity, validation_loss, write_checkpoint, write_preview,
};
