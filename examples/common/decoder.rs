//! The `--decoder` flag of the sampling examples: burn's tensor ops, or the packed host
//! decoder (`rar::model::PackedDecoder`) in f32 or bf16.

use anyhow::{Context, Result};
use rar::model::{Decoder, PackedDecoder, PackedPrecision, Rar};

/// Which implementation runs the KV-cached decode.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderKind {
    /// Packed f32 weights on the CPU devices (flex, ndarray), tensor ops on GPUs.
    Auto,
    /// burn's tensor ops on the device.
    Tensor,
    /// Weights packed on the host, f32 (same values as `tensor` up to rounding).
    Packed,
    /// Weights packed on the host in bf16 (half the memory traffic; logits within ~1e-2).
    PackedBf16,
}

/// The flag.
#[derive(clap::Args, Debug, Clone)]
pub struct DecoderArgs {
    /// Decode implementation: auto (packed on CPU devices), tensor, packed, packed-bf16.
    #[arg(long, value_enum, default_value_t = DecoderKind::Auto)]
    pub decoder: DecoderKind,
}

impl DecoderArgs {
    /// The packing precision for the device named `device` (`None`: tensor ops).
    pub fn precision(&self, device: &str) -> Option<PackedPrecision> {
        let cpu = {
            let d = device.trim().to_ascii_lowercase();
            d == "flex" || d == "ndarray"
        };
        match self.decoder {
            DecoderKind::Auto if cpu => Some(PackedPrecision::F32),
            DecoderKind::Auto | DecoderKind::Tensor => None,
            DecoderKind::Packed => Some(PackedPrecision::F32),
            DecoderKind::PackedBf16 => Some(PackedPrecision::Bf16),
        }
    }

    /// Packs `model` when the flag asks for it (keep the result alive while decoding).
    pub fn pack(&self, model: &Rar, device: &str) -> Result<Option<PackedDecoder>> {
        self.precision(device)
            .map(|p| PackedDecoder::new(model, p).context("packing the weights"))
            .transpose()
    }

    /// A short description for the examples' first line.
    pub fn describe(&self, device: &str) -> &'static str {
        match self.precision(device) {
            None => "tensor ops",
            Some(PackedPrecision::F32) => "packed f32",
            Some(PackedPrecision::Bf16) => "packed bf16",
        }
    }
}

/// The decoder over `model`, packed when `packed` is given.
pub fn decoder<'m>(model: &'m Rar, packed: Option<&'m PackedDecoder>) -> Result<Decoder<'m>> {
    Ok(match packed {
        Some(p) => Decoder::packed(model, p)?,
        None => Decoder::from(model),
    })
}
