//! # rar-model — the RAR transformer on burn
//!
//! The generator of *Randomized Autoregressive Visual Generation* (Yu et al., arXiv
//! 2411.00776), written once against burn's run-time [`Device`](burn::tensor::Device) so the
//! same code runs on CUDA, wgpu and the CPU backends, and able to load the released
//! checkpoints (`rar_b.bin` … `rar_xxl.bin`) unchanged. What it computes is the official
//! `modeling/rar.py` (docs/REFERENCE.md describes it in full).
//!
//! ## The public API
//!
//! * [`RarConfig`] / [`RarPreset`] — sizes, the four released presets, exact parameter counts
//!   without allocation;
//! * [`Rar`] — the model: training-mode forward with per-sample orders ([`Rar::forward`],
//!   [`RarInput`] with [`BatchOrders`], [`RarOutput`] with its loss and accuracy, [`RarTrace`]
//!   for parity checks), class-label dropout and guidance ids ([`condition`]);
//! * [`KvCache`], [`DecodePlan`], [`DecodeOrder`], [`Rar::prefill`], [`Rar::step`] — KV-cached
//!   incremental decoding in any order, plus the cache-free [`Rar::forward_prefix`];
//! * checkpoints — [`Rar::from_checkpoint`] (`.bin` / `.safetensors` / `.bpk`, the preset
//!   inferred; [`Rar::load_checkpoint`] with a [`LoadConfig`]), [`LoadedCheckpoint`], [`Rar::save_burnpack`], [`Rar::save_safetensors`];
//!   the reference layout [`expected_state_dict`], [`infer_config`], [`checkpoint_shapes`],
//!   [`checkpoint_naming`], [`reference_keys`];
//! * [`PackedDecoder`] (with [`PackedCache`], [`PackedPrecision`]) — the same KV-cached decode on
//!   the CPU host with weights packed once (f32 or bf16), near the memory-bandwidth floor;
//!   [`Decoder`] and [`DecodeCache`] choose between it and the tensor path;
//! * [`ComputePrecision`], [`with_compute_precision`] — bf16 products over fp32 weights;
//! * [`RarModelError`], [`Result`].
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use rar_model::{BatchOrders, RarConfig, RarInput};
//!
//! // A tiny random model over 16 tokens of 32 codes and 10 classes: one training forward.
//! let device = Device::flex();
//! let config = RarConfig::new(32, 2, 2, 64)
//!     .with_image_seq_len(16)
//!     .with_codebook_size(32)
//!     .with_num_classes(10);
//! let model = config.init(&device);
//! let space = config.token_space();
//! let input = RarInput {
//!     tokens: Tensor::<2, Int>::zeros([2, 16], &device),
//!     condition: rar_model::condition::condition_tensor(
//!         &[space.class_id(3).unwrap() as i64, space.none_id() as i64],
//!         &device,
//!     ),
//!     orders: BatchOrders::raster(2, 16, &device).unwrap(),
//! };
//! let out = model.forward(input).unwrap();
//! assert_eq!(out.logits.dims(), [2, 17, 32]);
//! assert!(out.loss().into_scalar::<f32>().is_finite());
//! ```
//!
//! ## Token space (paper §3.2)
//!
//! One embedding table serves image codes *and* class conditions. With `V` codes and `K`
//! classes (ImageNet: `V = 1024`, `K = 1000`, 2026 rows):
//!
//! ```text
//! id:    0 ……… V−1 │ V       │ V+1 ……… V+K │ V+K+1
//!        image codes │ mask id │ class 0…K−1 │ "none"
//!        (predicted) │ (unused)│  = V+1+c    │ (dropped label / unconditional CFG half)
//! ```
//!
//! The forward pass embeds condition ids as given, so callers map classes first
//! ([`condition::drop_class_labels`], [`condition::guidance_condition_ids`],
//! [`rar_core::TokenSpace`]). The head `lm_head` predicts only the `V` image codes.
//!
//! ## Sequence layout and the target-aware embedding (paper §3.2)
//!
//! The transformer sees two prefix slots before the `N` image tokens, which are fed in the
//! sample's generation order `τ` (a random permutation in training with probability `r`,
//! raster otherwise):
//!
//! ```text
//! slot j:            0        1          2           3       …      N+1
//! token:            cls     class     x[τ₀]       x[τ₁]      …   x[τ_{N−1}]
//! + pos_embed row:   0        1       2+τ₀        2+τ₁       …   2+τ_{N−1}    (travels with the token)
//! + target-aware:    0     T[2+τ₀]   T[2+τ₁]     T[2+τ₂]     …      0         (the NEXT token's position)
//! adaLN condition:  E[class] + timesteps_embeddings[j]                        (slot index, never permuted)
//! output predicts:   —      x[τ₀]     x[τ₁]       x[τ₂]      …      —
//! ```
//!
//! The ordinary positional embedding says *where the token in this slot is*; the target-aware
//! embedding says *where the token to predict next is* — without it a model trained on random
//! orders could not know which position it is asked for. It is shifted by one (the class slot
//! already carries `τ₀`'s) and zero at `cls` and at the last slot, so rows 0 and 1 of
//! `target_aware_pos_embed` are never read. The `cls` output is dropped; the remaining `N + 1`
//! outputs give the logits, of which the first `N` are trained. For the raster order every
//! slot `1 ≤ j ≤ N` simply adds `P[j] + T[j+1]`.
//!
//! ## Blocks
//!
//! Pre-norm blocks with affine LayerNorms (eps 1e-6), attention with QK-LayerNorm over the
//! head dimension, exact-GELU MLP, and per-position adaLN modulation (6 chunks in the order
//! shift/scale/gate for attention then MLP). The final adaLN layer uses an affine-free
//! LayerNorm and splits its modulation as **scale, then shift**.
//!
//! ## Backends
//!
//! Features `flex` (default), `ndarray`, `wgpu` and `cuda` forward to burn. Always pass an
//! explicit device (`Device::flex()`, …): `Device::default()` changes with feature
//! unification. Training-mode dropout is active on an autodiff device (`device.autodiff()`)
//! unless the model is in validation mode (`model.valid()`).
#![warn(missing_docs)]

mod attention;
mod block;
mod cache;
mod checkpoint;
pub mod condition;
mod config;
mod cpu_products;
mod decoder;
mod error;
mod final_layer;
#[cfg(feature = "flex")]
mod flex_kernels;
mod host_threads;
mod init;
mod loss;
mod mlp;
mod model;
mod orders;
mod packed;
mod precision;
mod train_ops;

pub use block::RarBlock;
pub use cache::{DecodeOrder, DecodePlan, KvCache};
pub use checkpoint::infer::infer_config;
pub use checkpoint::keys::{checkpoint_naming, expected_state_dict, reference_keys};
pub use checkpoint::load::{LoadConfig, LoadedCheckpoint, checkpoint_shapes};
pub use config::{RarConfig, RarPreset};
pub use cpu_products::CpuProducts;
pub use decoder::{DecodeCache, Decoder};
pub use error::{RarModelError, Result};
pub use host_threads::on_compute_threads;
pub use model::{Rar, RarInput, RarOutput, RarTrace};
pub use orders::BatchOrders;
pub use packed::{PackedCache, PackedDecoder};
pub use precision::{ComputePrecision, with_compute_precision};
pub use rar_kernels::PackedPrecision;
