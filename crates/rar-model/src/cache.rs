//! Incremental decoding: the pre-allocated KV cache, decode orders and precomputed plans
//! (the official `generate()` in `modeling/rar.py`).
//!
//! Sampling feeds one token per step. Instead of re-running the whole prefix (what the
//! reference does without its cache) or growing the cache by concatenation (what it does with
//! it), [`KvCache`] allocates, per block, keys and values for all `N + 2` positions once and
//! writes each new position in place. A step processes only the newest position, so its cost
//! is constant in the sequence length except for the attention over the cached keys.
//!
//! ```text
//! slot j:           0      1       2        3      …   N       N+1
//! fed by:        prefill prefill  step 1   step 2  …  step N−1  (step N: only in training)
//! content:         cls   class   x[τ₀]    x[τ₁]   …  x[τ_{N−2}]
//! logits predict:   —    x[τ₀]   x[τ₁]    x[τ₂]   …  x[τ_{N−1}]
//! ```
//!
//! Every table is read at the slot's *absolute* position: `pos_embed` at `2 + τ` of the token
//! in the slot, `target_aware_pos_embed` at `2 + τ` of the token the slot predicts, and
//! `timesteps_embeddings` at `j`. Their sum `pos_embed[…] + target_aware_pos_embed[…]` depends
//! only on the order, so a [`DecodePlan`] precomputes it for all slots once; a step then adds a
//! single precomputed row. Any order works — the raster order of the released models, another
//! scan order ([`rar_core::ScanOrder`]), or a different order per row.
//!
//! Typical use (the sampler builds on this):
//!
//! ```no_run
//! # use burn::tensor::{Device, Int, Tensor};
//! # use rar_model::{Rar, DecodeOrder};
//! # fn demo(model: &Rar, cond: Tensor<1, Int>, device: &Device) -> rar_model::Result<()> {
//! let n = model.config().image_seq_len;
//! let plan = model.decode_plan(&DecodeOrder::raster(n)?)?; // once per order
//! let mut cache = model.new_cache(cond.dims()[0], device); // once per batch size
//! let mut logits = model.prefill(cond, &plan, &mut cache)?; // [B, V]: predicts token τ₀
//! for _step in 1..n {
//!     let tokens: Tensor<1, Int> = logits.argmax(1).squeeze_dim(1); // your sampler here
//!     logits = model.step(tokens, &plan, &mut cache)?; // [B, V]: predicts the next token
//! }
//! cache.reset(); // reuse the buffers for the next batch
//! # Ok(()) }
//! ```
//!
//! Decode on a device without autodiff (or on `model.valid()`): the cache is inference state and
//! is not meant to be differentiated through.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::{ScanOrder, SequenceLayout};

use crate::error::{RarModelError, Result};

/// The order in which a decode produces tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeOrder {
    /// One order for every row of the batch.
    Shared(SequenceLayout),
    /// A separate order per row (the batch size of the cache must equal the number of orders).
    PerRow(Vec<SequenceLayout>),
}

impl DecodeOrder {
    /// Raster order over `num_tokens` tokens (the order of the released models' sampler).
    pub fn raster(num_tokens: usize) -> Result<Self> {
        Ok(Self::Shared(SequenceLayout::raster(num_tokens)?))
    }

    /// One of the paper's scan orders over the square grid of `num_tokens` tokens.
    pub fn scan(scan: ScanOrder, num_tokens: usize) -> Result<Self> {
        Self::shared(scan.positions_for_tokens(num_tokens)?)
    }

    /// A shared order given as raster indices (`order[k]` = position of the `k`-th token).
    pub fn shared(order: Vec<usize>) -> Result<Self> {
        Ok(Self::Shared(SequenceLayout::new(order)?))
    }

    /// One order per row.
    pub fn per_row(orders: Vec<Vec<usize>>) -> Result<Self> {
        if orders.is_empty() {
            return Err(RarModelError::InvalidInput(
                "per-row decode order with no rows".into(),
            ));
        }
        let layouts = orders
            .into_iter()
            .map(SequenceLayout::new)
            .collect::<rar_core::Result<Vec<_>>>()?;
        let n = layouts[0].num_tokens();
        if layouts.iter().any(|l| l.num_tokens() != n) {
            return Err(RarModelError::InvalidInput(
                "per-row decode orders of different lengths".into(),
            ));
        }
        Ok(Self::PerRow(layouts))
    }

    /// Number of tokens `N` the order covers.
    pub fn num_tokens(&self) -> usize {
        match self {
            Self::Shared(l) => l.num_tokens(),
            Self::PerRow(ls) => ls[0].num_tokens(),
        }
    }

    /// The layouts (one for `Shared`, one per row for `PerRow`).
    pub fn layouts(&self) -> &[SequenceLayout] {
        match self {
            Self::Shared(l) => std::slice::from_ref(l),
            Self::PerRow(ls) => ls,
        }
    }

    /// Raster index of the token that row `row` generates at step `step` (`0 ≤ step < N`),
    /// i.e. where the sampler must put the token drawn from the logits of that step.
    pub fn position(&self, row: usize, step: usize) -> usize {
        match self {
            Self::Shared(l) => l.order()[step],
            Self::PerRow(ls) => ls[row].order()[step],
        }
    }
}

/// Precomputed per-slot terms for one [`DecodeOrder`] (reusable for any number of batches).
#[derive(Debug, Clone)]
pub struct DecodePlan {
    /// `pos_embed[pos_row(j)] + target_aware_pos_embed[target_row(j)]` per slot,
    /// `[1 or B, N + 2, C]`.
    pub(crate) positional: Tensor<3>,
    /// `timesteps_embeddings` rows `0 … N + 1`, `[1, N + 2, C]`.
    pub(crate) timesteps: Tensor<3>,
    pub(crate) order: DecodeOrder,
}

impl DecodePlan {
    /// The order this plan decodes in.
    pub fn order(&self) -> &DecodeOrder {
        &self.order
    }

    /// Number of image tokens `N`.
    pub fn num_tokens(&self) -> usize {
        self.order.num_tokens()
    }

    /// Rows of the positional table: 1 for a shared order, `B` for per-row orders.
    pub(crate) fn rows(&self) -> usize {
        self.positional.dims()[0]
    }

    /// Positional terms of slots `start … start + len − 1`, `[1 or B, len, C]`.
    pub(crate) fn positional_slots(&self, start: usize, len: usize) -> Tensor<3> {
        let [p, _, c] = self.positional.dims();
        self.positional
            .clone()
            .slice([0..p, start..start + len, 0..c])
    }

    /// Timestep rows of slots `start … start + len − 1`, `[1, len, C]`.
    pub(crate) fn timestep_slots(&self, start: usize, len: usize) -> Tensor<3> {
        let c = self.timesteps.dims()[2];
        self.timesteps
            .clone()
            .slice([0..1, start..start + len, 0..c])
    }

    /// Checks that this plan can drive a cache of `batch` rows.
    pub(crate) fn check_batch(&self, batch: usize) -> Result<()> {
        let rows = self.rows();
        if rows != 1 && rows != batch {
            return Err(RarModelError::Cache(format!(
                "the decode plan has per-row orders for {rows} rows but the cache holds {batch}"
            )));
        }
        Ok(())
    }
}

/// Keys and values of one block for all positions, `[B, H, N + 2, d]` each, written in place.
#[derive(Debug)]
pub(crate) struct LayerKv {
    // `Option` so the buffer can be moved out, updated while uniquely owned (which lets the
    // backend write in place instead of copying the whole buffer) and put back.
    k: Option<Tensor<4>>,
    v: Option<Tensor<4>>,
}

impl LayerKv {
    fn new(batch: usize, heads: usize, capacity: usize, head_dim: usize, device: &Device) -> Self {
        let shape = [batch, heads, capacity, head_dim];
        Self {
            k: Some(Tensor::zeros(shape, device)),
            v: Some(Tensor::zeros(shape, device)),
        }
    }

    /// Writes `k`, `v` `[B, H, L, d]` at positions `start … start + L − 1` and returns views of
    /// the keys and values of positions `0 … start + L − 1`.
    pub(crate) fn write_and_read(
        &mut self,
        start: usize,
        k: Tensor<4>,
        v: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let keys = Self::write(&mut self.k, start, k);
        let values = Self::write(&mut self.v, start, v);
        (keys, values)
    }

    fn write(slot: &mut Option<Tensor<4>>, start: usize, new: Tensor<4>) -> Tensor<4> {
        let buffer = slot
            .take()
            .expect("KV buffer is always present between calls");
        let [b, h, _, d] = buffer.dims();
        let len = new.dims()[2];
        let buffer = buffer.slice_assign([0..b, 0..h, start..start + len, 0..d], new);
        let view = buffer.clone().slice([0..b, 0..h, 0..start + len, 0..d]);
        *slot = Some(buffer);
        view
    }
}

/// The decoding state of a batch: per-block keys/values for `N + 2` positions, the number of
/// positions filled so far and the batch's condition embedding.
///
/// Create it with [`crate::Rar::new_cache`], fill it with [`crate::Rar::prefill`] and
/// [`crate::Rar::step`], and call [`KvCache::reset`] to reuse the buffers for another batch.
#[derive(Debug)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    batch: usize,
    capacity: usize,
    pub(crate) len: usize,
    /// Embedding of each row's condition id, `[B, 1, C]` (set by prefill).
    pub(crate) condition: Option<Tensor<3>>,
}

impl KvCache {
    pub(crate) fn new(
        layers: usize,
        batch: usize,
        heads: usize,
        capacity: usize,
        head_dim: usize,
        device: &Device,
    ) -> Self {
        Self {
            layers: (0..layers)
                .map(|_| LayerKv::new(batch, heads, capacity, head_dim, device))
                .collect(),
            batch,
            capacity,
            len: 0,
            condition: None,
        }
    }

    /// Number of rows `B` the cache was allocated for.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Number of positions it can hold (`N + 2`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of positions filled (0 before prefill, 2 after it, +1 per step).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of image tokens fed back so far (`len − 2` after prefill).
    pub fn tokens_fed(&self) -> usize {
        self.len.saturating_sub(2)
    }

    /// Forgets the current batch; the buffers are kept (and overwritten by the next prefill).
    pub fn reset(&mut self) {
        self.len = 0;
        self.condition = None;
    }

    /// Keeps only the rows `rows` (indices into the current batch, in the order given) and
    /// drops the others, so a running batch shrinks when some of its sequences are no longer
    /// wanted (a server's cancelled request): later steps then compute only the rows kept.
    /// With a plan of per-row orders, rebuild the plan for the rows kept.
    pub fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.batch) {
            return Err(RarModelError::Cache(format!(
                "row {bad} is not in the cache's {} rows",
                self.batch
            )));
        }
        if rows.is_empty() {
            return Err(RarModelError::Cache(
                "retain_rows needs at least one row to keep".into(),
            ));
        }
        if rows.len() == self.batch && rows.iter().enumerate().all(|(i, &r)| i == r) {
            return Ok(());
        }
        let device = self
            .layers
            .first()
            .and_then(|l| l.k.as_ref())
            .map(|k| k.device())
            .ok_or_else(|| RarModelError::Cache("the cache has no blocks".into()))?;
        let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [rows.len()]), &device);
        for layer in &mut self.layers {
            for slot in [&mut layer.k, &mut layer.v] {
                let buffer = slot
                    .take()
                    .expect("KV buffer is always present between calls");
                *slot = Some(buffer.select(0, index.clone()));
            }
        }
        self.condition = self.condition.take().map(|c| c.select(0, index));
        self.batch = rows.len();
        Ok(())
    }
}
