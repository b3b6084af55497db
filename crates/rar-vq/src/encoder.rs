//! The tokenizer's encoder (the official `modeling/modules/maskgit_vqgan.py`): image `[B, 3, H, W]` in `[0, 1]` → latent
//! `z` `[B, z_channels, H/f, W/f]`.

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;

use crate::config::TokenizerConfig;
use crate::conv::same_conv;
use crate::resblock::ResBlock;

/// One encoder level (`encoder.down.{i}`): residual blocks, then (except on the last level)
/// a 2×2 average pool with stride 2.
#[derive(Module, Debug)]
pub struct DownLevel {
    /// The level's residual blocks (`block.{j}`).
    pub block: Vec<ResBlock>,
    /// 2×2/2 average pooling; `None` on the last level.
    pub downsample: Option<AvgPool2d>,
}

/// Encoder: `conv_in` (3×3, no bias) → levels → middle blocks → GN → SiLU → `conv_out`
/// (1×1, with bias). No attention layers (the port removed them, the official `modeling/modules/maskgit_vqgan.py`).
#[derive(Module, Debug)]
pub struct Encoder {
    /// 3×3 conv `image_channels → base_channels`, no bias.
    pub conv_in: Conv2d,
    /// The resolution levels, `down.0` first.
    pub down: Vec<DownLevel>,
    /// Middle residual blocks at the last level's width.
    pub mid: Vec<ResBlock>,
    /// Final GroupNorm.
    pub norm_out: GroupNorm,
    /// 1×1 conv to `z_channels`, with bias.
    pub conv_out: Conv2d,
}

impl Encoder {
    /// Builds the encoder of `config` (parameters are initialised lazily by burn).
    pub fn new(config: &TokenizerConfig, device: &Device) -> Self {
        let (groups, eps) = (config.norm_groups, config.norm_eps);
        let levels = config.num_levels();
        let mut c_in = config.base_channels;
        let mut down = Vec::with_capacity(levels);
        for level in 0..levels {
            let c_out = config.level_channels(level);
            let mut block = Vec::with_capacity(config.num_res_blocks);
            for _ in 0..config.num_res_blocks {
                block.push(ResBlock::new(c_in, c_out, groups, eps, device));
                c_in = c_out;
            }
            let downsample = (level + 1 != levels).then(|| AvgPool2dConfig::new([2, 2]).init());
            down.push(DownLevel { block, downsample });
        }
        Self {
            conv_in: same_conv(
                config.image_channels,
                config.base_channels,
                3,
                false,
                device,
            ),
            down,
            mid: (0..config.num_res_blocks)
                .map(|_| ResBlock::new(c_in, c_in, groups, eps, device))
                .collect(),
            norm_out: GroupNormConfig::new(groups, c_in)
                .with_epsilon(eps)
                .init(device),
            conv_out: same_conv(c_in, config.z_channels, 1, true, device),
        }
    }

    /// `x`: `[B, C, H, W]`, H and W divisible by the downsampling factor → `z`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = self.conv_in.forward(x);
        for level in &self.down {
            h = level.forward(h);
        }
        for block in &self.mid {
            h = block.forward(h);
        }
        self.conv_out.forward(silu(self.norm_out.forward(h)))
    }

    /// Output of `conv_in` and of each level, for debugging against the fixtures'
    /// intermediate activations (`enc_conv_in`, `enc_down{i}`).
    pub fn forward_levels(&self, x: Tensor<4>) -> (Tensor<4>, Vec<Tensor<4>>) {
        let first = self.conv_in.forward(x);
        let mut h = first.clone();
        let mut outs = Vec::with_capacity(self.down.len());
        for level in &self.down {
            h = level.forward(h);
            outs.push(h.clone());
        }
        (first, outs)
    }
}

impl DownLevel {
    /// Residual blocks, then the optional pool.
    pub fn forward(&self, mut h: Tensor<4>) -> Tensor<4> {
        for block in &self.block {
            h = block.forward(h);
        }
        match &self.downsample {
            Some(pool) => pool.forward(h),
            None => h,
        }
    }
}
