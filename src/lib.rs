//! # rar — Randomized Autoregressive visual generation on burn
//!
//! Facade over the workspace crates (see `docs/ARCHITECTURE.md`):
//!
//! | module | crate | what it owns |
//! |---|---|---|
//! | [`core`] | `rar-core` | randomness annealing, order sampling, scan orders, target-aware indices, guidance and LR schedules (no burn) |
//! | [`weights`] | `rar-weights` | reading, checking and writing PyTorch / SafeTensors / burnpack weight files |
//! | [`data`] | `rar-data` | token shards, the seeded resumable sample order, the toy dataset, image folders, pretokenization |
//! | [`vq`] | `rar-vq` | the MaskGIT-VQGAN tokenizer |
//! | [`model`] | `rar-model` | the RAR transformer, configs, checkpoints, KV-cached decoding |
//! | [`sample`] | `rar-sample` | the KV-cached sampler, PNG grids, the evaluation `.npz` |
//! | [`train`] | `rar-train` | the training loop |
//! | [`serve`] | `rar-serve` | the image-generation server: concurrent requests in one KV-cached batch, bounded queue, cancellation, HTTP API with streaming, web page |
//! | [`eval`] | `rar-eval` | the ADM evaluator's FID, sFID, Inception Score, precision and recall |
//!
//! plus [`device`], choosing a burn device from a command-line name.
#![warn(missing_docs)]

pub use rar_core as core;
pub use rar_data as data;
pub use rar_eval as eval;
pub use rar_kernels as kernels;
pub use rar_model as model;
pub use rar_sample as sample;
pub use rar_serve as serve;
pub use rar_train as train;
pub use rar_vq as vq;
pub use rar_weights as weights;

pub mod allocator;
pub mod device;
