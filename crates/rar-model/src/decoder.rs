//! [`Decoder`]: one interface over the two implementations of KV-cached decoding — burn's
//! tensor ops on the model's device ([`Rar::prefill`] / [`Rar::step`]) and the packed host
//! decoder ([`PackedDecoder`]) — so a sampler is written once for both.

use burn::tensor::{Int, Tensor, TensorData};

use crate::cache::{DecodePlan, KvCache};
use crate::error::{RarModelError, Result};
use crate::host_threads::{on_compute_threads, on_worker_thread};
use crate::model::Rar;
use crate::packed::{PackedCache, PackedDecoder};

/// What runs a model's KV-cached decode. `Decoder::from(&model)` uses burn's tensor ops;
/// [`Decoder::packed`] the host kernels of a [`PackedDecoder`] built from the same model.
#[derive(Debug, Clone, Copy)]
pub struct Decoder<'m> {
    model: &'m Rar,
    packed: Option<&'m PackedDecoder>,
}

/// The decoding state of a batch, of the kind its [`Decoder`] made.
#[derive(Debug)]
// One cache is made per batch and moved rarely, so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum DecodeCache {
    /// Keys and values as tensors on the model's device.
    Tensor(KvCache),
    /// Keys and values on the host, for a [`PackedDecoder`].
    Packed(PackedCache),
}

impl<'m> From<&'m Rar> for Decoder<'m> {
    fn from(model: &'m Rar) -> Self {
        Self::tensor(model)
    }
}

impl<'m> Decoder<'m> {
    /// Decoding with burn's tensor ops on the model's device.
    pub fn tensor(model: &'m Rar) -> Self {
        Self {
            model,
            packed: None,
        }
    }

    /// Decoding with `packed`, which must have been built from a model of `model`'s
    /// configuration (`model` still serves plans, configuration and cache-free decoding).
    pub fn packed(model: &'m Rar, packed: &'m PackedDecoder) -> Result<Self> {
        if packed.config() != model.config() {
            return Err(RarModelError::InvalidInput(
                "the packed decoder was built from a model of another configuration".into(),
            ));
        }
        Ok(Self {
            model,
            packed: Some(packed),
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Rar {
        self.model
    }

    /// The packed decoder, if this decodes on the host.
    pub fn packed_decoder(&self) -> Option<&'m PackedDecoder> {
        self.packed
    }

    /// A cache for `batch` rows.
    pub fn new_cache(&self, batch: usize) -> DecodeCache {
        match self.packed {
            Some(p) => DecodeCache::Packed(p.new_cache(batch)),
            None => DecodeCache::Tensor(self.model.new_cache(batch, &self.model.device())),
        }
    }

    /// [`Rar::prefill`] on either implementation; logits `[B, V]` on the model's device.
    pub fn prefill(
        &self,
        condition: Tensor<1, Int>,
        plan: &DecodePlan,
        cache: &mut DecodeCache,
    ) -> Result<Tensor<2>> {
        match (self.packed, cache) {
            (None, DecodeCache::Tensor(cache)) => on_compute_threads(&self.model.device(), || {
                self.model.prefill(condition, plan, cache)
            }),
            (Some(p), DecodeCache::Packed(cache)) => {
                let ids = ids(condition, "condition ids")?;
                let logits = on_worker_thread(|| p.prefill(&ids, plan, cache))?;
                Ok(self.logits_tensor(logits, cache.batch_size()))
            }
            _ => Err(mismatch()),
        }
    }

    /// [`Rar::step`] on either implementation; logits `[B, V]` on the model's device.
    pub fn step(
        &self,
        tokens: Tensor<1, Int>,
        plan: &DecodePlan,
        cache: &mut DecodeCache,
    ) -> Result<Tensor<2>> {
        match (self.packed, cache) {
            (None, DecodeCache::Tensor(cache)) => on_compute_threads(&self.model.device(), || {
                self.model.step(tokens, plan, cache)
            }),
            (Some(p), DecodeCache::Packed(cache)) => {
                let tokens = ids(tokens, "step tokens")?;
                let logits = on_worker_thread(|| p.step(&tokens, cache))?;
                Ok(self.logits_tensor(logits, cache.batch_size()))
            }
            _ => Err(mismatch()),
        }
    }

    fn logits_tensor(&self, logits: Vec<f32>, rows: usize) -> Tensor<2> {
        let v = self.model.config().codebook_size;
        Tensor::from_data(TensorData::new(logits, [rows, v]), &self.model.device())
    }
}

fn ids(t: Tensor<1, Int>, what: &str) -> Result<Vec<i64>> {
    t.into_data()
        .try_into_vec_as::<i64>()
        .map_err(|e| RarModelError::InvalidInput(format!("{what}: {e:?}")))
}

fn mismatch() -> RarModelError {
    RarModelError::Cache("the cache was made by the other kind of decoder".into())
}

impl DecodeCache {
    /// Number of rows `B`.
    pub fn batch_size(&self) -> usize {
        match self {
            Self::Tensor(c) => c.batch_size(),
            Self::Packed(c) => c.batch_size(),
        }
    }

    /// Positions filled (0 before prefill, 2 after it, +1 per step).
    pub fn len(&self) -> usize {
        match self {
            Self::Tensor(c) => c.len(),
            Self::Packed(c) => c.len(),
        }
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the batch; the buffers are kept.
    pub fn reset(&mut self) {
        match self {
            Self::Tensor(c) => c.reset(),
            Self::Packed(c) => c.reset(),
        }
    }

    /// Keeps only the rows `rows` (see [`KvCache::retain_rows`]).
    pub fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        match self {
            Self::Tensor(c) => c.retain_rows(rows),
            Self::Packed(c) => c.retain_rows(rows),
        }
    }
}
