//! # rar-sample — sampling RAR
//!
//! The batched KV-cached sampler with classifier-free guidance on a power-cosine schedule
//! (paper §3.3 and the official `generate()`), and what turns its tokens into pictures and
//! evaluation files:
//!
//! * [`Sampler`], [`SamplingConfig`] (with [`SamplingConfig::preset`], the authors' settings
//!   per released model) — class-conditional token grids in raster order (or any scan order,
//!   or one order per sample);
//! * [`SampleRequest`], [`RequestBatch`] — a batch of independent requests, each with its own
//!   class, settings and seed, decoded step by step (what a server batches);
//! * [`make_grid`], [`write_png_grid`], [`write_png_grid_u8`] — tiled PNGs, written
//!   atomically;
//! * [`EvalSet`], [`write_eval_npz`], [`NpzWriter`] — the 50 000-image `.npz` the ADM
//!   evaluator reads, streamed and resumable.
//!
//! ```
//! use burn::tensor::Device;
//! use rar_model::RarConfig;
//! use rar_sample::{Sampler, SamplingConfig};
//!
//! // A tiny random model over a 4×4 grid of 16 codes and 3 classes.
//! let device = Device::flex();
//! let config = RarConfig::new(32, 1, 2, 64)
//!     .with_image_seq_len(16)
//!     .with_codebook_size(16)
//!     .with_num_classes(3);
//! let model = config.init(&device);
//! let ids = Sampler::new(&model)
//!     .sample(&[0, 2], &SamplingConfig::default(), Some(7))
//!     .unwrap();
//! assert_eq!(ids.dims(), [2, 16]);
//! ```
#![warn(missing_docs)]

mod error;
mod eval;
mod grid;
mod logits;
mod npz;
mod requests;
mod sampler;

pub use error::{Result, SampleError};
pub use eval::{EvalSet, write_eval_npz};
pub use grid::{make_grid, write_png_grid, write_png_grid_u8};
pub use npz::{NpzError, NpzWriter};
pub use requests::{RequestBatch, SampleRequest};
pub use sampler::{Sampler, SamplingConfig};
