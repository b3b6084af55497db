//! The graph's pooling windows, all 3×3.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::prelude::*;

/// 3×3 average with stride 1 and padding 1, dividing by the number of *real* pixels in the
/// window: TensorFlow's average pool ignores the padding (torchvision's Inception counts it;
/// torch-fidelity and pytorch-fid patch that back).
pub(crate) fn average_3x3_same(x: Tensor<4>) -> Tensor<4> {
    AvgPool2dConfig::new([3, 3])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_count_include_pad(false)
        .init()
        .forward(x)
}

/// 3×3 maximum with stride 1 and padding 1 (the last block's pool branch in the 2015 graph).
pub(crate) fn max_3x3_same(x: Tensor<4>) -> Tensor<4> {
    MaxPool2dConfig::new([3, 3])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init()
        .forward(x)
}

/// 3×3 maximum with stride 2 and no padding (the grid reductions).
pub(crate) fn max_3x3_reduce(x: Tensor<4>) -> Tensor<4> {
    MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .init()
        .forward(x)
}
