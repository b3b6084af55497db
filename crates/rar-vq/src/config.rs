//! Tokenizer configuration (the official `modeling/modules/maskgit_vqgan.py`) and the
//! state-dict layout it implies (that of the official weight file).
//!
//! The defaults are the official `maskgit-vqgan-imagenet-f16-256.bin` preset. Reduced-width
//! models (the parity fixtures) use the same structure with other widths; their configuration
//! is derived from a checkpoint's tensor shapes by [`TokenizerConfig::from_shapes`] rather
//! than written down anywhere.

use std::collections::BTreeMap;

use burn::config::Config;

use crate::error::{Result, VqError};

/// Shape of every tensor of a tokenizer, keyed by its PyTorch state-dict name, in the file
/// order of the reference (encoder, decoder, quantizer).
pub type StateDictShapes = Vec<(String, Vec<usize>)>;

/// Configuration of the MaskGIT-VQGAN tokenizer (the official `modeling/modules/maskgit_vqgan.py`). Defaults are the official preset.
#[derive(Config, Debug, PartialEq)]
pub struct TokenizerConfig {
    /// Width of the first level (`hidden_channels`); every level's width is this times its
    /// multiplier. Official: 128.
    #[config(default = 128)]
    pub base_channels: usize,
    /// Per-level width multipliers (`channel_mult`); one level per entry, each but the last
    /// followed by a 2× downsampling in the encoder. Official: (1, 1, 2, 2, 4).
    #[config(default = "vec![1, 1, 2, 2, 4]")]
    pub channel_multipliers: Vec<usize>,
    /// Residual blocks per level and in the middle (`num_res_blocks`). Official: 2.
    #[config(default = 2)]
    pub num_res_blocks: usize,
    /// Image channels (RGB). Official: 3.
    #[config(default = 3)]
    pub image_channels: usize,
    /// Latent (codebook vector) width (`z_channels`). Official: 256.
    #[config(default = 256)]
    pub z_channels: usize,
    /// Number of codebook entries. Official: 1024.
    #[config(default = 1024)]
    pub codebook_size: usize,
    /// Nominal image side in pixels; the token grid side is this divided by
    /// [`TokenizerConfig::downsample_factor`]. The network itself is fully convolutional and
    /// accepts any side divisible by the factor. Official: 256.
    #[config(default = 256)]
    pub resolution: usize,
    /// GroupNorm groups. Official: 32.
    #[config(default = 32)]
    pub norm_groups: usize,
    /// GroupNorm epsilon (the reference uses 1e-6, not PyTorch's default 1e-5).
    #[config(default = 1e-6)]
    pub norm_eps: f64,
}

impl TokenizerConfig {
    /// The official `maskgit-vqgan-imagenet-f16-256.bin` preset (the official `modeling/modules/maskgit_vqgan.py`).
    pub fn official() -> Self {
        Self::new()
    }

    /// Number of resolution levels (`len(channel_mult)`).
    pub fn num_levels(&self) -> usize {
        self.channel_multipliers.len()
    }

    /// Width of level `level` (`base_channels × channel_multipliers[level]`).
    pub fn level_channels(&self, level: usize) -> usize {
        self.base_channels * self.channel_multipliers[level]
    }

    /// Spatial reduction from image to token grid: 2^(levels − 1) (16 for the official model).
    pub fn downsample_factor(&self) -> usize {
        1 << self.num_levels().saturating_sub(1)
    }

    /// Side of the token grid at the nominal resolution (16 for the official model).
    pub fn grid_side(&self) -> usize {
        self.resolution / self.downsample_factor()
    }

    /// Tokens per image at the nominal resolution (256 for the official model).
    pub fn num_tokens(&self) -> usize {
        self.grid_side() * self.grid_side()
    }

    /// Checks that the configuration describes a buildable network.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(VqError::InvalidConfig(m));
        if self.channel_multipliers.is_empty() {
            return bad("channel_multipliers is empty".into());
        }
        if self.channel_multipliers.len() > 16 {
            return bad(format!(
                "{} levels is more than this implementation supports (16)",
                self.channel_multipliers.len()
            ));
        }
        if self.base_channels == 0 || self.channel_multipliers.contains(&0) {
            return bad("channel widths must be positive".into());
        }
        if self.num_res_blocks == 0 {
            return bad("num_res_blocks must be at least 1".into());
        }
        if self.image_channels == 0 || self.z_channels == 0 || self.codebook_size == 0 {
            return bad("image_channels, z_channels and codebook_size must be positive".into());
        }
        if self.norm_groups == 0 {
            return bad("norm_groups must be positive".into());
        }
        for level in 0..self.num_levels() {
            let c = self.level_channels(level);
            if !c.is_multiple_of(self.norm_groups) {
                return bad(format!(
                    "level {level} has {c} channels, not divisible by {} GroupNorm groups",
                    self.norm_groups
                ));
            }
        }
        if !(self.norm_eps > 0.0 && self.norm_eps.is_finite()) {
            return bad(format!("norm_eps must be positive, got {}", self.norm_eps));
        }
        let f = self.downsample_factor();
        if self.resolution == 0 || !self.resolution.is_multiple_of(f) {
            return bad(format!(
                "resolution {} is not a positive multiple of the downsampling factor {f}",
                self.resolution
            ));
        }
        Ok(())
    }

    /// Every tensor of the reference state dict with its shape, in the official file's order.
    /// Pure arithmetic: nothing is allocated on a device, so this is also how
    /// the official preset's 168 keys are checked in tests.
    pub fn state_dict_shapes(&self) -> StateDictShapes {
        let mut out = StateDictShapes::new();
        let mut push = |k: String, s: Vec<usize>| out.push((k, s));
        let levels = self.num_levels();
        let b = self.base_channels;
        let z = self.z_channels;
        let img = self.image_channels;

        // Encoder.
        push("encoder.conv_in.weight".into(), vec![b, img, 3, 3]);
        let mut c_in = b;
        for level in 0..levels {
            let c_out = self.level_channels(level);
            for j in 0..self.num_res_blocks {
                res_block_shapes(
                    &mut push,
                    &format!("encoder.down.{level}.block.{j}"),
                    c_in,
                    c_out,
                );
                c_in = c_out;
            }
        }
        for j in 0..self.num_res_blocks {
            res_block_shapes(&mut push, &format!("encoder.mid.{j}"), c_in, c_in);
        }
        push("encoder.norm_out.weight".into(), vec![c_in]);
        push("encoder.norm_out.bias".into(), vec![c_in]);
        push("encoder.conv_out.weight".into(), vec![z, c_in, 1, 1]);
        push("encoder.conv_out.bias".into(), vec![z]);

        // Decoder: stored by level index, level i's input is level i+1's output.
        let top = self.level_channels(levels - 1);
        push("decoder.conv_in.weight".into(), vec![top, z, 3, 3]);
        push("decoder.conv_in.bias".into(), vec![top]);
        for j in 0..self.num_res_blocks {
            res_block_shapes(&mut push, &format!("decoder.mid.{j}"), top, top);
        }
        for level in 0..levels {
            let c_out = self.level_channels(level);
            let mut c_in = if level + 1 < levels {
                self.level_channels(level + 1)
            } else {
                top
            };
            for j in 0..self.num_res_blocks {
                res_block_shapes(
                    &mut push,
                    &format!("decoder.up.{level}.block.{j}"),
                    c_in,
                    c_out,
                );
                c_in = c_out;
            }
            if level != 0 {
                push(
                    format!("decoder.up.{level}.upsample_conv.weight"),
                    vec![c_out, c_out, 3, 3],
                );
                push(
                    format!("decoder.up.{level}.upsample_conv.bias"),
                    vec![c_out],
                );
            }
        }
        let c0 = self.level_channels(0);
        push("decoder.norm_out.weight".into(), vec![c0]);
        push("decoder.norm_out.bias".into(), vec![c0]);
        push("decoder.conv_out.weight".into(), vec![img, c0, 3, 3]);
        push("decoder.conv_out.bias".into(), vec![img]);

        // Quantizer.
        push(
            "quantize.embedding.weight".into(),
            vec![self.codebook_size, z],
        );
        out
    }

    /// Derives the configuration from a checkpoint's tensor shapes (any width, any number of
    /// levels and blocks) and checks that every tensor then has exactly the implied shape.
    ///
    /// `resolution` is kept from `self` (a fully convolutional network's weights do not
    /// determine it), as are the GroupNorm settings, which the weights cannot reveal either.
    pub fn from_shapes(&self, shapes: &BTreeMap<String, Vec<usize>>) -> Result<Self> {
        let get = |key: &str| {
            shapes.get(key).ok_or_else(|| {
                VqError::InvalidConfig(format!(
                    "cannot derive the configuration: the checkpoint has no '{key}'"
                ))
            })
        };
        let dims = |key: &str, rank: usize| -> Result<Vec<usize>> {
            let s = get(key)?;
            if s.len() != rank {
                return Err(VqError::InvalidConfig(format!(
                    "'{key}' has shape {s:?}, expected {rank} dimensions"
                )));
            }
            Ok(s.clone())
        };
        let conv_in = dims("encoder.conv_in.weight", 4)?;
        let (base, image_channels) = (conv_in[0], conv_in[1]);
        let mut levels = 0;
        while shapes.contains_key(&format!("encoder.down.{levels}.block.0.conv1.weight")) {
            levels += 1;
        }
        let mut blocks = 0;
        while shapes.contains_key(&format!("encoder.down.0.block.{blocks}.conv1.weight")) {
            blocks += 1;
        }
        if levels == 0 || blocks == 0 {
            return Err(VqError::InvalidConfig(
                "cannot derive the configuration: no 'encoder.down.0.block.0.conv1.weight'".into(),
            ));
        }
        let mut multipliers = Vec::with_capacity(levels);
        for level in 0..levels {
            let key = format!("encoder.down.{level}.block.0.conv1.weight");
            let c = dims(&key, 4)?[0];
            if base == 0 || c % base != 0 {
                return Err(VqError::InvalidConfig(format!(
                    "'{key}' has {c} output channels, not a multiple of the base width {base}"
                )));
            }
            multipliers.push(c / base);
        }
        let z_channels = dims("encoder.conv_out.weight", 4)?[0];
        let codebook = dims("quantize.embedding.weight", 2)?;
        let config = Self {
            base_channels: base,
            channel_multipliers: multipliers,
            num_res_blocks: blocks,
            image_channels,
            z_channels,
            codebook_size: codebook[0],
            resolution: self.resolution,
            norm_groups: self.norm_groups,
            norm_eps: self.norm_eps,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Shapes of one residual block `Res(c_in → c_out)` (the official `modeling/modules/maskgit_vqgan.py`). The 1×1 `nin_shortcut` is
/// `[c_out, c_out]`: it acts on the block's own output.
fn res_block_shapes(
    push: &mut impl FnMut(String, Vec<usize>),
    prefix: &str,
    c_in: usize,
    c_out: usize,
) {
    push(format!("{prefix}.norm1.weight"), vec![c_in]);
    push(format!("{prefix}.norm1.bias"), vec![c_in]);
    push(format!("{prefix}.conv1.weight"), vec![c_out, c_in, 3, 3]);
    push(format!("{prefix}.norm2.weight"), vec![c_out]);
    push(format!("{prefix}.norm2.bias"), vec![c_out]);
    push(format!("{prefix}.conv2.weight"), vec![c_out, c_out, 3, 3]);
    if c_in != c_out {
        push(
            format!("{prefix}.nin_shortcut.weight"),
            vec![c_out, c_out, 1, 1],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_counts_match_spec_totals() {
        // The official file: 168 tensors, 54,515,587 parameters.
        let shapes = TokenizerConfig::official().state_dict_shapes();
        assert_eq!(shapes.len(), 168);
        let params: usize = shapes
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 54_515_587);
        assert_eq!(TokenizerConfig::official().num_tokens(), 256);
    }

    #[test]
    fn derives_itself_from_its_own_shapes() {
        let small = TokenizerConfig::new()
            .with_base_channels(32)
            .with_channel_multipliers(vec![1, 2, 4])
            .with_num_res_blocks(1)
            .with_z_channels(8)
            .with_codebook_size(16)
            .with_resolution(32);
        let map: BTreeMap<_, _> = small.state_dict_shapes().into_iter().collect();
        let derived = TokenizerConfig::official()
            .with_resolution(32)
            .from_shapes(&map)
            .unwrap();
        assert_eq!(derived, small);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(
            TokenizerConfig::new()
                .with_channel_multipliers(vec![])
                .validate()
                .is_err()
        );
        assert!(
            TokenizerConfig::new()
                .with_base_channels(20)
                .validate()
                .is_err()
        );
        assert!(
            TokenizerConfig::new()
                .with_resolution(100)
                .validate()
                .is_err()
        );
    }
}
