//! The network's one layer type: convolution without bias, BatchNorm, ReLU.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// The BatchNorm epsilon of the 2015 TensorFlow graph (torch-fidelity's `eps=0.001`).
const BATCH_NORM_EPSILON: f64 = 1e-3;

/// `relu(bn(conv(x)))`: every convolution of the graph. Field names are the PyTorch keys
/// (`conv.weight`, `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var`).
///
/// The BatchNorm always uses its running statistics: the model lives on a device without
/// autodiff, where burn's BatchNorm takes its inference path.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    /// The convolution (no bias: the BatchNorm's shift takes its place).
    pub conv: Conv2d,
    /// The BatchNorm over its output channels.
    pub bn: BatchNorm,
}

impl BasicConv2d {
    /// A layer `c_in → c_out` with a `kernel` (`[h, w]`), a square `stride` and a symmetric
    /// zero `padding` (`[h, w]`).
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
        device: &Device,
    ) -> Self {
        let [ph, pw] = padding;
        Self {
            conv: Conv2dConfig::new([c_in, c_out], kernel)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(c_out)
                .with_epsilon(BATCH_NORM_EPSILON)
                .init(device),
        }
    }

    /// A 1×1 layer.
    pub fn pointwise(c_in: usize, c_out: usize, device: &Device) -> Self {
        Self::new(c_in, c_out, [1, 1], 1, [0, 0], device)
    }

    /// A square `k`×`k` layer with stride 1 and the padding that keeps the size.
    pub fn same(c_in: usize, c_out: usize, k: usize, device: &Device) -> Self {
        Self::new(c_in, c_out, [k, k], 1, [k / 2, k / 2], device)
    }

    /// A factorised `1×k` (`horizontal`) or `k×1` layer with stride 1 that keeps the size.
    pub fn line(c_in: usize, c_out: usize, k: usize, horizontal: bool, device: &Device) -> Self {
        if horizontal {
            Self::new(c_in, c_out, [1, k], 1, [0, k / 2], device)
        } else {
            Self::new(c_in, c_out, [k, 1], 1, [k / 2, 0], device)
        }
    }

    /// A `k`×`k` layer with stride 2 and no padding (the grid reductions).
    pub fn reduce(c_in: usize, c_out: usize, k: usize, device: &Device) -> Self {
        Self::new(c_in, c_out, [k, k], 2, [0, 0], device)
    }

    /// `[B, c_in, H, W]` → `[B, c_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}
