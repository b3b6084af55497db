//! Choosing and loading a generator checkpoint (`sample_imagenet`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use rar::model::{LoadConfig, LoadedCheckpoint, Rar, RarConfig, RarPreset};

// (a plain comment: clap would show a doc comment as the program's description)
// The generator checkpoint and how to read it.
#[derive(clap::Args, Debug, Clone)]
pub struct GeneratorFlags {
    /// Generator checkpoint (.bin from the official release, .safetensors or .bpk).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Model preset (rar-b, rar-l, rar-xl, rar-xxl) [default: inferred from the checkpoint].
    #[arg(long)]
    pub preset: Option<String>,
    /// A reference-format config.json instead of a preset (e.g. for small custom models).
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Load weights even when they hold NaN or infinite values (to inspect a diverged run).
    #[arg(long)]
    pub allow_non_finite: bool,
}

/// The configuration a `--preset` name or a reference `--config` file gives; `None` when
/// neither is given (the loader infers it from the checkpoint).
pub fn model_config(preset: Option<&str>, config: Option<&Path>) -> Result<Option<RarConfig>> {
    Ok(match (preset, config) {
        (Some(name), _) => Some(
            RarPreset::from_name(name)
                .with_context(|| format!("unknown preset '{name}' (rar-b … rar-xxl)"))?
                .config(),
        ),
        (_, Some(path)) => Some(RarConfig::from_reference_json(path)?),
        _ => None,
    })
}

impl GeneratorFlags {
    /// Loads the checkpoint on `device`.
    pub fn load(&self, device: &Device) -> Result<LoadedCheckpoint> {
        let config = model_config(self.preset.as_deref(), self.config.as_deref())?;
        let load = LoadConfig {
            allow_non_finite: self.allow_non_finite,
        };
        Rar::load_checkpoint(&self.checkpoint, config.as_ref(), device, load)
            .with_context(|| format!("loading {}", self.checkpoint.display()))
    }
}
