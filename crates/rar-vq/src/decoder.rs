//! The tokenizer's decoder (the official `modeling/modules/maskgit_vqgan.py`): quantised latent `[B, z_channels, h, w]` →
//! image `[B, 3, h·f, w·f]` (not yet clamped).

use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;

use crate::config::TokenizerConfig;
use crate::conv::same_conv;
use crate::resblock::ResBlock;

/// One decoder level (`decoder.up.{i}`): residual blocks, then (except on level 0) a
/// nearest-neighbour ×2 upsampling followed by a 3×3 conv with bias.
#[derive(Module, Debug)]
pub struct UpLevel {
    /// The level's residual blocks (`block.{j}`).
    pub block: Vec<ResBlock>,
    /// 3×3 conv after the ×2 nearest upsampling; `None` on level 0.
    pub upsample_conv: Option<Conv2d>,
}

/// Decoder: `conv_in` (3×3, bias) → middle blocks → levels from the *last* down to `up.0`
/// → GN → SiLU → `conv_out` (3×3, bias).
///
/// The `up` list is stored by level index (`up.{i}` is level `i`, matching the checkpoint)
/// but executed in reverse, `up.{L−1}` first.
#[derive(Module, Debug)]
pub struct Decoder {
    /// 3×3 conv `z_channels → top width`, with bias.
    pub conv_in: Conv2d,
    /// Middle residual blocks at the top width.
    pub mid: Vec<ResBlock>,
    /// The levels, stored as `up.0 … up.{L−1}`.
    pub up: Vec<UpLevel>,
    /// Final GroupNorm over the level-0 width.
    pub norm_out: GroupNorm,
    /// 3×3 conv to `image_channels`, with bias.
    pub conv_out: Conv2d,
}

impl Decoder {
    /// Builds the decoder of `config` (parameters are initialised lazily by burn).
    pub fn new(config: &TokenizerConfig, device: &Device) -> Self {
        let (groups, eps) = (config.norm_groups, config.norm_eps);
        let levels = config.num_levels();
        let top = config.level_channels(levels - 1);
        let mut up = Vec::with_capacity(levels);
        for level in 0..levels {
            let c_out = config.level_channels(level);
            let mut c_in = if level + 1 < levels {
                config.level_channels(level + 1)
            } else {
                top
            };
            let mut block = Vec::with_capacity(config.num_res_blocks);
            for _ in 0..config.num_res_blocks {
                block.push(ResBlock::new(c_in, c_out, groups, eps, device));
                c_in = c_out;
            }
            let upsample_conv = (level != 0).then(|| same_conv(c_out, c_out, 3, true, device));
            up.push(UpLevel {
                block,
                upsample_conv,
            });
        }
        let c0 = config.level_channels(0);
        Self {
            conv_in: same_conv(config.z_channels, top, 3, true, device),
            mid: (0..config.num_res_blocks)
                .map(|_| ResBlock::new(top, top, groups, eps, device))
                .collect(),
            up,
            norm_out: GroupNormConfig::new(groups, c0)
                .with_epsilon(eps)
                .init(device),
            conv_out: same_conv(c0, config.image_channels, 3, true, device),
        }
    }

    /// `z_q`: `[B, z_channels, h, w]` → raw image `[B, C, h·f, w·f]` (unclamped).
    pub fn forward(&self, z_q: Tensor<4>) -> Tensor<4> {
        let mut h = self.forward_mid(z_q);
        for level in self.up.iter().rev() {
            h = level.forward(h);
        }
        self.conv_out.forward(silu(self.norm_out.forward(h)))
    }

    /// `conv_in` and the middle blocks (the fixtures' `dec_mid`).
    pub fn forward_mid(&self, z_q: Tensor<4>) -> Tensor<4> {
        let mut h = self.conv_in.forward(z_q);
        for block in &self.mid {
            h = block.forward(h);
        }
        h
    }
}

impl UpLevel {
    /// Residual blocks, then the optional nearest ×2 + conv.
    pub fn forward(&self, mut h: Tensor<4>) -> Tensor<4> {
        for block in &self.block {
            h = block.forward(h);
        }
        match &self.upsample_conv {
            Some(conv) => conv.forward(upsample_nearest_2x(h)),
            None => h,
        }
    }
}

/// Nearest-neighbour ×2 upsampling (`F.interpolate(scale_factor=2, mode="nearest")`):
/// every pixel becomes a 2×2 block. Written as broadcast + reshape so it is exact on every
/// backend.
pub fn upsample_nearest_2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}
