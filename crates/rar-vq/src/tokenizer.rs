//! The complete tokenizer: encoder + quantiser + decoder (the official `modeling/modules/maskgit_vqgan.py`).

use burn::prelude::*;

use crate::config::TokenizerConfig;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Result, VqError};
use crate::quantizer::VectorQuantizer;

/// The MaskGIT-VQGAN tokenizer.
///
/// Field names follow the PyTorch state dict (`encoder.*`, `decoder.*`,
/// `quantize.embedding.weight`), so the official checkpoint loads without key remapping
/// (burn's PyTorch adapter only renames GroupNorm `weight/bias` to `gamma/beta`).
///
/// Conventions (as the official `demo_util.py` uses it): input RGB in `[0, 1]`, no mean/std normalisation; ids
/// row-major over the token grid; decoded images clamped to `[0, 1]`.
#[derive(Module, Debug)]
pub struct Tokenizer {
    /// Image → latent.
    pub encoder: Encoder,
    /// Latent → image.
    pub decoder: Decoder,
    /// The codebook.
    pub quantize: VectorQuantizer,
}

impl TokenizerConfig {
    /// Builds a tokenizer with burn's default (random) initialisation; load weights with
    /// [`Tokenizer::from_file`] instead for real use. Parameters are created lazily, so this
    /// allocates nothing until a tensor is used or loaded.
    pub fn init(&self, device: &Device) -> Result<Tokenizer> {
        self.validate()?;
        Ok(Tokenizer {
            encoder: Encoder::new(self, device),
            decoder: Decoder::new(self, device),
            quantize: VectorQuantizer::new(self.codebook_size, self.z_channels, device),
        })
    }
}

impl Tokenizer {
    /// Number of codebook entries.
    pub fn codebook_size(&self) -> usize {
        self.quantize.codebook_size()
    }

    /// Spatial reduction from image to grid (16 for the official model).
    pub fn downsample_factor(&self) -> usize {
        1 << self.encoder.down.len().saturating_sub(1)
    }

    /// Image channels the encoder expects (3).
    pub fn image_channels(&self) -> usize {
        self.encoder.conv_in.weight.lazy_shape()[1]
    }

    /// The device holding the parameters.
    pub fn device(&self) -> Device {
        self.quantize.embedding.weight.lazy_device()
    }

    fn check_images(&self, images: &Tensor<4>) -> Result<()> {
        let [_, c, h, w] = images.dims();
        let f = self.downsample_factor();
        if c != self.image_channels() {
            return Err(VqError::input(
                "images",
                format!(
                    "expected {} channels, got shape {:?}",
                    self.image_channels(),
                    images.dims()
                ),
            ));
        }
        if h == 0 || w == 0 || h % f != 0 || w % f != 0 {
            return Err(VqError::input(
                "images",
                format!(
                    "height and width must be positive multiples of {f}, got shape {:?}",
                    images.dims()
                ),
            ));
        }
        Ok(())
    }

    /// Encoder output `z` `[B, z_channels, H/f, W/f]` (pre-quantisation).
    pub fn encode_latent(&self, images: Tensor<4>) -> Result<Tensor<4>> {
        self.check_images(&images)?;
        Ok(self.encoder.forward(images))
    }

    /// Token ids `[B, (H/f)·(W/f)]` (row-major) of images `[B, 3, H, W]` in `[0, 1]`.
    pub fn encode(&self, images: Tensor<4>) -> Result<Tensor<2, Int>> {
        Ok(self.quantize.encode(self.encode_latent(images)?))
    }

    /// Ids and the quantised latent `z_q` (codebook rows of the ids), what the decoder gets.
    pub fn encode_with_latents(&self, images: Tensor<4>) -> Result<(Tensor<2, Int>, Tensor<4>)> {
        let z = self.encode_latent(images)?;
        let [_, _, h, w] = z.dims();
        let ids = self.quantize.encode(z);
        let z_q = self.quantize.lookup(ids.clone(), h, w);
        Ok((ids, z_q))
    }

    /// Checks ids `[B, N]`: N a positive square, every id in `[0, codebook_size)`.
    /// Returns the grid side. Reads back the minimum and maximum (two scalars).
    pub fn check_ids(&self, ids: &Tensor<2, Int>) -> Result<usize> {
        let [b, n] = ids.dims();
        let side = (n as f64).sqrt().round() as usize;
        if b == 0 || n == 0 || side * side != n {
            return Err(VqError::input(
                "ids",
                format!(
                    "expected [B, N] with B > 0 and N a square number of tokens, got [{b}, {n}]"
                ),
            ));
        }
        let read = |t: Tensor<1, Int>| -> Result<i64> {
            t.into_data()
                .try_into_vec_as::<i64>()
                .map_err(|e| VqError::input("ids", format!("cannot read ids: {e:?}")))
                .map(|v| v[0])
        };
        let min = read(ids.clone().min())?;
        let max = read(ids.clone().max())?;
        let v = self.codebook_size();
        for value in [min, max] {
            if value < 0 || value >= v as i64 {
                return Err(VqError::TokenOutOfRange {
                    value,
                    codebook_size: v,
                });
            }
        }
        Ok(side)
    }

    /// Decoder output for ids `[B, N]` before the clamp (N = side², row-major grid).
    pub fn decode_raw(&self, ids: Tensor<2, Int>) -> Result<Tensor<4>> {
        let side = self.check_ids(&ids)?;
        let z_q = self.quantize.lookup(ids, side, side);
        Ok(self.decoder.forward(z_q))
    }

    /// Images `[B, 3, side·f, side·f]` in `[0, 1]` for ids `[B, N]` (the official `sample_imagenet_rar.py`).
    pub fn decode(&self, ids: Tensor<2, Int>) -> Result<Tensor<4>> {
        Ok(self.decode_raw(ids)?.clamp(0.0, 1.0))
    }

    /// Decodes ids `[B, N]` straight to 8-bit RGB images (clamp, `floor(255·x)`, HWC).
    pub fn decode_to_images(&self, ids: Tensor<2, Int>) -> Result<Vec<image::RgbImage>> {
        crate::convert::tensor_to_images(self.decode(ids)?)
    }

    /// Decodes token rows given as plain integers (e.g. read from a shard or produced by a
    /// sampler on the host), `tokens.len()` a multiple of `tokens_per_image`.
    pub fn decode_tokens_to_images(
        &self,
        tokens: &[u32],
        tokens_per_image: usize,
    ) -> Result<Vec<image::RgbImage>> {
        if tokens_per_image == 0
            || tokens.is_empty()
            || !tokens.len().is_multiple_of(tokens_per_image)
        {
            return Err(VqError::input(
                "tokens",
                format!(
                    "{} tokens is not a positive multiple of {tokens_per_image} per image",
                    tokens.len()
                ),
            ));
        }
        let b = tokens.len() / tokens_per_image;
        let data: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(data, [b, tokens_per_image]),
            &self.device(),
        );
        self.decode_to_images(ids)
    }
}
