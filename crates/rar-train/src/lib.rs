//! RAR training (spec §4 and §6): the reference's training step (AdamW with its two
//! parameter groups, global-norm clipping, warm-up + cosine LR), randomness annealing with
//! per-sample orders, class-label dropout, and a plain training loop on the embedded toy
//! dataset.
//!
//! * [`optim`] — weight-decay groups, AdamW settings, global-norm clipping;
//! * [`step`] — [`RarOptimizer`]: one optimizer step exactly as the reference;
//! * [`toy`] — the embedded toy dataset and its validity checker;
//! * [`trainer`] — the training loop on the toy dataset (a plain loop, not burn-train's
//!   `Learner`), metrics log lines, step-level checkpoints with exact resume, validation loss
//!   and sample validity.
#![warn(missing_docs)]

pub mod error;
pub mod optim;
pub mod step;
pub mod toy;
pub mod trainer;

pub use error::{Result, TrainError};
pub use optim::{AdamWSettings, WeightDecayGroups, clip_grad_norm_global, weight_decay_groups};
pub use step::{BackwardPass, RarOptimizer, StepStats, forward_backward};
pub use trainer::{
    StepMetrics, ToyTrainer, ToyTrainingConfig, list_checkpoints, render_grid, sample_validity,
    validation_loss,
};
