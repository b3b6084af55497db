//! Measuring a model: its validation loss, and the grids it samples (checked against the toy
//! classes where the data is the toy dataset).

use burn::tensor::Tensor;
use rar_data::toy::is_valid_instance;
use rar_data::{DataError, RecordBatch, TokenData};
use rar_model::{Decoder, Rar, on_compute_threads};
use rar_sample::{Sampler, SamplingConfig};

use crate::device_rng::device_rng;
use crate::error::{Result, TrainError};
use crate::inputs::evaluation_input;
use crate::optimizer::scalar;

/// Mean loss and token accuracy of `model` (use an inference model, e.g. `model.valid()`) on
/// every record of `data` in raster order with the true class labels, `batch_size` records
/// at a time.
pub fn validation_loss(model: &Rar, data: &dyn TokenData, batch_size: usize) -> Result<(f64, f64)> {
    let len = data.len();
    if len == 0 || batch_size == 0 {
        return Err(TrainError::InvalidSetting(
            "validation needs a non-empty dataset and a positive batch size".into(),
        ));
    }
    let device = model.device();
    let (mut loss_sum, mut acc_sum) = (0.0, 0.0);
    for start in (0..len).step_by(batch_size) {
        let end = (start + batch_size).min(len);
        let mut batch = RecordBatch {
            first_position: start as u64,
            labels: Vec::with_capacity(end - start),
            tokens: Vec::new(),
        };
        for i in start..end {
            let record = data.get(i)?;
            data.spec()
                .check(&record)
                .map_err(|reason| DataError::Record {
                    what: format!("{}, record {i}", data.describe()),
                    reason,
                })?;
            batch.labels.push(record.class);
            batch.tokens.extend(record.tokens);
        }
        let input = evaluation_input(model.config(), &batch, &device)?;
        let out = on_compute_threads(&device, || model.forward(input))?;
        let b = (end - start) as f64;
        loss_sum += scalar(out.loss()) * b;
        acc_sum += scalar(out.accuracy()) * b;
    }
    Ok((loss_sum / len as f64, acc_sum / len as f64))
}

/// Samples one token grid per entry of `classes` with the KV-cached sampler. The device RNG
/// is seeded with `seed` under the crate's RNG lock, so the result is reproducible per
/// backend. `decoder` is a `&Rar` or a [`rar_model::Decoder`] (e.g. the packed host decoder).
pub fn sample_grids<'m>(
    decoder: impl Into<Decoder<'m>>,
    classes: &[usize],
    config: &SamplingConfig,
    seed: u64,
) -> Result<Vec<Vec<u32>>> {
    if classes.is_empty() {
        return Err(TrainError::InvalidSetting(
            "sampling needs at least one class".into(),
        ));
    }
    let decoder = decoder.into();
    let ids: Tensor<2, burn::tensor::Int> = {
        let _rng = device_rng();
        Sampler::new(decoder).sample(classes, config, Some(seed))?
    };
    let n = decoder.model().config().image_seq_len;
    let flat = ids
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| TrainError::InvalidSetting(format!("sampled ids: {e:?}")))?;
    Ok(flat
        .chunks(n)
        .map(|row| row.iter().map(|&x| x as u32).collect())
        .collect())
}

/// Samples one grid per class ([`sample_grids`]) and checks each against its toy class
/// ([`is_valid_instance`]): the grids (raster order) and the share the checker accepts.
pub fn sample_validity<'m>(
    decoder: impl Into<Decoder<'m>>,
    classes: &[usize],
    config: &SamplingConfig,
    seed: u64,
) -> Result<(Vec<Vec<u32>>, f64)> {
    let grids = sample_grids(decoder, classes, config, seed)?;
    let valid = grids
        .iter()
        .zip(classes)
        .filter(|(g, c)| is_valid_instance(g, **c))
        .count();
    Ok((grids, valid as f64 / classes.len() as f64))
}
