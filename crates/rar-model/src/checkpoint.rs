//! Loading and saving weights (spec §2.2, §3.3, §12).
//!
//! The released generators (`rar_b.bin` … `rar_xxl.bin`) are plain `torch.save` state dicts in
//! PyTorch's zip-pickle format. They load unchanged through burn-store:
//!
//! * `.bin` / `.pt` / `.pth` — [`burn::store::PytorchStore`];
//! * `.safetensors` with the same keys — [`burn::store::SafetensorsStore`];
//! * `.bpk` — burn's own burnpack format ([`burn::store::BurnpackStore`]), written by
//!   [`Rar::save_burnpack`].
//!
//! Before a single weight is read, the file's keys, shapes and dtypes are checked against
//! [`expected_state_dict`] — the reference's exact `state_dict` layout computed from the
//! config — so a missing, unexpected or mis-shaped tensor is reported with the file, the key
//! and both shapes, and a truncated or corrupt file is an error rather than a panic. When no
//! config is given, it is inferred from the shapes ([`infer_config`]) and matched against the
//! presets.
//!
//! Key mapping (checkpoint → module path), the only renames needed:
//!
//! | checkpoint key | module path |
//! |---|---|
//! | `…adaLN_modulation.1.{weight,bias}` | `…ada_ln_modulation.{weight,bias}` (SiLU is index 0) |
//! | `…{norm1,norm2,q_norm,k_norm}.weight` / `.bias` | `….gamma` / `.beta` (burn's LayerNorm) |
//!
//! Linear weights are stored `[out, in]` by PyTorch and `[in, out]` by burn; burn-store's
//! [`PyTorchToBurnAdapter`] transposes them lazily while loading. Raw parameters (`cls_token`,
//! the positional tables) and `embeddings.weight` keep their layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    BurnToPyTorchAdapter, BurnpackStore, FloatCastAdapter, ModuleAdapter, ModuleSnapshot,
    ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::{DType, Device, Tensor};
use rar_core::WeightFileKind;

use crate::config::{POS_EMBED_EXTRA_ROWS, RarConfig, RarPreset, TIMESTEP_EXTRA_ROWS};
use crate::error::{RarModelError, Result};
use crate::model::Rar;

/// The LayerNorm modules of the model (their `weight`/`bias` are burn's `gamma`/`beta`).
const LAYER_NORMS: [&str; 4] = ["norm1", "norm2", "q_norm", "k_norm"];

/// The Linear modules of the model (their weights are transposed between the frameworks).
const LINEARS: [&str; 6] = ["qkv", "proj", "fc1", "fc2", "ada_ln_modulation", "lm_head"];

/// Supported weight-file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// PyTorch `torch.save` zip-pickle (`.bin`, `.pt`, `.pth`), reference key names.
    Pytorch,
    /// SafeTensors with the reference key names and PyTorch layout.
    Safetensors,
    /// burn's burnpack format with burn module paths (written by [`Rar::save_burnpack`]).
    Burnpack,
}

impl CheckpointFormat {
    /// The format implied by a file extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match WeightFileKind::from_path(path) {
            Some(WeightFileKind::Pytorch) => Ok(Self::Pytorch),
            Some(WeightFileKind::Safetensors) => Ok(Self::Safetensors),
            Some(WeightFileKind::Burnpack) => Ok(Self::Burnpack),
            None => Err(RarModelError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Shape and dtype of one stored tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    /// Shape as stored (PyTorch layout for `.bin` / `.safetensors`).
    pub shape: Vec<usize>,
    /// Stored element type.
    pub dtype: DType,
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

/// The reference `state_dict` for `config`: `(key, shape)` in the reference's order, shapes in
/// PyTorch layout (Linear weights `[out, in]`). Computed from the config alone.
pub fn expected_state_dict(config: &RarConfig) -> Vec<(String, Vec<usize>)> {
    let c = config.hidden_size;
    let i = config.intermediate_size;
    let d = config.head_dim();
    let mut out: Vec<(String, Vec<usize>)> = vec![
        ("cls_token".into(), vec![1, 1, c]),
        ("pos_embed".into(), vec![1, config.pos_embed_rows(), c]),
        (
            "target_aware_pos_embed".into(),
            vec![1, config.pos_embed_rows(), c],
        ),
        (
            "timesteps_embeddings".into(),
            vec![1, config.timestep_rows(), c],
        ),
    ];
    for b in 0..config.num_layers {
        let p = |name: &str| format!("blocks.{b}.{name}");
        out.extend([
            (p("norm1.weight"), vec![c]),
            (p("norm1.bias"), vec![c]),
            (p("attn.qkv.weight"), vec![3 * c, c]),
            (p("attn.qkv.bias"), vec![3 * c]),
            (p("attn.q_norm.weight"), vec![d]),
            (p("attn.q_norm.bias"), vec![d]),
            (p("attn.k_norm.weight"), vec![d]),
            (p("attn.k_norm.bias"), vec![d]),
            (p("attn.proj.weight"), vec![c, c]),
            (p("attn.proj.bias"), vec![c]),
            (p("norm2.weight"), vec![c]),
            (p("norm2.bias"), vec![c]),
            (p("mlp.fc1.weight"), vec![i, c]),
            (p("mlp.fc1.bias"), vec![i]),
            (p("mlp.fc2.weight"), vec![c, i]),
            (p("mlp.fc2.bias"), vec![c]),
            (p("adaLN_modulation.1.weight"), vec![6 * c, c]),
            (p("adaLN_modulation.1.bias"), vec![6 * c]),
        ]);
    }
    out.extend([
        ("embeddings.weight".into(), vec![config.vocab_size(), c]),
        (
            "adaln_before_head.adaLN_modulation.1.weight".into(),
            vec![2 * c, c],
        ),
        (
            "adaln_before_head.adaLN_modulation.1.bias".into(),
            vec![2 * c],
        ),
        ("lm_head.weight".into(), vec![config.codebook_size, c]),
        ("lm_head.bias".into(), vec![config.codebook_size]),
    ]);
    out
}

/// Where a checkpoint tensor goes in the module tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamMapping {
    /// Dotted module path of the parameter (`blocks.0.norm1.gamma`, …).
    pub path: String,
    /// Whether the stored tensor is the transpose of the module's (Linear weights).
    pub transposed: bool,
}

/// Maps a reference checkpoint key to its module path (see the module docs for the rules).
pub fn checkpoint_key_to_module_path(key: &str) -> ParamMapping {
    let path = match key.strip_prefix("adaLN_modulation.1.") {
        Some(rest) => format!("ada_ln_modulation.{rest}"),
        None => key.replace(".adaLN_modulation.1.", ".ada_ln_modulation."),
    };
    let (parent, param) = path.rsplit_once('.').unwrap_or(("", path.as_str()));
    let module = parent.rsplit('.').next().unwrap_or("");
    let renamed = if LAYER_NORMS.contains(&module) {
        match param {
            "weight" => Some("gamma"),
            "bias" => Some("beta"),
            _ => None,
        }
    } else {
        None
    };
    let transposed = LINEARS.contains(&module) && param == "weight";
    let path = match renamed {
        Some(new) => format!("{parent}.{new}"),
        None => path.clone(),
    };
    ParamMapping { path, transposed }
}

/// The inverse of [`checkpoint_key_to_module_path`]: the reference key of a module path.
pub fn module_path_to_checkpoint_key(path: &str) -> String {
    let (parent, param) = path.rsplit_once('.').unwrap_or(("", path));
    let module = parent.rsplit('.').next().unwrap_or("");
    let param = if LAYER_NORMS.contains(&module) {
        match param {
            "gamma" => "weight",
            "beta" => "bias",
            other => other,
        }
    } else {
        param
    };
    let key = if parent.is_empty() {
        param.to_string()
    } else {
        format!("{parent}.{param}")
    };
    key.replace("ada_ln_modulation.", "adaLN_modulation.1.")
}

/// One float parameter of a module tree, found without initialising it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleParam {
    /// Dotted module path.
    pub path: String,
    /// Shape in burn's layout.
    pub shape: Vec<usize>,
    /// The innermost module type holding it (`"Struct:Linear"`, `"Struct:Rar"`, …).
    pub module_type: String,
}

#[derive(Default)]
struct ParamCollector {
    path: Vec<String>,
    types: Vec<String>,
    params: Vec<ModuleParam>,
}

impl ModuleVisitor for ParamCollector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.types.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.types.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let module_type = self
            .types
            .iter()
            .rev()
            .find(|t| t.starts_with("Struct:") || t.starts_with("Enum:"))
            .cloned()
            .unwrap_or_default();
        self.params.push(ModuleParam {
            path: self.path.join("."),
            shape: param.lazy_shape().to_vec(),
            module_type,
        });
    }
}

/// Every float parameter of `module` with its path and shape, without initialising any lazy
/// parameter (so it works on a full-size model that was never allocated).
pub fn module_parameters<M: Module>(module: &M) -> Vec<ModuleParam> {
    let mut collector = ParamCollector::default();
    module.visit(&mut collector);
    collector.params
}

/// Infers the configuration from checkpoint shapes (reference key names and layout).
///
/// Reads `C` from `cls_token`, `D` from the block indices, `I` from `mlp.fc1`, `d` (and so
/// `H = C / d`) from the QK-norm, `V` from `lm_head`, `K` from the embedding rows and `N` from
/// the positional tables; the two tables must agree on `N`. Training-only settings keep the
/// reference defaults.
pub fn infer_config(
    shapes: &BTreeMap<String, Vec<usize>>,
) -> std::result::Result<RarConfig, String> {
    let get = |key: &str, rank: usize| -> std::result::Result<&Vec<usize>, String> {
        let shape = shapes.get(key).ok_or(format!("no tensor '{key}'"))?;
        if shape.len() != rank {
            return Err(format!("'{key}' has shape {shape:?}, expected rank {rank}"));
        }
        Ok(shape)
    };
    let c = get("cls_token", 3)?[2];
    let mut depth = 0;
    while shapes.contains_key(&format!("blocks.{depth}.norm1.weight")) {
        depth += 1;
    }
    if depth == 0 {
        return Err("no 'blocks.0.norm1.weight': not a RAR generator checkpoint".into());
    }
    let intermediate = get("blocks.0.mlp.fc1.weight", 2)?[0];
    let head_dim = get("blocks.0.attn.q_norm.weight", 1)?[0];
    if head_dim == 0 || !c.is_multiple_of(head_dim) {
        return Err(format!(
            "QK-norm width {head_dim} does not divide hidden size {c}"
        ));
    }
    let codebook = get("lm_head.weight", 2)?[0];
    let rows = get("embeddings.weight", 2)?[0];
    if rows < codebook + 3 {
        return Err(format!(
            "embedding table has {rows} rows, fewer than codebook {codebook} + mask + 1 class + none"
        ));
    }
    let pos_rows = get("pos_embed", 3)?[1];
    let time_rows = get("timesteps_embeddings", 3)?[1];
    if pos_rows <= POS_EMBED_EXTRA_ROWS || time_rows <= TIMESTEP_EXTRA_ROWS {
        return Err(format!(
            "positional tables too short: pos_embed {pos_rows} rows, timesteps_embeddings {time_rows} rows"
        ));
    }
    let n = pos_rows - POS_EMBED_EXTRA_ROWS;
    if time_rows - TIMESTEP_EXTRA_ROWS != n {
        return Err(format!(
            "pos_embed ({pos_rows} rows → N = {n}) and timesteps_embeddings ({time_rows} rows → N = {}) disagree",
            time_rows - TIMESTEP_EXTRA_ROWS
        ));
    }
    let config = RarConfig::new(c, depth, c / head_dim, intermediate)
        .with_image_seq_len(n)
        .with_codebook_size(codebook)
        .with_num_classes(rows - codebook - 2);
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> RarModelError {
    RarModelError::CheckpointRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads the tensor index of a checkpoint (names as stored, nothing else loaded).
fn read_tensors(path: &Path, format: CheckpointFormat) -> Result<BTreeMap<String, PackTensor>> {
    if !path.is_file() {
        return Err(read_error(path, "no such file"));
    }
    match format {
        CheckpointFormat::Pytorch => {
            // Keep indices as stored: contiguous renumbering would turn the Sequential index
            // `adaLN_modulation.1` into `.0`.
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            let tensors = store.get_all_tensors().map_err(|e| read_error(path, e))?;
            Ok(tensors.clone())
        }
        CheckpointFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path);
            let tensors = store.get_all_tensors().map_err(|e| read_error(path, e))?;
            Ok(tensors.clone())
        }
        CheckpointFormat::Burnpack => {
            let mut store = BurnpackStore::from_file(path).auto_extension(false);
            let tensors = store.get_all_tensors().map_err(|e| read_error(path, e))?;
            Ok(tensors.clone())
        }
    }
}

/// The stored tensors of a checkpoint file in the reference's naming and layout (a burnpack
/// file's module paths and shapes are translated), without reading any tensor data.
pub fn read_checkpoint_index(path: impl AsRef<Path>) -> Result<BTreeMap<String, StoredTensor>> {
    let path = path.as_ref();
    let format = CheckpointFormat::from_path(path)?;
    Ok(index_of(format, &read_tensors(path, format)?))
}

/// The index (reference naming and layout) of tensors read from a file of `format`.
fn index_of(
    format: CheckpointFormat,
    tensors: &BTreeMap<String, PackTensor>,
) -> BTreeMap<String, StoredTensor> {
    tensors
        .iter()
        .map(|(name, t)| {
            let mut shape = t.shape.to_vec();
            let key = match format {
                CheckpointFormat::Burnpack => {
                    let key = module_path_to_checkpoint_key(name);
                    if checkpoint_key_to_module_path(&key).transposed && shape.len() == 2 {
                        shape.swap(0, 1);
                    }
                    key
                }
                _ => name.clone(),
            };
            (
                key,
                StoredTensor {
                    shape,
                    dtype: t.dtype,
                },
            )
        })
        .collect()
}

/// Checks a checkpoint index against the reference layout of `config`; the first problem found
/// (in reference order, then unexpected keys) is returned as an error naming file, key and shapes.
pub fn validate_checkpoint_index(
    path: &Path,
    config: &RarConfig,
    index: &BTreeMap<String, StoredTensor>,
) -> Result<()> {
    let expected = expected_state_dict(config);
    for (key, shape) in &expected {
        match index.get(key) {
            None => {
                return Err(RarModelError::MissingTensor {
                    path: path.to_path_buf(),
                    key: key.clone(),
                    expected: shape.clone(),
                });
            }
            Some(stored) if &stored.shape != shape => {
                return Err(RarModelError::ShapeMismatch {
                    path: path.to_path_buf(),
                    key: key.clone(),
                    expected: shape.clone(),
                    found: stored.shape.clone(),
                });
            }
            Some(stored) if !stored.dtype.is_float() => {
                return Err(RarModelError::UnsupportedDType {
                    path: path.to_path_buf(),
                    key: key.clone(),
                    dtype: format!("{:?}", stored.dtype),
                });
            }
            Some(_) => {}
        }
    }
    if index.len() != expected.len() {
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(k, _)| k.as_str()).collect();
        if let Some((key, stored)) = index.iter().find(|(k, _)| !known.contains(k.as_str())) {
            return Err(RarModelError::UnexpectedTensor {
                path: path.to_path_buf(),
                key: key.clone(),
                found: stored.shape.clone(),
            });
        }
    }
    Ok(())
}

fn index_shapes(index: &BTreeMap<String, StoredTensor>) -> BTreeMap<String, Vec<usize>> {
    index
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect()
}

impl Rar {
    /// Loads a checkpoint of any supported format (chosen by extension), building the model
    /// for `config`, or for the configuration inferred from the file's shapes when `None`.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: Option<&RarConfig>,
        device: &Device,
    ) -> Result<LoadedCheckpoint> {
        let path = path.as_ref();
        let format = CheckpointFormat::from_path(path)?;
        // Only the index is parsed here; tensor data is read lazily while applying.
        let tensors = read_tensors(path, format)?;
        let index = index_of(format, &tensors);
        let config = match config {
            Some(c) => c.clone(),
            None => infer_config(&index_shapes(&index)).map_err(|reason| {
                RarModelError::InferConfig {
                    path: path.to_path_buf(),
                    reason,
                }
            })?,
        };
        config.validate()?;
        validate_checkpoint_index(path, &config, &index)?;
        let model = config.try_init(device)?;
        let model = match format {
            CheckpointFormat::Burnpack => apply_checked(model, path, tensors, None)?,
            _ => {
                let renamed = tensors
                    .into_values()
                    .map(|mut t| {
                        t.name = checkpoint_key_to_module_path(&t.name).path;
                        (t.name.clone(), t)
                    })
                    .collect();
                let target = float_dtype(device);
                let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(target));
                apply_checked(
                    model,
                    path,
                    renamed,
                    Some(Box::new(adapter) as Box<dyn ModuleAdapter>),
                )?
            }
        };
        let preset = RarPreset::matching(&config);
        Ok(LoadedCheckpoint {
            model,
            config,
            preset,
        })
    }

    /// Loads a PyTorch `torch.save` state dict (`rar_b.bin`, …) for `config`.
    pub fn from_pytorch(
        path: impl AsRef<Path>,
        config: &RarConfig,
        device: &Device,
    ) -> Result<Rar> {
        Self::expect_format(path.as_ref(), CheckpointFormat::Pytorch)?;
        Ok(Self::from_checkpoint(path, Some(config), device)?.model)
    }

    /// Loads a SafeTensors file with the reference key names for `config`.
    pub fn from_safetensors(
        path: impl AsRef<Path>,
        config: &RarConfig,
        device: &Device,
    ) -> Result<Rar> {
        Self::expect_format(path.as_ref(), CheckpointFormat::Safetensors)?;
        Ok(Self::from_checkpoint(path, Some(config), device)?.model)
    }

    /// Loads a burnpack file written by [`Rar::save_burnpack`] for `config`.
    pub fn from_burnpack(
        path: impl AsRef<Path>,
        config: &RarConfig,
        device: &Device,
    ) -> Result<Rar> {
        Self::expect_format(path.as_ref(), CheckpointFormat::Burnpack)?;
        Ok(Self::from_checkpoint(path, Some(config), device)?.model)
    }

    fn expect_format(path: &Path, format: CheckpointFormat) -> Result<()> {
        if CheckpointFormat::from_path(path)? != format {
            return Err(RarModelError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Saves the weights in burn's burnpack format (module paths, burn layout). The file
    /// must end in `.bpk`; an existing file is replaced.
    pub fn save_burnpack(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        Self::expect_format(path, CheckpointFormat::Burnpack)?;
        let mut store = BurnpackStore::from_file(path)
            .auto_extension(false)
            .overwrite(true)
            .metadata("rar_config", self.config().to_string());
        self.save_into(&mut store).map_err(|e| RarModelError::Save {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Saves the weights as SafeTensors with the reference's key names and PyTorch layout,
    /// loadable by the reference with `load_state_dict(strict=True)`.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        Self::expect_format(path, CheckpointFormat::Safetensors)?;
        let mut store = SafetensorsStore::from_file(path)
            .with_to_adapter(BurnToPyTorchAdapter)
            .with_key_remapping(r"(^|\.)ada_ln_modulation\.", "${1}adaLN_modulation.1.")
            .overwrite(true);
        self.save_into(&mut store).map_err(|e| RarModelError::Save {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// The float dtype parameters are created with on `device`.
fn float_dtype(device: &Device) -> DType {
    device.settings().float_dtype.into()
}

/// Applies validated tensors (keyed by module path) to `model`, turning any residual problem
/// (unreadable data, unmatched name) into an error.
fn apply_checked(
    mut model: Rar,
    path: &Path,
    tensors: BTreeMap<String, PackTensor>,
    adapter: Option<Box<dyn ModuleAdapter>>,
) -> Result<Rar> {
    let expected = module_parameters(&model).len();
    let result = model.apply(tensors.into_values().collect(), None, adapter, false);
    let fail = |reason: String| RarModelError::Apply {
        path: PathBuf::from(path),
        reason,
    };
    if let Some(e) = result.errors.first() {
        return Err(fail(format!(
            "{e} ({} errors in total)",
            result.errors.len()
        )));
    }
    if let Some((p, _)) = result.missing.first() {
        return Err(fail(format!("no tensor was applied to parameter '{p}'")));
    }
    if let Some(p) = result.unused.first() {
        return Err(fail(format!("tensor '{p}' matched no parameter")));
    }
    if result.applied.len() != expected {
        return Err(fail(format!(
            "{} of {expected} parameters were loaded",
            result.applied.len()
        )));
    }
    Ok(model)
}
