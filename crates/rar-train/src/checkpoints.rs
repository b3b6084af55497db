//! Step checkpoints: the run folder's `checkpoint-{step:08}/` sub-folders.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::tensor::Device;
use rar_model::Rar;

use crate::config::TrainingConfig;
use crate::error::{Result, TrainError};
use crate::optimizer::RarOptimizer;

fn write_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes `dir/checkpoint-{step:08}/` (see [`crate::Trainer::save_checkpoint`]).
pub(crate) fn write_checkpoint(
    dir: &Path,
    step: u64,
    model: &Rar,
    optimizer: &RarOptimizer,
    config: &TrainingConfig,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let name = format!("checkpoint-{step:08}");
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| write_error(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| write_error(&tmp, e))?;
    model.save_burnpack(tmp.join("model.bpk"))?;
    optimizer.save_state(&tmp.join("optimizer.bpk"))?;
    let config_path = tmp.join("config.json");
    config
        .save(&config_path)
        .map_err(|e| write_error(&config_path, e))?;
    let step_path = tmp.join("step.txt");
    std::fs::write(&step_path, format!("{step}\n")).map_err(|e| write_error(&step_path, e))?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| write_error(&target, e))?;
    }
    std::fs::rename(&tmp, &target).map_err(|e| write_error(&target, e))?;
    let mut all = list_checkpoints(dir)?;
    while all.len() > config.keep_checkpoints.max(1) {
        let (_, old) = all.remove(0);
        std::fs::remove_dir_all(&old).map_err(|e| write_error(&old, e))?;
    }
    Ok(target)
}

/// The `checkpoint-*` folders of `dir` with their steps (read from `step.txt`), oldest
/// first; an absent `dir` has none.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        let is_checkpoint = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("checkpoint-"));
        if !is_checkpoint || !path.is_dir() {
            continue;
        }
        let step_path = path.join("step.txt");
        let text = std::fs::read_to_string(&step_path).map_err(|e| read_error(&step_path, e))?;
        let step = text
            .trim()
            .parse::<u64>()
            .map_err(|e| read_error(&step_path, format!("not a step number: {e}")))?;
        out.push((step, path));
    }
    out.sort();
    Ok(out)
}

/// A checkpoint read back: its configuration, model and optimizer (at the checkpoint's step).
pub(crate) struct Restored {
    pub config: TrainingConfig,
    pub model: Rar,
    pub optimizer: RarOptimizer,
}

/// The newest checkpoint folder of `dir`, its configuration and step.
pub(crate) fn read_newest(dir: &Path) -> Result<(PathBuf, TrainingConfig, u64)> {
    let (step, path) = list_checkpoints(dir)?
        .pop()
        .ok_or_else(|| read_error(dir, "no checkpoint-* folder"))?;
    let config_path = path.join("config.json");
    let config = TrainingConfig::load_checkpoint_config(&config_path)
        .map_err(|e| read_error(&config_path, e))?;
    Ok((path, config, step))
}

/// The model (on the autodiff `device`) and optimizer state of the checkpoint folder `path`
/// (see [`read_newest`]).
pub(crate) fn restore(
    path: &Path,
    config: TrainingConfig,
    step: u64,
    device: &Device,
) -> Result<Restored> {
    let model = Rar::from_burnpack(path.join("model.bpk"), &config.model, device)?;
    let optimizer = RarOptimizer::new(
        &model,
        &config.adamw,
        config.lr_schedule()?,
        config.max_grad_norm,
    )?
    .with_step(step)
    .load_state(&path.join("optimizer.bpk"))?;
    Ok(Restored {
        config,
        model,
        optimizer,
    })
}
