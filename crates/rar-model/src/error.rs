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

    /// A weight file could not be read, does not fit the model, or could not be written
    /// (the message names the file and the key).
    #[error(transparent)]
    Weights(#[from] rar_weights::WeightError),

    /// The configuration could not be inferred from a checkpoint's shapes.
    #[error("cannot infer the RAR configuration from {}: {reason}", path.display())]
    InferConfig {
        /// The file.
        path: PathBuf,
        /// Which shape was missing or inconsistent.
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
