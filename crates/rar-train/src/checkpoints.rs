//! Step checkpoints: the run folder's `checkpoint-{step:08}/` sub-folders.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::tensor::Device;
use rar_model::Rar;

use crate::config::TrainingConfig;
use crate::error::{Result, TrainError};
use crate::optimizer::RarOptimizer;

/// The files of a checkpoint, in the order they are written and checksummed.
const FILES: [&str; 4] = ["model.bpk", "optimizer.bpk", "config.json", "step.txt"];
/// The checksum list of a checkpoint (absent in checkpoints of earlier versions).
const CHECKSUMS: &str = "checksums.json";

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

fn crc_of(path: &Path) -> Result<u32> {
    Ok(crc32fast::hash(
        &std::fs::read(path).map_err(|e| read_error(path, e))?,
    ))
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
    model.save_burnpack(tmp.join(FILES[0]))?;
    optimizer.save_state(&tmp.join(FILES[1]))?;
    let config_path = tmp.join(FILES[2]);
    config
        .save(&config_path)
        .map_err(|e| write_error(&config_path, e))?;
    let step_path = tmp.join(FILES[3]);
    std::fs::write(&step_path, format!("{step}\n")).map_err(|e| write_error(&step_path, e))?;
    let mut sums = serde_json::Map::new();
    for file in FILES {
        sums.insert(file.into(), crc_of(&tmp.join(file))?.into());
    }
    let sums_path = tmp.join(CHECKSUMS);
    std::fs::write(&sums_path, serde_json::Value::Object(sums).to_string())
        .map_err(|e| write_error(&sums_path, e))?;
    for file in FILES.iter().chain(&[CHECKSUMS]) {
        let path = tmp.join(file);
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| write_error(&path, e))?;
    }
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

/// The checkpoints of a run folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointScan {
    /// `checkpoint-*` folders with their steps (from `step.txt`), oldest first.
    pub found: Vec<(u64, PathBuf)>,
    /// `checkpoint-*` entries that are not checkpoints of a run (no readable `step.txt`, not
    /// a folder), with the reason; they are left alone.
    pub ignored: Vec<(PathBuf, String)>,
}

/// Scans `dir` for checkpoints; an absent `dir` has none.
pub fn scan_checkpoints(dir: &Path) -> Result<CheckpointScan> {
    let mut scan = CheckpointScan::default();
    if !dir.exists() {
        return Ok(scan);
    }
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("checkpoint-"));
        if !named {
            continue;
        }
        if !path.is_dir() {
            scan.ignored.push((path, "not a folder".into()));
            continue;
        }
        let step_path = path.join("step.txt");
        match std::fs::read_to_string(&step_path) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(step) => scan.found.push((step, path)),
                Err(e) => scan
                    .ignored
                    .push((path, format!("step.txt is not a step number: {e}"))),
            },
            Err(e) => scan
                .ignored
                .push((path, format!("no readable step.txt: {e}"))),
        }
    }
    scan.found.sort();
    Ok(scan)
}

/// The checkpoints of `dir` with their steps, oldest first ([`scan_checkpoints`] without the
/// ignored entries).
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    Ok(scan_checkpoints(dir)?.found)
}

/// Checks the files of the checkpoint folder `path` against its checksum list (checkpoints
/// written before the list existed are accepted as they are).
fn verify(path: &Path) -> Result<()> {
    let sums_path = path.join(CHECKSUMS);
    if !sums_path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&sums_path).map_err(|e| read_error(&sums_path, e))?;
    let sums: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| read_error(&sums_path, format!("not JSON: {e}")))?;
    for file in FILES {
        let want = sums[file].as_u64();
        let file_path = path.join(file);
        let got = crc_of(&file_path)?;
        if want != Some(u64::from(got)) {
            return Err(read_error(
                &file_path,
                format!(
                    "checksum mismatch (recorded {}, the file has {got:#010x}): the checkpoint is corrupt",
                    want.map_or("none".into(), |w| format!("{w:#010x}"))
                ),
            ));
        }
    }
    Ok(())
}

/// A checkpoint read back: its configuration, model and optimizer (at the checkpoint's step).
pub(crate) struct Restored {
    pub config: TrainingConfig,
    pub model: Rar,
    pub optimizer: RarOptimizer,
}

/// Reads the checkpoint folder `path`: checksums, configuration, step, model (on the autodiff
/// `device`) and optimizer state.
pub(crate) fn restore(path: &Path, device: &Device) -> Result<(Restored, u64)> {
    verify(path)?;
    let step_path = path.join("step.txt");
    let step = std::fs::read_to_string(&step_path)
        .map_err(|e| read_error(&step_path, e))?
        .trim()
        .parse::<u64>()
        .map_err(|e| read_error(&step_path, format!("not a step number: {e}")))?;
    let config_path = path.join("config.json");
    let config = TrainingConfig::load_checkpoint_config(&config_path)
        .map_err(|e| read_error(&config_path, e))?;
    let model = Rar::from_burnpack(path.join("model.bpk"), &config.model, device)?;
    let optimizer = RarOptimizer::new(
        &model,
        &config.adamw,
        config.lr_schedule()?,
        config.max_grad_norm,
    )?
    .with_step(step)
    .load_state(&path.join("optimizer.bpk"))?;
    Ok((
        Restored {
            config,
            model,
            optimizer,
        },
        step,
    ))
}

/// [`restore`] of the newest checkpoint in `dir`; when it cannot be read, the error names
/// the newest older checkpoint that can (so that the user can resume from it).
pub(crate) fn restore_newest(dir: &Path, device: &Device) -> Result<(PathBuf, Restored)> {
    let found = list_checkpoints(dir)?;
    let Some((_, newest)) = found.last() else {
        return Err(read_error(dir, "no checkpoint-* folder"));
    };
    match restore(newest, device) {
        Ok((restored, _)) => Ok((newest.clone(), restored)),
        Err(e) => {
            let fallback = found
                .iter()
                .rev()
                .skip(1)
                .find(|(_, p)| restore(p, device).is_ok())
                .map(|(_, p)| p.clone());
            Err(TrainError::Checkpoint {
                path: newest.clone(),
                reason: e.to_string(),
                fallback,
            })
        }
    }
}
