//! Training inputs (see [`TrainingInputs`]).

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::rng::Xoshiro256PlusPlus;
use rar_core::{OrderSampler, RandomnessSchedule, SequenceLayout, TokenSpace};
use rar_data::RecordBatch;
use rar_model::condition::{condition_tensor, drop_class_labels};
use rar_model::{BatchOrders, RarConfig, RarInput};

use crate::config::TrainingConfig;
use crate::error::Result;

/// Stream key of the class-label-dropout uniforms (one generator per sample).
const LABEL_DROPOUT_STREAM: u64 = 0x6c61_6265_6c64;
/// Stream key of the device-RNG seeds that make the dropout masks.
const DROPOUT_STREAM: u64 = 0x6472_6f70_6f75;

/// What makes a batch of records a training input at step `t`: per-sample orders drawn with
/// the random-order probability `r(t)` (paper §3.2, Eq. 5), class-label dropout, and the seeds
/// of the dropout masks — each a function of `(seed, t, position)` so that a run is
/// reproducible and resumable however its steps are split into micro-batches.
#[derive(Debug, Clone)]
pub struct TrainingInputs {
    seed: u64,
    randomness: RandomnessSchedule,
    orders: OrderSampler,
    class_label_dropout: f64,
    space: TokenSpace,
    tokens_per_record: usize,
}

impl TrainingInputs {
    /// The inputs of the run `config` describes.
    pub fn new(config: &TrainingConfig) -> Result<Self> {
        Ok(Self {
            seed: config.seed,
            randomness: config.randomness()?,
            orders: OrderSampler::raster(config.seed, config.model.image_seq_len)?,
            class_label_dropout: config.model.class_label_dropout,
            space: config.model.token_space(),
            tokens_per_record: config.model.image_seq_len,
        })
    }

    /// The random-order probability `r(t)`.
    pub fn ratio(&self, t: u64) -> f64 {
        self.randomness.ratio(t)
    }

    /// The device-RNG seed of the dropout masks of the run's micro-batch `m` at step `t`.
    pub fn dropout_seed(&self, t: u64, m: u64) -> u64 {
        Xoshiro256PlusPlus::for_stream(self.seed, &[DROPOUT_STREAM, t, m]).next_u64()
    }

    /// The training input of `batch` at step `t` on `device`: one order per sample (random
    /// with probability `r(t)`, keyed by `(t, position)`) and the condition ids after
    /// class-label dropout (one uniform per sample from the stream `(seed, t, position)`).
    pub fn training(&self, batch: &RecordBatch, t: u64, device: &Device) -> Result<RarInput> {
        let b = batch.len();
        let first = batch.first_position;
        let layouts = self
            .orders
            .sample_batch(t, first, b, self.ratio(t))
            .into_iter()
            .map(|o| SequenceLayout::new(o.order))
            .collect::<rar_core::Result<Vec<_>>>()?;
        let uniforms: Vec<f64> = (0..b as u64)
            .map(|i| {
                Xoshiro256PlusPlus::for_stream(self.seed, &[LABEL_DROPOUT_STREAM, t, first + i])
                    .next_f64()
            })
            .collect();
        let ids = drop_class_labels(
            &classes(batch),
            &uniforms,
            self.class_label_dropout,
            &self.space,
        )?;
        Ok(RarInput {
            tokens: token_tensor(batch, self.tokens_per_record, device),
            condition: condition_tensor(&ids, device),
            orders: BatchOrders::new(layouts, device)?,
        })
    }
}

/// The evaluation input of `batch` for a model of `config`: raster order, true class labels.
pub(crate) fn evaluation_input(
    config: &RarConfig,
    batch: &RecordBatch,
    device: &Device,
) -> Result<RarInput> {
    let space = config.token_space();
    let ids = classes(batch)
        .iter()
        .map(|&c| space.class_id(c).map(|x| x as i64))
        .collect::<rar_core::Result<Vec<_>>>()?;
    Ok(RarInput {
        tokens: token_tensor(batch, config.image_seq_len, device),
        condition: condition_tensor(&ids, device),
        orders: BatchOrders::raster(batch.len(), config.image_seq_len, device)?,
    })
}

/// The `[b, N]` token tensor of a batch.
fn token_tensor(batch: &RecordBatch, n: usize, device: &Device) -> Tensor<2, Int> {
    let data: Vec<i64> = batch.tokens.iter().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(data, [batch.len(), n]), device)
}

fn classes(batch: &RecordBatch) -> Vec<usize> {
    batch.labels.iter().map(|&l| usize::from(l)).collect()
}
