//! KV-cached decoding on the CPU host with pre-packed weights ([`PackedDecoder`]).
//!
//! A decode step multiplies `R = 2·B` rows (a guided batch of `B` images) by every weight of
//! the model, so on a CPU it is bound by how fast the weights stream from memory. Through
//! burn's tensor ops each of those products re-packs its weight matrix (the CPU GEMM's
//! layout for square products) and allocates its output. [`PackedDecoder`] copies the
//! weights to host memory once, packed for few-row products ([`rar_kernels::PackedLinear`]),
//! optionally in bf16 ([`PackedPrecision::Bf16`], half the bytes per step), and runs the step —
//! the same function as [`crate::Rar::step`] — with host kernels and reusable buffers.
//! Rows that share a condition (the unconditional half of classifier-free guidance) share one
//! adaLN product.
//!
//! The packed weights are a snapshot: build the decoder after loading or training the model.

mod cache;
mod forward;
mod weights;

use burn::tensor::Device;
use rar_kernels::{PackedLinear, PackedPrecision};

use crate::config::RarConfig;
use crate::error::{RarModelError, Result};
use crate::model::Rar;

pub use cache::PackedCache;
use weights::{PackedBlock, host, linear};

/// A [`Rar`] model's weights packed on the host for fast CPU decoding (see the module docs).
#[derive(Debug, Clone)]
pub struct PackedDecoder {
    config: RarConfig,
    precision: PackedPrecision,
    /// Embedding table `[vocab, C]`.
    embeddings: Vec<f32>,
    /// `cls_token` `[C]`.
    cls: Vec<f32>,
    blocks: Vec<PackedBlock>,
    final_ada: PackedLinear,
    /// Epsilon of the final (affine-free) LayerNorm.
    final_eps: f32,
    head: PackedLinear,
    /// Where the logits go (the model's device).
    device: Device,
}

impl PackedDecoder {
    /// Copies and packs the weights of `model` (the model is not changed or kept).
    pub fn new(model: &Rar, precision: PackedPrecision) -> Result<Self> {
        let config = model.config().clone();
        let c = config.hidden_size;
        let blocks = model
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| PackedBlock::new(b, precision, i))
            .collect::<Result<Vec<_>>>()?;
        let embeddings = host(model.embeddings.weight.val(), "embeddings.weight")?;
        let cls = host(model.cls_token.val().reshape([c]), "cls_token")?;
        Ok(Self {
            precision,
            embeddings,
            cls,
            blocks,
            final_ada: linear(
                &model.adaln_before_head.ada_ln_modulation,
                precision,
                "adaln_before_head.adaLN_modulation.1",
            )?,
            final_eps: model.adaln_before_head.eps as f32,
            head: linear(&model.lm_head, precision, "lm_head")?,
            device: model.device(),
            config,
        })
    }

    /// The configuration of the model it was built from.
    pub fn config(&self) -> &RarConfig {
        &self.config
    }

    /// How the weights are stored.
    pub fn precision(&self) -> PackedPrecision {
        self.precision
    }

    /// Bytes of the packed product weights, i.e. what one decode step reads from memory
    /// (embeddings and norms excluded: a step touches only a few of their rows).
    pub fn streamed_bytes(&self) -> usize {
        self.blocks.iter().map(PackedBlock::bytes).sum::<usize>()
            + self.final_ada.bytes()
            + self.head.bytes()
    }

    /// A cache for `batch` rows (`N + 2` positions per block, allocated lazily by the OS).
    pub fn new_cache(&self, batch: usize) -> PackedCache {
        PackedCache::new(
            self.config.num_layers,
            batch,
            self.config.num_heads,
            self.config.seq_len(),
            self.config.head_dim(),
        )
    }

    /// The device the logits tensors are put on (the model's).
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn check_ids(&self, ids: &[i64], limit: usize, what: &str) -> Result<()> {
        if let Some(bad) = ids.iter().find(|&&id| id < 0 || id as usize >= limit) {
            return Err(RarModelError::InvalidInput(format!(
                "{what} {bad} is outside 0 … {}",
                limit - 1
            )));
        }
        Ok(())
    }
}
