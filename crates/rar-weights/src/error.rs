//! The one error vocabulary of weight files.

use std::path::PathBuf;

/// Why a weight file could not be read, did not fit the model, or could not be written.
/// Every variant names the file, and the key where one tensor is at fault (in the file's
/// naming: the reference's keys for `.bin`/`.safetensors`).
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The extension names no format this loader reads.
    #[error("{}: unsupported weight-file format (expected {accepted})", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The formats that would have been accepted.
        accepted: String,
    },

    /// The file could not be opened or parsed (missing, a directory, truncated, corrupt, not
    /// a checkpoint of its format).
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the reader reported.
        reason: String,
    },

    /// The model needs a tensor the file does not have.
    #[error("{}: missing tensor '{key}' (the model expects shape {expected:?})", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The key, in the file's naming.
        key: String,
        /// The shape the model expects, in the file's layout.
        expected: Vec<usize>,
    },

    /// The file has a tensor the model does not know (loading is strict, like the
    /// reference's `load_state_dict(strict=True)`).
    #[error("{}: unexpected tensor '{key}' of shape {found:?} (not part of this model)", path.display())]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The key as stored.
        key: String,
        /// Its shape in the file.
        found: Vec<usize>,
    },

    /// A tensor's shape differs from what the model expects.
    #[error("{}: tensor '{key}' has shape {found:?} but the model expects {expected:?}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The key, in the file's naming.
        key: String,
        /// The shape the model expects, in the file's layout.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },

    /// A tensor's element type is not one the model accepts.
    #[error("{}: tensor '{key}' has dtype {found}, expected {expected}", path.display())]
    DType {
        /// The file.
        path: PathBuf,
        /// The key, in the file's naming.
        key: String,
        /// The stored type.
        found: String,
        /// What is accepted.
        expected: String,
    },

    /// A tensor holds a NaN or an infinity (a corrupt or diverged checkpoint); loading it
    /// anyway needs an explicit opt-in ([`WeightFile::allow_non_finite`](crate::WeightFile::allow_non_finite)).
    #[error("{}: tensor '{key}' holds NaN or infinite values (a corrupt or diverged checkpoint)", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The key, in the file's naming.
        key: String,
    },

    /// Reading a tensor's data or applying it to the module failed after the checks.
    #[error("{}: {reason}", path.display())]
    Apply {
        /// The file.
        path: PathBuf,
        /// What failed (naming the key).
        reason: String,
    },

    /// Writing a file failed.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl WeightError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::UnknownFormat { path, .. }
            | Self::Read { path, .. }
            | Self::Missing { path, .. }
            | Self::Unexpected { path, .. }
            | Self::Shape { path, .. }
            | Self::DType { path, .. }
            | Self::NonFinite { path, .. }
            | Self::Apply { path, .. }
            | Self::Write { path, .. } => path,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, WeightError>;
