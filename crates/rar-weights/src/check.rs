//! Checking a file's tensor index against the layout a model expects, before any weight is
//! allocated.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use burn::tensor::DType;

use crate::error::{Result, WeightError};

/// Shape and element type of one stored tensor, as read from a file's index.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    /// Shape as stored (PyTorch layout for `.bin` / `.safetensors`).
    pub shape: Vec<usize>,
    /// Stored element type.
    pub dtype: DType,
}

/// One tensor a model expects to find in a file: its key and shape in the file's naming and
/// layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTensor {
    /// The key.
    pub key: String,
    /// The shape.
    pub shape: Vec<usize>,
}

impl ExpectedTensor {
    /// An expected tensor.
    pub fn new(key: impl Into<String>, shape: impl Into<Vec<usize>>) -> Self {
        Self {
            key: key.into(),
            shape: shape.into(),
        }
    }
}

/// Which element types a loader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeRule {
    /// Any floating-point type (cast to the device's float type while loading).
    AnyFloat,
    /// Exactly this type.
    Exactly(DType),
}

impl DTypeRule {
    fn accepts(self, dtype: DType) -> bool {
        match self {
            Self::AnyFloat => dtype.is_float(),
            Self::Exactly(d) => dtype == d,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::AnyFloat => "a floating-point type".into(),
            Self::Exactly(d) => format!("{d:?}"),
        }
    }
}

/// Checks `index` (the tensors of the file `path`) against `layout`: every expected key
/// present with its shape and an accepted dtype, and no other key. The first problem in
/// layout order is reported, then the first unexpected key in the index's order.
pub(crate) fn check_index(
    path: &Path,
    layout: &[ExpectedTensor],
    index: &BTreeMap<String, StoredTensor>,
    rule: DTypeRule,
) -> Result<()> {
    for expected in layout {
        let Some(stored) = index.get(&expected.key) else {
            return Err(WeightError::Missing {
                path: path.to_path_buf(),
                key: expected.key.clone(),
                expected: expected.shape.clone(),
            });
        };
        if stored.shape != expected.shape {
            return Err(WeightError::Shape {
                path: path.to_path_buf(),
                key: expected.key.clone(),
                expected: expected.shape.clone(),
                found: stored.shape.clone(),
            });
        }
        if !rule.accepts(stored.dtype) {
            return Err(WeightError::DType {
                path: path.to_path_buf(),
                key: expected.key.clone(),
                found: format!("{:?}", stored.dtype),
                expected: rule.describe(),
            });
        }
    }
    let known: HashSet<&str> = layout.iter().map(|e| e.key.as_str()).collect();
    if let Some((key, stored)) = index.iter().find(|(k, _)| !known.contains(k.as_str())) {
        return Err(WeightError::Unexpected {
            path: path.to_path_buf(),
            key: key.clone(),
            found: stored.shape.clone(),
        });
    }
    Ok(())
}
