//! The crate's error type.
//!
//! Every failure names what it is about (a file, a record, a setting and its value), so a
//! user can act on it; bad data is always an error, never a panic or silent corruption.

use std::path::PathBuf;

/// Everything that can go wrong in rar-data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A token shard or its index is malformed (bad magic, version, header field, checksum,
    /// a label or token out of range).
    #[error("{}: invalid token shard: {message}", path.display())]
    InvalidShard {
        /// The shard or index file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A token shard is shorter than its header says (an interrupted write or copy).
    #[error(
        "{}: truncated token shard: the header promises {expected} bytes but the file has {found}",
        path.display()
    )]
    TruncatedShard {
        /// The shard file.
        path: PathBuf,
        /// File length implied by the header.
        expected: u64,
        /// Actual file length.
        found: u64,
    },

    /// The input of a resumed pretokenization run differs from the one recorded in its index.
    #[error("{}: cannot resume: {message}", path.display())]
    ResumeMismatch {
        /// The index file.
        path: PathBuf,
        /// What differs.
        message: String,
    },

    /// A record does not fit the data's shape (token count, label or token id out of range).
    #[error("{what}: {reason}")]
    Record {
        /// Which record of which data (`the toy dataset, record 12`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A setting or argument is out of range.
    #[error("invalid {name}: {message}")]
    InvalidInput {
        /// Which setting.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// An image file could not be decoded.
    #[error("{}: cannot decode image: {message}", path.display())]
    ImageDecode {
        /// The image file.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },

    /// The encoder given to the pretokenizer failed.
    #[error("the tokenizer failed: {0}")]
    Encoder(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DataError {
    /// A [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`DataError::InvalidInput`].
    pub(crate) fn input(name: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            name,
            message: message.into(),
        }
    }

    /// A [`DataError::InvalidShard`].
    pub(crate) fn shard(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::InvalidShard {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
