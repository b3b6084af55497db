//! Building a model from a weight file.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use rar_weights::{DTypeRule, WeightFile, WeightFormat};

use crate::checkpoint::infer::infer_config;
use crate::checkpoint::keys::{checkpoint_naming, expected_state_dict};
use crate::config::{RarConfig, RarPreset};
use crate::error::{RarModelError, Result};
use crate::model::Rar;

/// Every format the generator loads.
const FORMATS: [WeightFormat; 3] = [
    WeightFormat::Pytorch,
    WeightFormat::Safetensors,
    WeightFormat::Burnpack,
];

/// How a checkpoint is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadConfig {
    /// Accept NaN or infinite weights (to inspect a diverged run); by default they are an
    /// error naming the tensor.
    pub allow_non_finite: bool,
}

/// A model loaded from a checkpoint, with the configuration it was built from.
#[derive(Debug)]
pub struct LoadedCheckpoint {
    /// The model.
    pub model: Rar,
    /// Its configuration (given or inferred).
    pub config: RarConfig,
    /// The released preset with this architecture, if any.
    pub preset: Option<RarPreset>,
}

/// The stored shapes of a checkpoint of any format, keyed in the reference's naming (burnpack
/// files keep burn's layout for 2-D Linear weights), without reading tensor data.
pub fn checkpoint_shapes(path: impl AsRef<Path>) -> Result<BTreeMap<String, Vec<usize>>> {
    let naming = checkpoint_naming();
    Ok(WeightFile::open(path, &FORMATS, &naming)?.shapes_by_reference_key(&naming))
}

impl Rar {
    /// Loads a checkpoint of any supported format (chosen by extension), building the model
    /// for `config`, or for the configuration inferred from the file's shapes when `None`.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: Option<&RarConfig>,
        device: &Device,
    ) -> Result<LoadedCheckpoint> {
        Self::load(
            path.as_ref(),
            &FORMATS,
            config,
            device,
            LoadConfig::default(),
        )
    }

    /// [`Self::from_checkpoint`] with explicit loading settings.
    pub fn load_checkpoint(
        path: impl AsRef<Path>,
        config: Option<&RarConfig>,
        device: &Device,
        load: LoadConfig,
    ) -> Result<LoadedCheckpoint> {
        Self::load(path.as_ref(), &FORMATS, config, device, load)
    }

    /// Loads a PyTorch `torch.save` state dict (`rar_b.bin`, …) for `config`.
    pub fn from_pytorch(
        path: impl AsRef<Path>,
        config: &RarConfig,
        device: &Device,
    ) -> Result<Rar> {
        Self::load_as(path.as_ref(), WeightFormat::Pytorch, config, device)
    }

    /// Loads a SafeTensors file with the reference key names for `config`.
    pub fn from_safetensors(
        path: impl AsRef<Path>,
        config: &RarConfig,
        device: &Device,
    ) -> Result<Rar> {
        Self::load_as(path.as_ref(), WeightFormat::Safetensors, config, device)
    }

    /// Loads a burnpack file written by [`Rar::save_burnpack`] for `config`.
    pub fn from_burnpack(
        path: impl AsRef<Path>,
        config: &RarConfig,
        device: &Device,
    ) -> Result<Rar> {
        Self::load_as(path.as_ref(), WeightFormat::Burnpack, config, device)
    }

    /// [`Self::load`] accepting only `format`.
    fn load_as(
        path: &Path,
        format: WeightFormat,
        config: &RarConfig,
        device: &Device,
    ) -> Result<Rar> {
        Ok(Self::load(path, &[format], Some(config), device, LoadConfig::default())?.model)
    }

    fn load(
        path: &Path,
        formats: &[WeightFormat],
        config: Option<&RarConfig>,
        device: &Device,
        load: LoadConfig,
    ) -> Result<LoadedCheckpoint> {
        let naming = checkpoint_naming();
        // Only the index is parsed here; tensor data is read while applying.
        let file =
            WeightFile::open(path, formats, &naming)?.allow_non_finite(load.allow_non_finite);
        let config = match config {
            Some(c) => c.clone(),
            None => infer_config(&file.shapes_by_reference_key(&naming)).map_err(|reason| {
                RarModelError::InferConfig {
                    path: path.to_path_buf(),
                    reason,
                }
            })?,
        };
        config.validate()?;
        let model = config.try_init(device)?;
        let layout = if file.format().uses_reference_naming() {
            expected_state_dict(&config)
        } else {
            file.layout_of(&model, &naming)
        };
        file.check(&layout, DTypeRule::AnyFloat)?;
        let model = file.load_into(model, &naming)?;
        let preset = RarPreset::matching(&config);
        Ok(LoadedCheckpoint {
            model,
            config,
            preset,
        })
    }
}
