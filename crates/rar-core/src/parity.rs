//! Locating the reference parity fixtures (`shared/parity/`) for tests and benchmarks.
//!
//! Parity tests in every crate find the fixtures the same way:
//!
//! 1. if `RAR_PARITY_DIR` is set, that directory is used, and it is an error for it (or any
//!    file a test asks for) to be missing — CI sets it, so a missing fixture fails CI;
//! 2. otherwise a `shared/parity` directory next to the workspace or any of its ancestors is
//!    used when present (the developer layout `…/main` + `…/shared`);
//! 3. otherwise there are no fixtures and parity tests report that they were skipped.

use std::path::{Path, PathBuf};

/// Environment variable naming the fixture directory.
pub const PARITY_DIR_ENV: &str = "RAR_PARITY_DIR";

/// Where the fixtures are, or why they cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParityDir {
    /// Fixtures found at this directory.
    Found(PathBuf),
    /// `RAR_PARITY_DIR` names a directory that does not exist (tests must fail).
    Missing(PathBuf),
    /// The variable is unset and no `shared/parity` was found (tests may skip).
    Absent,
}

/// Resolves the fixture directory as described in the module docs.
pub fn parity_dir() -> ParityDir {
    if let Some(dir) = std::env::var_os(PARITY_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            ParityDir::Found(dir)
        } else {
            ParityDir::Missing(dir)
        };
    }
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    for start in starts.into_iter().flatten() {
        for ancestor in start.ancestors() {
            let candidate = ancestor.join("shared").join("parity");
            if candidate.join("manifest.json").is_file() {
                return ParityDir::Found(candidate);
            }
        }
    }
    ParityDir::Absent
}

/// For tests: the fixture directory, `None` (after printing why) when fixtures are absent
/// and the variable is unset; panics with a clear message when `RAR_PARITY_DIR` is set but
/// missing.
pub fn parity_dir_for_tests() -> Option<PathBuf> {
    match parity_dir() {
        ParityDir::Found(dir) => Some(dir),
        ParityDir::Missing(dir) => panic!(
            "{PARITY_DIR_ENV}={} does not exist: the parity fixtures are required",
            dir.display()
        ),
        ParityDir::Absent => {
            eprintln!(
                "parity fixtures not found ({PARITY_DIR_ENV} unset, no shared/parity): skipped"
            );
            None
        }
    }
}

/// The `rar_*` model directories under a fixture directory (each has a `config.json`),
/// sorted by name. The same tests run over every such directory.
pub fn rar_model_dirs(parity: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(parity)? {
        let path = entry?.path();
        let is_rar = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("rar_"));
        if is_rar && path.join("config.json").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[cfg(feature = "fixtures")]
pub use reader::{Array, Fixture, read_json, state_dict_shapes};

/// Readers for fixture files (feature `fixtures`): test helpers that panic with the file and
/// tensor name when a fixture is malformed — a broken fixture is a failed test, not a skip.
#[cfg(feature = "fixtures")]
mod reader {
    use safetensors::{Dtype, SafeTensors};
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    /// Reads and parses a JSON file (panics naming the file on failure).
    pub fn read_json(path: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The `{key: {"shape": [..]}}` object of `full-size-keys.json` as key → shape (panics
    /// when it is malformed).
    pub fn state_dict_shapes(
        state_dict: &serde_json::Value,
    ) -> std::collections::BTreeMap<String, Vec<usize>> {
        let shape = |v: &serde_json::Value| -> Vec<usize> {
            let dims = v["shape"].as_array().expect("a shape list");
            dims.iter()
                .map(|d| d.as_u64().expect("a dimension") as usize)
                .collect()
        };
        state_dict
            .as_object()
            .expect("a state_dict object")
            .iter()
            .map(|(k, v)| (k.clone(), shape(v)))
            .collect()
    }

    /// One array of a fixture: its shape and values widened to `f64` or `i64`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Array<T> {
        /// The array's shape.
        pub shape: Vec<usize>,
        /// Its values in C order.
        pub data: Vec<T>,
    }

    /// A safetensors fixture file held in memory.
    pub struct Fixture {
        path: PathBuf,
        tensors: HashMap<String, (Vec<usize>, Dtype, Vec<u8>)>,
    }

    impl Fixture {
        /// Loads `path` (panics naming the file if it is missing or not safetensors).
        pub fn open(path: impl AsRef<Path>) -> Self {
            let path = path.as_ref().to_path_buf();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
            let st = SafeTensors::deserialize(&bytes)
                .unwrap_or_else(|e| panic!("{} is not safetensors: {e}", path.display()));
            let tensors = st
                .tensors()
                .into_iter()
                .map(|(name, view)| {
                    (
                        name,
                        (view.shape().to_vec(), view.dtype(), view.data().to_vec()),
                    )
                })
                .collect();
            Self { path, tensors }
        }

        fn raw(&self, name: &str) -> &(Vec<usize>, Dtype, Vec<u8>) {
            self.tensors
                .get(name)
                .unwrap_or_else(|| panic!("{} has no tensor '{name}'", self.path.display()))
        }

        /// Whether the file has tensor `name`.
        pub fn has(&self, name: &str) -> bool {
            self.tensors.contains_key(name)
        }

        /// An F32 (or F64) tensor as `f32` values.
        pub fn f32(&self, name: &str) -> Array<f32> {
            let (shape, dtype, bytes) = self.raw(name);
            let data = match dtype {
                Dtype::F32 => bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::F64 => bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{}: '{name}' is {other:?}, not float", self.path.display()),
            };
            Array {
                shape: shape.clone(),
                data,
            }
        }

        /// An integer (I64/I32) or BOOL tensor as `i64` values.
        pub fn i64(&self, name: &str) -> Array<i64> {
            let (shape, dtype, bytes) = self.raw(name);
            let data = match dtype {
                Dtype::I64 => bytes
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::I32 => bytes
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
                    .collect(),
                Dtype::BOOL => bytes.iter().map(|&b| b as i64).collect(),
                other => panic!(
                    "{}: '{name}' is {other:?}, not integer",
                    self.path.display()
                ),
            };
            Array {
                shape: shape.clone(),
                data,
            }
        }
    }
}

/// Relative error `‖a − b‖ / ‖b‖` (the project's numeric-parity metric); `‖a‖` when `b` is 0.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "rel_err of arrays of different lengths");
    let (mut diff, mut norm) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        diff += (x as f64 - y as f64).powi(2);
        norm += (y as f64).powi(2);
    }
    if norm == 0.0 {
        diff.sqrt()
    } else {
        (diff / norm).sqrt()
    }
}
