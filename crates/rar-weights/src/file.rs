//! A weight file opened for reading: its index, its checks, and loading it into a module.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, BurnpackStore, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;

use crate::check::{DTypeRule, ExpectedTensor, StoredTensor, check_index};
use crate::error::{Result, WeightError};
use crate::finite::first_non_finite;
use crate::format::WeightFormat;
use crate::naming::Naming;
use crate::params::{ModuleParam, module_parameters};

/// A weight file whose tensor index has been read (names, shapes, dtypes; no tensor data).
///
/// Tensor data is read lazily while [`Self::load_into`] applies it, so a file is read once
/// and never held in memory twice.
pub struct WeightFile {
    path: PathBuf,
    format: WeightFormat,
    tensors: BTreeMap<String, PackTensor>,
    allow_non_finite: bool,
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Runs a third-party reader, turning both its error and its panic into
/// [`WeightError::Read`]: a malformed file must never bring the process down.
fn guarded<T, E: std::fmt::Display>(
    path: &Path,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> Result<T> {
    let read = |reason: String| WeightError::Read {
        path: path.to_path_buf(),
        reason,
    };
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(read(e.to_string())),
        Err(panic) => Err(read(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the reader panicked".into()),
        )),
    }
}

fn all_tensors<S: ModuleStore>(path: &Path, mut store: S) -> Result<BTreeMap<String, PackTensor>> {
    guarded(path, || store.get_all_tensors().cloned())
}

impl WeightFile {
    /// Opens `path` if its extension names one of `accepted`, and reads its tensor index.
    /// A missing file, a directory, or a file its format's reader rejects is
    /// [`WeightError::Read`]; another extension is [`WeightError::UnknownFormat`].
    pub fn open(
        path: impl AsRef<Path>,
        accepted: &[WeightFormat],
        naming: &Naming,
    ) -> Result<Self> {
        let path = path.as_ref();
        let read = |reason: &str| WeightError::Read {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(read("it is a directory, not a weight file")),
            Ok(_) => {}
            Err(e) => return Err(read(&e.to_string())),
        }
        let format = WeightFormat::from_path(path)
            .filter(|f| accepted.contains(f))
            .ok_or_else(|| WeightError::UnknownFormat {
                path: path.to_path_buf(),
                accepted: accepted
                    .iter()
                    .map(|f| f.extensions())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let tensors = match format {
            WeightFormat::Pytorch => all_tensors(
                path,
                PytorchStore::from_file(path).map_indices_contiguous(naming.contiguous_indices()),
            )?,
            WeightFormat::Safetensors => all_tensors(path, SafetensorsStore::from_file(path))?,
            WeightFormat::Burnpack => {
                all_tensors(path, BurnpackStore::from_file(path).auto_extension(false))?
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            format,
            tensors,
            allow_non_finite: false,
        })
    }

    /// Lets [`Self::load_into`] accept tensors holding NaN or infinite values (for debugging
    /// a diverged run); by default they are [`WeightError::NonFinite`].
    pub fn allow_non_finite(mut self, allow: bool) -> Self {
        self.allow_non_finite = allow;
        self
    }

    /// Drops the tensors whose key `skip` accepts before they are checked or applied: for
    /// bookkeeping a reference file carries that no parameter corresponds to (PyTorch
    /// BatchNorm's integer `num_batches_tracked`, say). Returns the keys dropped.
    pub fn skip_keys(&mut self, skip: impl Fn(&str) -> bool) -> Vec<String> {
        let dropped: Vec<String> = self.tensors.keys().filter(|k| skip(k)).cloned().collect();
        for key in &dropped {
            self.tensors.remove(key);
        }
        dropped
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// The tensors as stored: keys in the file's naming, shapes in its layout.
    pub fn index(&self) -> BTreeMap<String, StoredTensor> {
        self.tensors
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    StoredTensor {
                        shape: t.shape.to_vec(),
                        dtype: t.dtype,
                    },
                )
            })
            .collect()
    }

    /// The stored shapes keyed in the reference's naming: as stored for the reference's
    /// formats; for burnpack files (burn module paths) the norm parameters `gamma`/`beta`
    /// become `weight`/`bias` and `naming`'s segments are renamed back, while shapes keep
    /// burn's layout (2-D Linear weights stay `[in, out]`).
    pub fn shapes_by_reference_key(&self, naming: &Naming) -> BTreeMap<String, Vec<usize>> {
        self.tensors
            .iter()
            .map(|(name, t)| {
                let key = if self.format.uses_reference_naming() {
                    name.clone()
                } else {
                    let (_, last) = name.rsplit_once('.').unwrap_or(("", name));
                    let module_type = if matches!(last, "gamma" | "beta") {
                        "Struct:LayerNorm"
                    } else {
                        ""
                    };
                    naming.to_file(&ModuleParam {
                        path: name.clone(),
                        shape: t.shape.to_vec(),
                        module_type: module_type.into(),
                    })
                };
                (key, t.shape.to_vec())
            })
            .collect()
    }

    /// Checks the index against `layout` (keys and shapes in the file's naming and layout):
    /// see [`WeightError`] for what is reported.
    pub fn check(&self, layout: &[ExpectedTensor], rule: DTypeRule) -> Result<()> {
        check_index(&self.path, layout, &self.index(), rule)
    }

    /// The layout `module` expects from a file of this format: the reference's keys and
    /// PyTorch shapes (through `naming`) for `.bin`/`.safetensors`, module paths and burn
    /// shapes for burnpack.
    pub fn layout_of<M: Module>(&self, module: &M, naming: &Naming) -> Vec<ExpectedTensor> {
        module_parameters(module)
            .into_iter()
            .map(|p| {
                if self.format.uses_reference_naming() {
                    ExpectedTensor::new(naming.to_file(&p), p.reference_shape())
                } else {
                    ExpectedTensor::new(p.path, p.shape)
                }
            })
            .collect()
    }

    /// Applies every tensor to `module` (renamed through `naming`, transposed and cast to
    /// the module's float type as needed), strictly: a tensor that matches no parameter, a
    /// parameter no tensor reaches, data that cannot be read, or (unless allowed) a NaN or an
    /// infinity is an error naming the key. Check the index first ([`Self::check`]) for
    /// messages that name shapes.
    pub fn load_into<M: Module + ModuleSnapshot>(
        self,
        mut module: M,
        naming: &Naming,
    ) -> Result<M> {
        let params = module_parameters(&module);
        let target = params
            .first()
            .map(|_| float_dtype(&module))
            .unwrap_or(DType::F32);
        let reference = self.format.uses_reference_naming();
        let tensors: Vec<PackTensor> = self
            .tensors
            .into_values()
            .map(|mut t| {
                if reference {
                    t.name = naming.to_module(&t.name);
                }
                t
            })
            .collect();
        let adapter: Box<dyn ModuleAdapter> = if reference {
            Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(target)))
        } else {
            Box::new(FloatCastAdapter::to(target))
        };
        let (path, allow_non_finite) = (self.path, self.allow_non_finite);
        let result = guarded(&path, || {
            Ok::<_, String>(module.apply(tensors, None, Some(adapter), false))
        })?;
        let key_of = |module_path: &str| -> String {
            match params.iter().find(|p| p.path == module_path) {
                Some(p) if reference => naming.to_file(p),
                _ => module_path.to_string(),
            }
        };
        let fail = |reason: String| WeightError::Apply {
            path: path.clone(),
            reason,
        };
        if let Some(e) = result.errors.first() {
            let (key, what) = match e {
                ApplyError::ShapeMismatch {
                    path: p,
                    expected,
                    found,
                } => (
                    p,
                    format!("shape {found:?}, the module expects {expected:?}"),
                ),
                ApplyError::DTypeMismatch {
                    path: p,
                    expected,
                    found,
                } => (p, format!("dtype {found:?}, expected {expected:?}")),
                ApplyError::AdapterError { path: p, message }
                | ApplyError::LoadError { path: p, message } => (p, message.clone()),
            };
            return Err(fail(format!(
                "tensor '{}': {what} ({} errors in total)",
                key_of(key),
                result.errors.len()
            )));
        }
        if let Some((p, _)) = result.missing.first() {
            return Err(fail(format!("no tensor was applied to '{}'", key_of(p))));
        }
        if let Some(p) = result.unused.first() {
            return Err(fail(format!("tensor '{p}' matched no parameter")));
        }
        if result.applied.len() != params.len() {
            return Err(fail(format!(
                "{} of {} parameters were loaded",
                result.applied.len(),
                params.len()
            )));
        }
        if !allow_non_finite && let Some(bad) = first_non_finite(&module) {
            return Err(WeightError::NonFinite {
                key: key_of(&bad),
                path,
            });
        }
        Ok(module)
    }
}

/// The float type of `module`'s parameters (the device's default float type).
fn float_dtype<M: Module>(module: &M) -> DType {
    module
        .devices()
        .first()
        .map(|d| d.settings().float_dtype.into())
        .unwrap_or(DType::F32)
}
