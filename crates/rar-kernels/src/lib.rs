//! # rar-kernels — CPU kernels for RAR's KV-cached decoding
//!
//! Burn-free building blocks of `rar_model::PackedDecoder`, the host decoder that takes a
//! sampling step close to the memory-bandwidth floor of the CPU:
//!
//! * [`PackedLinear`] — `x·W + b` for few rows against a weight packed once into 16-column
//!   panels, in f32 or bf16 ([`PackedPrecision`]), split over rayon's threads;
//! * [`layer_norm_rows`], [`modulate`], [`gated_add`] — LayerNorm and the adaLN pieces;
//! * [`gated_residual_forward`] / [`gated_residual_backward`] — the adaLN gated residual for
//!   training;
//! * [`gelu_in_place`] (exact, erf), [`silu_in_place`];
//! * [`attend_one`] — one query against cached keys and values;
//! * [`causal_attention_forward`] / [`causal_attention_backward`] — whole-sequence causal
//!   attention for training, flash-style (no `[L, L]` matrix kept).
//!
//! Instruction sets are chosen at run time ([`Isa`]): AVX-512 for the packed products and
//! AVX2 + FMA for the rest where the CPU has them, portable Rust otherwise
//! (`RAR_KERNELS_ISA=portable` or `=avx2` caps the level).
#![warn(missing_docs)]

mod activation;
mod adamw;
mod attention;
mod attention_pair;
mod attention_tiles;
mod attention_views;
mod bf16;
mod causal_attention;
mod cross_entropy;
mod dropout;
mod error;
mod exp;
mod isa;
mod norm;
mod norm_train;
mod packed;
mod reduce;
mod residual;
mod tile;
mod transpose;

pub use activation::{
    erf, gelu_backward, gelu_backward_uninit, gelu_forward, gelu_forward_uninit, gelu_in_place,
    silu_in_place,
};
pub use adamw::{AdamWStep, adamw_update, sum_of_squares};
pub use attention::{CachedHead, attend_one};
pub use attention_views::{
    HeadLayout, HeadView, causal_attention_backward_views, causal_attention_forward_views,
};
pub use bf16::{from_bf16, to_bf16};
pub use causal_attention::{
    AttentionDropout, CausalOptions, CausalShape, causal_attention_backward,
    causal_attention_forward, causal_dropout_mask,
};
pub use cross_entropy::{TokenShape, cross_entropy_backward, cross_entropy_forward};
pub use dropout::dropout_scale;
pub use error::{KernelError, Result};
pub use isa::Isa;
pub use norm::{gated_add, layer_norm_rows, modulate};
pub use norm_train::{
    NormAffine, NormGrads, NormModulation, layer_norm_backward, layer_norm_forward,
};
pub use packed::{MAX_TILE_ROWS, PANEL, PackedLinear, PackedPrecision};
pub use reduce::column_sums;
pub use residual::{
    gated_residual_backward, gated_residual_backward_uninit, gated_residual_forward,
    gated_residual_forward_uninit,
};
