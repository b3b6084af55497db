//! # rar-train — training RAR
//!
//! The reference's training recipe (the paper's §3.2 and §4.1, the official
//! `train_utils.py`) as a plain loop over burn's autodiff and optimizer:
//!
//! * [`TrainingConfig`] — every setting of a run, checked before any work;
//!   [`TrainingConfig::official`] is the ImageNet recipe;
//! * [`Trainer`] — the loop: per-sample orders with the annealed random-order ratio `r(t)`,
//!   class-label dropout, gradient accumulation, data parallelism over several devices,
//!   global-norm clipping, AdamW with the reference's two parameter groups, fp32 or bf16
//!   products; checksummed step checkpoints with exact resume ([`Trainer::resume`],
//!   [`Trainer::resume_from`], [`Trainer::open_or_resume`]); previews ([`PreviewRenderer`]: [`ToyPreview`],
//!   [`TokenizerPreview`]); progress ([`RunObserver`], [`ConsoleProgress`], [`StepMetrics`]);
//! * the pieces a custom loop needs — [`RarOptimizer`] (the one update), [`forward_backward`],
//!   [`TrainingInputs`] (orders, label dropout and dropout seeds keyed by step and position),
//!   [`OptimizerConfig`] and [`weight_decay_groups`];
//! * evaluation — [`validation_loss`], [`sample_grids`], [`sample_validity`];
//! * toy runs — [`toy_training_data`], [`toy_validation_data`];
//! * [`list_checkpoints`], [`scan_checkpoints`] — the checkpoints of a run folder (and the
//!   foreign `checkpoint-*` entries that are left alone).
//!
//! ```
//! use burn::tensor::Device;
//! use rar_data::toy::{TOY_CLASSES, TOY_CODEBOOK, TOY_TOKENS};
//! use rar_model::RarConfig;
//! use rar_train::{OptimizerConfig, StepMetrics, Trainer, TrainingConfig, toy_training_data};
//!
//! // Three steps of a tiny model on the embedded toy dataset.
//! let model = RarConfig::new(32, 1, 2, 64)
//!     .with_image_seq_len(TOY_TOKENS)
//!     .with_codebook_size(TOY_CODEBOOK)
//!     .with_num_classes(TOY_CLASSES);
//! let config = TrainingConfig::new(model, OptimizerConfig::new())
//!     .with_steps(3)
//!     .with_warmup_steps(1)
//!     .with_batch_size(4)
//!     .with_train_size(64)
//!     .with_log_every(1);
//! let mut trainer = Trainer::new(config.clone(), toy_training_data(&config).unwrap(), vec![Device::flex()]).unwrap();
//! let history = trainer.run(&mut |m: &StepMetrics| println!("{m}")).unwrap();
//! assert_eq!((trainer.step(), history.len()), (3, 3));
//! ```
//!
//! # Why a plain loop
//!
//! RAR needs step-level checkpoints with exact resume (data position, orders, label dropout
//! and dropout masks are functions of the optimizer step), deterministic gradient sums across
//! devices, and batches that are positions of one seeded stream. burn-train's `Learner` works
//! in epochs and checkpoints per epoch; bending it to this needed a custom strategy that
//! ignored its loaders, captured its records through checkpointers and silenced its renderer.
//! The loop here is the shape of burn's custom-training-loop example, and leaves burn-train
//! (and its terminal-UI dependencies) out of the build.
#![warn(missing_docs)]

mod checkpoints;
mod config;
mod device_rng;
mod error;
mod evaluate;
mod fused_adamw;
mod inputs;
mod optim;
mod optimizer;
mod parallel;
mod preview;
mod progress;
mod step;
mod toy;
mod trainer;

pub use checkpoints::{CheckpointScan, list_checkpoints, scan_checkpoints};
pub use config::TrainingConfig;
pub use error::{Result, TrainError};
pub use evaluate::{sample_grids, sample_validity, validation_loss};
pub use inputs::TrainingInputs;
pub use optim::{OptimizerConfig, WeightDecayGroups, weight_decay_groups};
pub use optimizer::{CheckedGradients, RarOptimizer, UpdateStats};
pub use preview::{PREVIEW_CLASSES, PreviewRenderer, TokenizerPreview, ToyPreview};
pub use progress::{ConsoleProgress, RunObserver, StepMetrics};
pub use step::{BackwardPass, forward_backward};
pub use toy::{toy_training_data, toy_validation_data};
pub use trainer::Trainer;
