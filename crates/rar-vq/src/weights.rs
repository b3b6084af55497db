//! Loading tokenizer weights from the official PyTorch `.bin` (a `torch.save` state dict) or
//! from `.safetensors` with the same keys (spec §9.6, §12).
//!
//! The tokenizer's field names equal the PyTorch keys, so no key remapping is needed beyond
//! what burn's `PyTorchToBurnAdapter` does (GroupNorm `weight/bias` → `gamma/beta`; conv
//! weights are `[out, in, kh, kw]` in both frameworks and the codebook is
//! `[num_codes, dim]` in both). Loading is strict, like the reference's
//! `load_state_dict(strict=True)`: every key must be present with exactly the shape the
//! configuration implies, in f32, and no extra key may exist. Checks run on the file's
//! header/metadata before any parameter is allocated.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use burn::prelude::*;
use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};
use burn::tensor::DType;
use rar_core::WeightFileKind;

use crate::config::TokenizerConfig;
use crate::error::{Result, VqError};
use crate::tokenizer::Tokenizer;

/// On-disk formats the tokenizer weights can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// A `torch.save` state dict (zip/pickle), `.bin`, `.pt` or `.pth`.
    Pytorch,
    /// A safetensors file with PyTorch keys and layouts.
    Safetensors,
}

impl WeightsFormat {
    /// The format implied by the file extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match WeightFileKind::from_path(path) {
            Some(WeightFileKind::Pytorch) => Ok(Self::Pytorch),
            Some(WeightFileKind::Safetensors) => Ok(Self::Safetensors),
            // The tokenizer is only ever loaded from the reference's formats.
            Some(WeightFileKind::Burnpack) | None => Err(VqError::UnknownWeightsFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Name, shape and dtype of one tensor in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Shape in the file.
    pub shape: Vec<usize>,
    /// Element type in the file.
    pub dtype: DType,
}

/// An opened checkpoint: its store and the tensor list read from the header.
enum Store {
    Pytorch(PytorchStore),
    Safetensors(SafetensorsStore),
}

/// Runs `f`, turning both an error and a panic of the third-party reader into
/// [`VqError::CorruptWeights`] (a malformed file must never bring the process down).
fn guarded<T, E: std::fmt::Display>(
    path: &Path,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> Result<T> {
    let corrupt = |message: String| VqError::CorruptWeights {
        path: path.to_path_buf(),
        message,
    };
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(corrupt(e.to_string())),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "reader panicked".into());
            Err(corrupt(what))
        }
    }
}

impl Store {
    fn open(path: &Path) -> Result<Self> {
        let format = WeightsFormat::from_path(path)?;
        std::fs::metadata(path).map_err(|e| VqError::io(path, e))?;
        Ok(match format {
            WeightsFormat::Pytorch => Self::Pytorch(
                PytorchStore::from_file(path)
                    .validate(false)
                    .allow_partial(true),
            ),
            WeightsFormat::Safetensors => Self::Safetensors(
                SafetensorsStore::from_file(path)
                    .with_from_adapter(PyTorchToBurnAdapter)
                    .validate(false)
                    .allow_partial(true),
            ),
        })
    }

    fn tensors(&mut self, path: &Path) -> Result<BTreeMap<String, TensorInfo>> {
        fn collect<S: ModuleStore>(
            store: &mut S,
        ) -> std::result::Result<BTreeMap<String, TensorInfo>, S::Error> {
            Ok(store
                .get_all_tensors()?
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        TensorInfo {
                            shape: t.shape.to_vec(),
                            dtype: t.dtype,
                        },
                    )
                })
                .collect())
        }
        match self {
            Self::Pytorch(s) => guarded(path, || collect(s)),
            Self::Safetensors(s) => guarded(path, || collect(s)),
        }
    }

    fn apply(&mut self, path: &Path, model: &mut Tokenizer) -> Result<ApplyResult> {
        match self {
            Self::Pytorch(s) => guarded(path, || model.load_from(s)),
            Self::Safetensors(s) => guarded(path, || model.load_from(s)),
        }
    }
}

/// Reads the tensor names, shapes and dtypes of a checkpoint without loading any data.
pub fn read_tensor_info(path: impl AsRef<Path>) -> Result<BTreeMap<String, TensorInfo>> {
    let path = path.as_ref();
    Store::open(path)?.tensors(path)
}

/// Checks a checkpoint's tensor list against `config`: every expected key present with the
/// expected shape and dtype f32, no extra key. The first problem, in file order, is returned.
pub fn check_tensor_info(
    path: &Path,
    tensors: &BTreeMap<String, TensorInfo>,
    config: &TokenizerConfig,
) -> Result<()> {
    let expected = config.state_dict_shapes();
    for (key, shape) in &expected {
        let Some(info) = tensors.get(key) else {
            return Err(VqError::MissingKey {
                path: path.to_path_buf(),
                key: key.clone(),
                expected: shape.clone(),
            });
        };
        if &info.shape != shape {
            return Err(VqError::ShapeMismatch {
                path: path.to_path_buf(),
                key: key.clone(),
                expected: shape.clone(),
                found: info.shape.clone(),
            });
        }
        if info.dtype != DType::F32 {
            return Err(VqError::BadTensor {
                path: path.to_path_buf(),
                key: key.clone(),
                message: format!("dtype {:?}, expected F32", info.dtype),
            });
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    if let Some((key, info)) = tensors.iter().find(|(k, _)| !known.contains(k.as_str())) {
        return Err(VqError::UnexpectedKey {
            path: path.to_path_buf(),
            key: key.clone(),
            found: info.shape.clone(),
        });
    }
    Ok(())
}

/// Maps a burn-side parameter path (`encoder.norm_out.gamma`) back to the PyTorch key.
fn torch_key(burn_path: &str) -> String {
    if let Some(stem) = burn_path.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = burn_path.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        burn_path.to_string()
    }
}

fn check_apply_result(path: &Path, result: &ApplyResult, config: &TokenizerConfig) -> Result<()> {
    if let Some(err) = result.errors.first() {
        let (key, message) = match err {
            ApplyError::ShapeMismatch {
                path: p,
                expected,
                found,
            } => {
                return Err(VqError::ShapeMismatch {
                    path: path.to_path_buf(),
                    key: torch_key(p),
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                });
            }
            ApplyError::DTypeMismatch {
                path: p,
                expected,
                found,
            } => (p, format!("dtype {found:?}, expected {expected:?}")),
            ApplyError::AdapterError { path: p, message } => (p, message.clone()),
            ApplyError::LoadError { path: p, message } => (p, message.clone()),
        };
        return Err(VqError::BadTensor {
            path: path.to_path_buf(),
            key: torch_key(key),
            message,
        });
    }
    if let Some((missing, _)) = result.missing.first() {
        let key = torch_key(missing);
        let expected = config
            .state_dict_shapes()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| s)
            .unwrap_or_default();
        return Err(VqError::MissingKey {
            path: path.to_path_buf(),
            key,
            expected,
        });
    }
    if let Some(unused) = result.unused.first() {
        return Err(VqError::UnexpectedKey {
            path: path.to_path_buf(),
            key: unused.clone(),
            found: Vec::new(),
        });
    }
    Ok(())
}

impl Tokenizer {
    /// Loads a tokenizer from `path` (`.bin`/`.pt`/`.pth` or `.safetensors`), deriving its
    /// configuration from the tensor shapes (the official file gives the official preset).
    /// The nominal resolution is the official 256; use [`Tokenizer::from_file_with_config`]
    /// to choose another.
    pub fn from_file(path: impl AsRef<Path>, device: &Device) -> Result<(Self, TokenizerConfig)> {
        let path = path.as_ref();
        let mut store = Store::open(path)?;
        let info = store.tensors(path)?;
        let shapes: BTreeMap<String, Vec<usize>> = info
            .iter()
            .map(|(k, t)| (k.clone(), t.shape.clone()))
            .collect();
        let config = TokenizerConfig::official()
            .from_shapes(&shapes)
            .map_err(|e| match e {
                VqError::InvalidConfig(m) => VqError::CorruptWeights {
                    path: path.to_path_buf(),
                    message: format!("not a MaskGIT-VQGAN checkpoint: {m}"),
                },
                other => other,
            })?;
        let model = load_checked(path, &mut store, &info, &config, device)?;
        Ok((model, config))
    }

    /// Loads weights for an explicit `config`; any key, shape or dtype that disagrees with it
    /// is an error naming the file, the key and both shapes.
    pub fn from_file_with_config(
        path: impl AsRef<Path>,
        config: &TokenizerConfig,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let mut store = Store::open(path)?;
        let info = store.tensors(path)?;
        load_checked(path, &mut store, &info, config, device)
    }
}

fn load_checked(
    path: &Path,
    store: &mut Store,
    info: &BTreeMap<String, TensorInfo>,
    config: &TokenizerConfig,
    device: &Device,
) -> Result<Tokenizer> {
    check_tensor_info(path, info, config)?;
    let mut model = config.init(device)?;
    let result = store.apply(path, &mut model)?;
    check_apply_result(path, &result, config)?;
    Ok(model)
}

/// File name of the official tokenizer checkpoint (spec §2.2, §9).
pub const OFFICIAL_CHECKPOINT_NAME: &str = "maskgit-vqgan-imagenet-f16-256.bin";
