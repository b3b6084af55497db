//! Loading tokenizer weights from the official PyTorch `.bin` (a `torch.save` state dict) or
//! from `.safetensors` with the same keys, through rar-weights (the mechanism the generator
//! uses too).
//!
//! The tokenizer's field names equal the PyTorch keys, so its [`Naming`] renames nothing:
//! GroupNorm `weight/bias` ⇄ `gamma/beta` follows from the module type, conv weights are
//! `[out, in, kh, kw]` in both frameworks and the codebook is `[num_codes, dim]` in both.
//! Loading is strict, like the reference's `load_state_dict(strict=True)`: every key must be
//! present with exactly the shape the configuration implies, in f32, and no extra key may
//! exist. The checks run on the file's index before any parameter is allocated.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::DType;
use rar_weights::{
    DTypeRule, ExpectedTensor, Naming, StoredTensor, WeightError, WeightFile, WeightFormat,
};

use crate::config::TokenizerConfig;
use crate::error::{Result, VqError};
use crate::tokenizer::Tokenizer;

/// File name of the official tokenizer checkpoint (`fun-research/TiTok` on the hub).
pub const OFFICIAL_CHECKPOINT_NAME: &str = "maskgit-vqgan-imagenet-f16-256.bin";

/// The formats the tokenizer is loaded from: the reference's only.
const FORMATS: [WeightFormat; 2] = [WeightFormat::Pytorch, WeightFormat::Safetensors];

/// The tokenizer's key mapping: the identity (burn-store's contiguous index mapping on).
fn naming() -> Naming {
    Naming::new()
}

/// The tensor names, shapes and dtypes of a tokenizer checkpoint, without loading any data.
pub fn read_tensor_info(path: impl AsRef<Path>) -> Result<BTreeMap<String, StoredTensor>> {
    Ok(WeightFile::open(path, &FORMATS, &naming())?.index())
}

/// The layout `config` implies, in the file's naming.
fn layout(config: &TokenizerConfig) -> Vec<ExpectedTensor> {
    config
        .state_dict_shapes()
        .into_iter()
        .map(|(key, shape)| ExpectedTensor::new(key, shape))
        .collect()
}

impl Tokenizer {
    /// Loads a tokenizer from `path` (`.bin`/`.pt`/`.pth` or `.safetensors`), deriving its
    /// configuration from the tensor shapes (the official file gives the official preset).
    /// The nominal resolution is the official 256; use [`Tokenizer::from_file_with_config`]
    /// to choose another.
    pub fn from_file(path: impl AsRef<Path>, device: &Device) -> Result<(Self, TokenizerConfig)> {
        let path = path.as_ref();
        let file = WeightFile::open(path, &FORMATS, &naming())?;
        let shapes = file
            .index()
            .into_iter()
            .map(|(k, t)| (k, t.shape))
            .collect();
        let config = TokenizerConfig::official()
            .from_shapes(&shapes)
            .map_err(|e| match e {
                VqError::InvalidConfig(m) => VqError::Weights(WeightError::Read {
                    path: path.to_path_buf(),
                    reason: format!("not a MaskGIT-VQGAN checkpoint: {m}"),
                }),
                other => other,
            })?;
        let model = load_checked(file, &config, device)?;
        Ok((model, config))
    }

    /// Loads weights for an explicit `config`; any key, shape or dtype that disagrees with it
    /// is an error naming the file, the key and both shapes.
    pub fn from_file_with_config(
        path: impl AsRef<Path>,
        config: &TokenizerConfig,
        device: &Device,
    ) -> Result<Self> {
        let file = WeightFile::open(path, &FORMATS, &naming())?;
        load_checked(file, config, device)
    }
}

fn load_checked(file: WeightFile, config: &TokenizerConfig, device: &Device) -> Result<Tokenizer> {
    file.check(&layout(config), DTypeRule::Exactly(DType::F32))?;
    let model = config.init(device)?;
    Ok(file.load_into(model, &naming())?)
}
