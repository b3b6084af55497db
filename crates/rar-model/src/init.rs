//! Parameter initialisers matching the reference (the official `modeling/rar.py`).
//!
//! The reference draws every Linear and Embedding weight and the three positional tables from a
//! normal distribution with standard deviation 0.02 truncated to the *absolute* interval
//! `[−2, 2]` (timm's `trunc_normal_`), sets biases to 0 and LayerNorm scales to 1, leaves
//! `cls_token` at zero, and zeroes every adaLN modulation (adaLN-zero) so that each block starts
//! as the identity. burn's [`Initializer`] has no truncated normal, so this module provides
//! one. All parameters are created lazily ([`Param::uninitialized`]): building a model
//! allocates nothing until a weight is first used or loaded, which is what lets a checkpoint be
//! loaded without first filling a throw-away random model, and lets the full-size presets be
//! inspected without memory.

use burn::module::{Param, ParamId};
use burn::nn::{Embedding, Initializer, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Distribution, Shape, Tensor};

/// Standard deviation of the reference's weight initialisation.
pub const INIT_STD: f64 = 0.02;

/// Absolute truncation bound of the reference's `trunc_normal_` (`a = −2`, `b = 2`).
pub const TRUNC_BOUND: f64 = 2.0;

/// A lazily initialised parameter drawn from `N(0, std²)` truncated to `[−bound, bound]`.
///
/// Values outside the interval are redrawn until none remain, which gives exactly the
/// truncated distribution (with the reference's `std = 0.02`, `bound = 2` that never happens
/// in practice, but other settings are handled correctly).
pub fn trunc_normal<const D: usize>(
    shape: [usize; D],
    std: f64,
    bound: f64,
    device: &Device,
) -> Param<Tensor<D>> {
    Param::uninitialized(
        ParamId::new(),
        move |device, require_grad| {
            let mut tensor = sample_trunc_normal::<D>(shape, std, bound, device);
            if require_grad {
                tensor = tensor.require_grad();
            }
            tensor
        },
        device.clone(),
        true,
        Shape::from(shape),
    )
}

/// Draws a tensor from `N(0, std²)` truncated to `[−bound, bound]` by rejection.
pub fn sample_trunc_normal<const D: usize>(
    shape: [usize; D],
    std: f64,
    bound: f64,
    device: &Device,
) -> Tensor<D> {
    let mut x = Tensor::<D>::random(shape, Distribution::Normal(0.0, std), device);
    loop {
        let outside = x.clone().abs().greater_elem(bound);
        if !outside.clone().any().into_scalar::<bool>() {
            return x;
        }
        let fresh = Tensor::<D>::random(shape, Distribution::Normal(0.0, std), device);
        x = x.mask_where(outside, fresh);
    }
}

/// A Linear layer (`[d_in, d_out]` in burn's layout) with truncated-normal(0.02) weight and
/// zero bias: the reference's default for every Linear.
pub fn linear_trunc_normal(d_in: usize, d_out: usize, device: &Device) -> Linear {
    Linear {
        weight: trunc_normal([d_in, d_out], INIT_STD, TRUNC_BOUND, device),
        bias: Some(Initializer::Zeros.init([d_out], device)),
    }
}

/// A Linear layer with zero weight and zero bias: the adaLN-zero modulation layers.
pub fn linear_zeros(d_in: usize, d_out: usize, device: &Device) -> Linear {
    Linear {
        weight: Initializer::Zeros.init([d_in, d_out], device),
        bias: Some(Initializer::Zeros.init([d_out], device)),
    }
}

/// An embedding table with truncated-normal(0.02) rows.
pub fn embedding_trunc_normal(rows: usize, dim: usize, device: &Device) -> Embedding {
    Embedding {
        weight: trunc_normal([rows, dim], INIT_STD, TRUNC_BOUND, device),
    }
}

/// An affine LayerNorm (scale 1, bias 0) with the given epsilon.
pub fn layer_norm(dim: usize, eps: f64, device: &Device) -> LayerNorm {
    LayerNormConfig::new(dim).with_epsilon(eps).init(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_normal_is_truncated() {
        // N(0, 1) truncated to ±0.5: std = sqrt(1 − 2·0.5·φ(0.5) / (2Φ(0.5) − 1)) = 0.28388.
        let device = Device::flex();
        device.seed(7);
        let x: Vec<f32> = sample_trunc_normal([200, 500], 1.0, 0.5, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let max = x.iter().map(|v| v.abs()).fold(0.0, f32::max);
        assert!(max <= 0.5, "max {max}");
        assert!((std - 0.28388).abs() < 0.003, "std {std}");
        assert!(mean.abs() < 0.003, "mean {mean}");
    }
}
