//! Writing a module's weights.

use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot, SafetensorsStore};

use crate::error::{Result, WeightError};
use crate::format::WeightFormat;
use crate::naming::Naming;

/// Writes the file through `write` into a hidden temporary sibling, then renames it over
/// `path`: a failure leaves an existing file intact.
fn atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| WeightError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn expect(path: &Path, format: WeightFormat) -> Result<()> {
    if WeightFormat::from_path(path) != Some(format) {
        return Err(WeightError::UnknownFormat {
            path: path.to_path_buf(),
            accepted: format.extensions().into(),
        });
    }
    Ok(())
}

/// Saves `module` as SafeTensors in the reference's naming (through `naming`) and PyTorch
/// layout, loadable by the reference with `load_state_dict(strict=True)`. The file must end in
/// `.safetensors`; an existing file is replaced atomically.
pub fn save_safetensors<M: ModuleSnapshot>(module: &M, path: &Path, naming: &Naming) -> Result<()> {
    expect(path, WeightFormat::Safetensors)?;
    atomically(path, |tmp| {
        let mut store = SafetensorsStore::from_file(tmp)
            .with_to_adapter(BurnToPyTorchAdapter)
            .remap(naming.save_remapper())
            .overwrite(true);
        module
            .save_into(&mut store)
            .map_err(|e| WeightError::Write {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    })
}

/// Saves `module` in burn's burnpack format (module paths, burn layout, parameter ids kept so
/// that an optimizer state saved alongside still matches), with `metadata` entries. The file
/// must end in `.bpk`; an existing file is replaced atomically.
pub fn save_burnpack<M: ModuleSnapshot>(
    module: &M,
    path: &Path,
    metadata: &[(&str, String)],
) -> Result<()> {
    expect(path, WeightFormat::Burnpack)?;
    atomically(path, |tmp| {
        let mut store = BurnpackStore::from_file(tmp)
            .auto_extension(false)
            .overwrite(true);
        for (key, value) in metadata {
            store = store.metadata(*key, value.clone());
        }
        module
            .save_into(&mut store)
            .map_err(|e| WeightError::Write {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    })
}
