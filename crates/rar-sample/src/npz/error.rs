//! Errors of the `.npz` writer.

use std::io;
use std::path::PathBuf;

/// Errors of the `.npz` writer (each names the file).
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    /// An I/O failure on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `.partial` file exists but was written with other settings, for another shape, by
    /// another program, or was altered since (the reason says which).
    #[error("{path}: cannot resume: {reason}")]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// Why it cannot be resumed.
        reason: String,
    },
    /// An image of the wrong size was pushed, or more images than the shape holds.
    #[error("{path}: {reason}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

pub(crate) type Result<T> = std::result::Result<T, NpzError>;
