//! From uint8 pixels to the evaluator's three feature sets, in batches.

use burn::prelude::*;
use burn::tensor::TensorData;

use super::network::{INPUT_SIDE, InceptionV3, POOL_FEATURES, SPATIAL_FEATURES};
use super::resize::tf1_resize_bilinear;
use crate::error::{EvalError, Result};

/// Features of a batch of images, on the host, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InceptionFeatures {
    /// Images in the batch.
    pub count: usize,
    /// `pool_3`, `[count, 2048]`.
    pub pool: Vec<f32>,
    /// `mixed_6/conv[..., :7]` flattened, `[count, 2023]`.
    pub spatial: Vec<f32>,
    /// `pool_3 · Wᵀ` without bias, `[count, classes]`.
    pub logits: Vec<f32>,
}

impl InceptionFeatures {
    /// Appends `other`'s rows.
    pub fn extend(&mut self, other: InceptionFeatures) {
        self.count += other.count;
        self.pool.extend(other.pool);
        self.spatial.extend(other.spatial);
        self.logits.extend(other.logits);
    }
}

/// The evaluator's feature pipeline: uint8 RGB images of any size → TF1 bilinear resize to
/// 299 → `(x − 128) / 128` → [`InceptionV3`] → host features.
#[derive(Debug)]
pub struct InceptionExtractor {
    model: InceptionV3,
    device: Device,
}

fn read_back(what: &'static str, t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| EvalError::Device {
            what,
            reason: format!("{e:?}"),
        })
}

impl InceptionExtractor {
    /// Wraps a loaded network; it runs on `device` (moved there if it is not).
    pub fn new(model: InceptionV3, device: &Device) -> Self {
        Self {
            model: model.to_device(device),
            device: device.clone(),
        }
    }

    /// The network.
    pub fn model(&self) -> &InceptionV3 {
        &self.model
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The features of `count` images `[count, height, width, 3]` (uint8 RGB, row-major, the
    /// layout of the evaluator's `.npz`), as one batch on the device.
    pub fn extract(
        &self,
        pixels: &[u8],
        count: usize,
        height: usize,
        width: usize,
    ) -> Result<InceptionFeatures> {
        let mut input = tf1_resize_bilinear(pixels, count, height, width, INPUT_SIDE)?;
        // The graph's scaling to [-1, 1] (`Sub`, then `Mul` by 1/128: exact either way).
        input.iter_mut().for_each(|v| *v = (*v - 128.0) / 128.0);
        let x = Tensor::<4>::from_data(
            TensorData::new(input, [count, 3, INPUT_SIDE, INPUT_SIDE]),
            &self.device,
        );
        let out = self.model.forward(x);
        let features = InceptionFeatures {
            count,
            pool: read_back("pool_3", out.pool)?,
            spatial: read_back("mixed_6/conv", out.spatial)?,
            logits: read_back("logits", out.logits)?,
        };
        debug_assert_eq!(features.pool.len(), count * POOL_FEATURES);
        debug_assert_eq!(features.spatial.len(), count * SPATIAL_FEATURES);
        Ok(features)
    }
}
