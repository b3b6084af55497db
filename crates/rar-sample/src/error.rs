//! The crate's error type.

use rar_core::CoreError;
use rar_model::RarModelError;

use crate::npz::NpzError;

/// Errors raised by rar-sample. Bad requests are reported before any work is done.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The request cannot be sampled (the message names the field and its value).
    #[error("invalid sampling request: {0}")]
    InvalidRequest(String),
    /// The model rejected an input or its cache was misused.
    #[error(transparent)]
    Model(#[from] RarModelError),
    /// An order or schedule was invalid.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The tokenizer rejected the tokens or failed to decode them.
    #[error(transparent)]
    Tokenizer(#[from] rar_vq::VqError),
    /// An image could not be encoded or written.
    #[error("cannot write {}: {message}", path.display())]
    ImageWrite {
        /// The output file.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
    /// Writing the `.npz` evaluation file failed.
    #[error(transparent)]
    Npz(#[from] NpzError),
}

impl SampleError {
    /// An [`SampleError::InvalidRequest`] about the argument `name`.
    pub(crate) fn input(name: &str, message: impl std::fmt::Display) -> Self {
        Self::InvalidRequest(format!("{name}: {message}"))
    }
}

/// Result alias for rar-sample.
pub type Result<T> = std::result::Result<T, SampleError>;
