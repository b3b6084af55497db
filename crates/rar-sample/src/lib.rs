//! RAR sampling (spec §5 and §7): the batched KV-cached sampler with classifier-free guidance on
//! a power-cosine schedule, and writers for PNG grids and the 50k-sample `.npz` evaluation set.
#![warn(missing_docs)]

pub mod error;
pub mod eval;
pub mod logits;
pub mod npz;
pub mod sampler;

pub use error::{Result, SampleError};
pub use eval::{EvalSet, write_eval_npz};
pub use npz::{NpzError, NpzWriter};
pub use sampler::{Sampler, SamplingOptions};
