//! Where training samples come from: the [`TokenSource`] trait (class label + token grid by
//! index), its implementation for the embedded toy dataset, and [`StepLoader`], burn's
//! [`DataLoader`] over a run's micro-batches.
//!
//! # Data position
//!
//! A run reads its samples as one endless stream: position `p` is item `order_e[p mod L]` of
//! the source (length `L`), where `order_e` is a shuffle of `0..L` drawn from the stream
//! `(seed, e)` for the epoch `e = p div L`. A source that orders its samples itself (a token
//! shard stream, see [`TokenSource::provides_order`]) is instead asked for position `p`
//! directly ([`TokenSource::get_at`]); its order must then be a function of `p` alone (and of
//! settings named by [`TokenSource::order_key`]). Optimizer step `t` consumes positions
//! `[t·B, (t+1)·B)` (`B` = samples per optimizer step), split into `accum_steps` micro-batches
//! (and, with several devices, one slice per device). The data position is therefore a function
//! of the optimizer step alone: a resumed run reads exactly the samples the uninterrupted run
//! would have read.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::rng::Xoshiro256PlusPlus;

use crate::error::{Result, TrainError};
use crate::toy::{TOY_CLASSES, TOY_CODEBOOK, TOY_SIDE, TOY_TOKENS, ToyDataset};

/// Stream key of the per-epoch shuffles.
const SHUFFLE_STREAM: u64 = 0x7368_7566_666c;

/// A labelled collection of token grids: the training data of a run.
///
/// Implementations must be deterministic (`get(i)` always returns the same sample) and cheap
/// to call from the training thread; they are shared between threads (`Send + Sync`).
pub trait TokenSource: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `index`: its class in `0..num_classes()` and its `image_seq_len()` token ids in
    /// raster order, each below `codebook_size()`.
    fn get(&self, index: usize) -> Result<(usize, Vec<u32>)>;

    /// Tokens per sample `N`.
    fn image_seq_len(&self) -> usize;

    /// Codebook size `V` (token ids are in `0..V`).
    fn codebook_size(&self) -> usize;

    /// Number of classes `K`.
    fn num_classes(&self) -> usize;

    /// Whether the source provides its own per-epoch order. `false` (the default): the run
    /// reads index `order_e[p mod L]` of [`Self::get`] for run position `p`, with its own
    /// seeded shuffle per epoch (see the [module docs](self)). `true`: the run reads
    /// [`Self::get_at`]`(p)` and adds no shuffle of its own (for sources whose random access is
    /// expensive but whose sequential reading is cheap and already shuffled).
    fn provides_order(&self) -> bool {
        false
    }

    /// The sample at run position `position` (any `u64`; epoch `position / len()`) in the
    /// source's own order. Only called when [`Self::provides_order`] is `true`; the default
    /// reads [`Self::get`]`(position mod len)`. Must be a function of `position` alone.
    fn get_at(&self, position: u64) -> Result<(usize, Vec<u32>)> {
        let len = self.len().max(1) as u64;
        self.get((position % len) as usize)
    }

    /// A description of the settings the source's own order depends on (seed, buffering, the
    /// data's identity), or `None` when it has no order of its own. A run stores it in its
    /// configuration ([`crate::TrainingConfig::data_order`]) and refuses to resume on a source
    /// with a different key, since the data position would no longer match the step.
    fn order_key(&self) -> Option<String> {
        None
    }

    /// What the data is, for error messages (e.g. `"the token shards in /data/imagenet"`).
    fn describe(&self) -> String {
        "the training data".into()
    }

    /// Renders sampled token grids (one per class, class order) as an RGB image
    /// `(width, height, rgb)` for the periodic preview, or `Ok(None)` when this source cannot
    /// render tokens (then no preview file is written).
    fn render_preview(&self, grids: &[Vec<u32>]) -> Result<Option<(u32, u32, Vec<u8>)>> {
        let _ = grids;
        Ok(None)
    }
}

impl TokenSource for ToyDataset {
    fn len(&self) -> usize {
        ToyDataset::len(self)
    }

    fn get(&self, index: usize) -> Result<(usize, Vec<u32>)> {
        let item = ToyDataset::get(self, index).ok_or_else(|| TrainError::Data {
            index,
            reason: format!(
                "index out of range (the toy dataset has {} items)",
                self.len()
            ),
        })?;
        Ok((item.class, item.tokens))
    }

    fn image_seq_len(&self) -> usize {
        TOY_TOKENS
    }

    fn codebook_size(&self) -> usize {
        TOY_CODEBOOK
    }

    fn num_classes(&self) -> usize {
        TOY_CLASSES
    }

    fn describe(&self) -> String {
        format!("the toy dataset ({} items)", self.len())
    }

    /// The palette rendering of [`crate::render_grid`]: one row of grids, 4 pixels per token.
    fn render_preview(&self, grids: &[Vec<u32>]) -> Result<Option<(u32, u32, Vec<u8>)>> {
        Ok(Some(crate::trainer::render_grid(
            grids,
            TOY_SIDE,
            grids.len(),
            4,
        )))
    }
}

/// Maps run positions to source indices (per-epoch shuffles seeded by `(seed, epoch)`).
#[derive(Debug, Clone)]
pub struct SampleStream {
    seed: u64,
    len: usize,
    cached: Option<(u64, Arc<Vec<usize>>)>,
}

impl SampleStream {
    /// The stream of a source with `len` items (`len > 0`).
    pub fn new(seed: u64, len: usize) -> Self {
        Self {
            seed,
            len,
            cached: None,
        }
    }

    /// The source index of run position `position`.
    pub fn index(&mut self, position: u64) -> usize {
        let len = self.len.max(1) as u64;
        let epoch = position / len;
        let order = match &self.cached {
            Some((e, order)) if *e == epoch => order.clone(),
            _ => {
                let mut order: Vec<usize> = (0..self.len).collect();
                Xoshiro256PlusPlus::for_stream(self.seed, &[SHUFFLE_STREAM, epoch])
                    .shuffle(&mut order);
                let order = Arc::new(order);
                self.cached = Some((epoch, order.clone()));
                order
            }
        };
        order[(position % len) as usize]
    }
}

/// One micro-batch of training data, on the device it will be trained on.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// Token ids `[b, N]` in raster order.
    pub tokens: Tensor<2, Int>,
    /// The true class of each sample (label dropout is applied in the train step).
    pub classes: Vec<usize>,
    /// Run position of the first sample (order sampling and label dropout are keyed by the
    /// positions `first_position + i`).
    pub first_position: u64,
    /// Index of this micro-batch in the run (`0, 1, …`; the dropout masks are keyed by it).
    pub micro_batch: u64,
}

/// How a run cuts its sample stream into micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlan {
    /// Samples per micro-batch (per device).
    pub micro_batch_size: usize,
    /// Micro-batch index of the first batch to yield.
    pub start: u64,
    /// Micro-batch index after the last batch to yield.
    pub end: u64,
    /// Yield every `stride`-th micro-batch, starting at `start` (one loader per device).
    pub stride: u64,
}

/// burn's [`DataLoader`] over the micro-batches `plan.start, plan.start + stride, …` of a run.
pub struct StepLoader<S: TokenSource> {
    source: Arc<S>,
    seed: u64,
    plan: BatchPlan,
    device: Device,
}

impl<S: TokenSource> Clone for StepLoader<S> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            seed: self.seed,
            plan: self.plan,
            device: self.device.clone(),
        }
    }
}

impl<S: TokenSource> StepLoader<S> {
    /// A loader over `plan` of `source`'s stream seeded by `seed`, yielding tensors on
    /// `device`.
    pub fn new(source: Arc<S>, seed: u64, plan: BatchPlan, device: Device) -> Self {
        Self {
            source,
            seed,
            plan,
            device,
        }
    }

    /// The micro-batch plan.
    pub fn plan(&self) -> BatchPlan {
        self.plan
    }

    fn num_batches(&self) -> u64 {
        let p = self.plan;
        if p.end <= p.start {
            0
        } else {
            (p.end - p.start).div_ceil(p.stride.max(1))
        }
    }

    /// Builds micro-batch `k` of the run on this loader's device.
    pub fn batch(&self, stream: &mut SampleStream, k: u64) -> Result<TokenBatch> {
        let b = self.plan.micro_batch_size;
        let n = self.source.image_seq_len();
        let first = k * b as u64;
        let own_order = self.source.provides_order();
        let mut tokens = Vec::with_capacity(b * n);
        let mut classes = Vec::with_capacity(b);
        for i in 0..b as u64 {
            let position = first + i;
            let (index, (class, ids)) = if own_order {
                let index = usize::try_from(position).unwrap_or(usize::MAX);
                (index, self.source.get_at(position)?)
            } else {
                let index = stream.index(position);
                (index, self.source.get(index)?)
            };
            let bad = |reason: String| TrainError::Data {
                index,
                reason: format!(
                    "{} ({}): {reason}",
                    self.source.describe(),
                    describe_position(own_order, position)
                ),
            };
            if ids.len() != n {
                return Err(bad(format!("{} tokens, expected {n}", ids.len())));
            }
            if class >= self.source.num_classes() {
                return Err(bad(format!(
                    "class {class} out of range (num_classes {})",
                    self.source.num_classes()
                )));
            }
            let v = self.source.codebook_size();
            if let Some(x) = ids.iter().find(|&&x| x as usize >= v) {
                return Err(bad(format!(
                    "token id {x} out of range (codebook size {v})"
                )));
            }
            tokens.extend(ids.iter().map(|&x| x as i64));
            classes.push(class);
        }
        Ok(TokenBatch {
            tokens: Tensor::from_data(TensorData::new(tokens, [b, n]), &self.device),
            classes,
            first_position: first,
            micro_batch: k,
        })
    }
}

/// How a sample was addressed, for error messages.
fn describe_position(own_order: bool, position: u64) -> String {
    if own_order {
        format!("run position {position}, in the source's own order")
    } else {
        format!("run position {position}")
    }
}

/// Iterator of a [`StepLoader`].
pub struct StepLoaderIter<'a, S: TokenSource> {
    loader: &'a StepLoader<S>,
    stream: SampleStream,
    next: u64,
    done: usize,
}

impl<S: TokenSource> Iterator for StepLoaderIter<'_, S> {
    type Item = std::result::Result<TokenBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let p = self.loader.plan;
        if self.next >= p.end {
            return None;
        }
        let k = self.next;
        self.next += p.stride.max(1);
        self.done += 1;
        Some(
            self.loader
                .batch(&mut self.stream, k)
                .map_err(DatasetError::new),
        )
    }
}

impl<S: TokenSource> DataLoaderIterator<TokenBatch> for StepLoaderIter<'_, S> {
    fn progress(&self) -> Progress {
        let b = self.loader.plan.micro_batch_size;
        Progress::new(
            self.done * b,
            self.loader.num_batches() as usize * b,
            Some("samples".into()),
        )
    }
}

impl<S: TokenSource + 'static> DataLoader<TokenBatch> for StepLoader<S> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<TokenBatch> + 'a> {
        Box::new(StepLoaderIter {
            loader: self,
            stream: SampleStream::new(self.seed, self.source.len()),
            next: self.plan.start,
            done: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.num_batches() as usize * self.plan.micro_batch_size
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<TokenBatch>> {
        let mut out = self.clone();
        out.device = device.clone();
        Arc::new(out)
    }

    /// Items `start..end` (rounded down to whole micro-batches) of this loader.
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<TokenBatch>> {
        let b = self.plan.micro_batch_size.max(1);
        let stride = self.plan.stride.max(1);
        let mut out = self.clone();
        out.plan.start = self.plan.start + (start / b) as u64 * stride;
        out.plan.end = (self.plan.start + (end / b) as u64 * stride).min(self.plan.end);
        Arc::new(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_a_permutation_per_epoch_and_reproducible() {
        let mut s = SampleStream::new(3, 10);
        let first: Vec<usize> = (0..10).map(|p| s.index(p)).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let second: Vec<usize> = (10..20).map(|p| s.index(p)).collect();
        assert_ne!(first, second, "each epoch has its own shuffle");
        let mut again = SampleStream::new(3, 10);
        assert_eq!(again.index(13), second[3]);
    }

    #[test]
    fn loader_yields_strided_micro_batches_and_slices() {
        let source = Arc::new(ToyDataset::new(1, 16));
        let plan = BatchPlan {
            micro_batch_size: 2,
            start: 1,
            end: 7,
            stride: 2,
        };
        let loader = StepLoader::new(source, 5, plan, Device::flex());
        let ks: Vec<u64> = loader.iter().map(|b| b.unwrap().micro_batch).collect();
        assert_eq!(ks, [1, 3, 5]);
        assert_eq!(loader.num_items(), 6);
        let sliced = loader.slice(2, 6);
        let ks: Vec<u64> = sliced.iter().map(|b| b.unwrap().micro_batch).collect();
        assert_eq!(ks, [3, 5]);
        let b = loader.iter().next().unwrap().unwrap();
        assert_eq!(b.first_position, 2);
        assert_eq!(b.tokens.dims(), [2, TOY_TOKENS]);
    }
}
