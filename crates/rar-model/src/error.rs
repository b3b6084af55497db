//! The crate's error type.
//!
//! Every failure caused by input — a bad config, a checkpoint that does not fit the model, a
//! truncated or corrupt file, tensors of the wrong shape handed to the forward or decode
//! functions, misuse of the KV cache — is reported as a [`RarModelError`] that names what was
//! wrong (the file, the tensor key and both shapes), never as a panic.

use std::path::PathBuf;

/// Errors raised by rar-model.
#[derive(Debug, thiserror::Error)]
pub enum RarModelError {
    /// The configuration cannot describe a network (the message says which field and why).
    #[error("invalid RAR config: {0}")]
    InvalidConfig(String),

    /// A configuration file could not be read or parsed.
    #[error("cannot read RAR config {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong (I/O error, missing key, …).
        reason: String,
    },

    /// A checkpoint file could not be opened or parsed (missing, truncated, corrupt, not a
    /// checkpoint of the expected format).
    #[error("cannot read checkpoint {}: {reason}", path.display())]
    CheckpointRead {
        /// The file.
        path: PathBuf,
        /// The reader's diagnosis.
        reason: String,
    },

    /// The file extension does not name a supported checkpoint format.
    #[error(
        "unsupported checkpoint format for {}: expected .bin/.pt/.pth (PyTorch), .safetensors or .bpk (burnpack)",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },

    /// The model needs a tensor the checkpoint does not have.
    #[error("checkpoint {}: missing tensor '{key}' (the model expects shape {expected:?})", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's key in the checkpoint's naming.
        key: String,
        /// The shape the model expects.
        expected: Vec<usize>,
    },

    /// The checkpoint has a tensor the model does not know.
    #[error("checkpoint {}: unexpected tensor '{key}' of shape {found:?} (not part of this model)", path.display())]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's key in the checkpoint.
        key: String,
        /// Its shape in the checkpoint.
        found: Vec<usize>,
    },

    /// A tensor's shape differs from what the model expects.
    #[error("checkpoint {}: tensor '{key}' has shape {found:?} but the model expects {expected:?}", path.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor's key in the checkpoint.
        key: String,
        /// The shape the model expects (in the checkpoint's layout).
        expected: Vec<usize>,
        /// The shape stored in the checkpoint.
        found: Vec<usize>,
    },

    /// A tensor is not a floating-point tensor.
    #[error("checkpoint {}: tensor '{key}' has dtype {dtype}, expected a floating-point tensor", path.display())]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor's key in the checkpoint.
        key: String,
        /// The stored dtype.
        dtype: String,
    },

    /// Reading tensor data or applying it to the module failed after validation.
    #[error("checkpoint {}: {reason}", path.display())]
    Apply {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// The configuration could not be inferred from a checkpoint's shapes.
    #[error("cannot infer the RAR configuration from {}: {reason}", path.display())]
    InferConfig {
        /// The file.
        path: PathBuf,
        /// Which shape was missing or inconsistent.
        reason: String,
    },

    /// Writing a checkpoint failed.
    #[error("cannot write {}: {reason}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// A tensor passed to the forward or decode functions has the wrong shape or content.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The KV cache was used out of order (step before prefill, more steps than positions, a
    /// batch size that does not match, …).
    #[error("KV cache: {0}")]
    Cache(String),

    /// An order or id was rejected by rar-core.
    #[error(transparent)]
    Core(#[from] rar_core::CoreError),
}

/// Result alias for rar-model.
pub type Result<T> = std::result::Result<T, RarModelError>;
