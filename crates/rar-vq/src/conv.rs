//! TensorFlow-"same" padded 2-D convolutions (the reference's `Conv2dSame`, the official `modeling/modules/maskgit_vqgan.py`).
//!
//! The reference pads like TF `SAME`: for stride 1 the total padding is `k − 1`, split with
//! the smaller half before (top/left) and the larger half after (bottom/right). For the odd
//! kernels the tokenizer uses (3×3 and 1×1) that is 1 and 0 pixels of zeros on every side.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Device;

/// TF-"same" explicit padding `(top, left, bottom, right)` for a stride-1, dilation-1
/// convolution with a square `kernel`.
pub fn same_padding(kernel: usize) -> PaddingConfig2d {
    let total = kernel.saturating_sub(1);
    let before = total / 2;
    let after = total - before;
    PaddingConfig2d::Explicit(before, before, after, after)
}

/// A stride-1 "same" convolution `c_in → c_out` with a square `kernel`, with or without a
/// bias (the official `modeling/modules/maskgit_vqgan.py`: residual-block convs and the encoder's `conv_in` have none).
pub fn same_conv(c_in: usize, c_out: usize, kernel: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_padding(same_padding(kernel))
        .with_bias(bias)
        .init(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_splits_like_tensorflow() {
        assert_eq!(same_padding(1), PaddingConfig2d::Explicit(0, 0, 0, 0));
        assert_eq!(same_padding(3), PaddingConfig2d::Explicit(1, 1, 1, 1));
        assert_eq!(same_padding(4), PaddingConfig2d::Explicit(1, 1, 2, 2));
    }
}
