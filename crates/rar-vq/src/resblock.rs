//! The MaskGIT-VQGAN residual block `Res(c_in → c_out)` (the official `modeling/modules/maskgit_vqgan.py`).

use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;

use crate::conv::same_conv;

/// Residual block: `GN → SiLU → conv3×3 → GN → SiLU → conv3×3`, then a skip.
///
/// When the width changes, the reference's 1×1 `nin_shortcut` is applied to the block's *own
/// output* `h` (the block returns `h + W·h`) and the input has no skip path at all. This
/// mirrors the original JAX MaskGIT tokenizer and must be kept for the weights to work
/// Field names match the PyTorch keys (`norm1`, `conv1`, …).
#[derive(Module, Debug)]
pub struct ResBlock {
    /// GroupNorm over the `c_in` input channels.
    pub norm1: GroupNorm,
    /// 3×3 conv `c_in → c_out`, no bias.
    pub conv1: Conv2d,
    /// GroupNorm over `c_out` channels.
    pub norm2: GroupNorm,
    /// 3×3 conv `c_out → c_out`, no bias.
    pub conv2: Conv2d,
    /// 1×1 conv `c_out → c_out`, no bias, present only when `c_in ≠ c_out`.
    pub nin_shortcut: Option<Conv2d>,
}

impl ResBlock {
    /// Builds a block `c_in → c_out` with GroupNorm(`groups`, `eps`).
    pub fn new(c_in: usize, c_out: usize, groups: usize, eps: f64, device: &Device) -> Self {
        let norm = |c| {
            GroupNormConfig::new(groups, c)
                .with_epsilon(eps)
                .init(device)
        };
        Self {
            norm1: norm(c_in),
            conv1: same_conv(c_in, c_out, 3, false, device),
            norm2: norm(c_out),
            conv2: same_conv(c_out, c_out, 3, false, device),
            nin_shortcut: (c_in != c_out).then(|| same_conv(c_out, c_out, 1, false, device)),
        }
    }

    /// `x`: `[B, c_in, H, W]` → `[B, c_out, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        match &self.nin_shortcut {
            // The quirk: the shortcut sees `h`, not `x`.
            Some(shortcut) => h.clone() + shortcut.forward(h),
            None => h + x,
        }
    }
}
