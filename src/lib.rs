//! # rar — Randomized Autoregressive visual generation on burn
//!
//! Facade over the workspace crates (see `docs/ARCHITECTURE.md`):
//!
//! | crate | what it owns |
//! |---|---|
//! | [`core`] (`rar-core`) | randomness annealing, order sampling, scan orders, target-aware indices, guidance and LR schedules (no burn) |
//! | [`vq`] (`rar-vq`) | the MaskGIT-VQGAN tokenizer, image I/O, pretokenization |
//! | [`model`] (`rar-model`) | the RAR transformer, configs, checkpoint loading, KV-cached decoding |
//! | [`train`] (`rar-train`) | the burn-train Learner loop |
//! | [`sample`] (`rar-sample`) | the KV-cached sampler and output writers |
#![warn(missing_docs)]

pub use rar_core as core;
pub use rar_model as model;
pub use rar_sample as sample;
pub use rar_train as train;
pub use rar_vq as vq;

pub mod bench;
pub mod cli;
pub mod device;
