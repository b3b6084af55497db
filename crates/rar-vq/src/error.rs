//! The crate's error type.
//!
//! Every failure names what it is about (a file, a checkpoint key, a tensor, a value) so a
//! user can act on it; bad input is always an error, never a panic or silent corruption.

use std::path::PathBuf;

/// Everything that can go wrong in `rar-vq`.
#[derive(Debug, thiserror::Error)]
pub enum VqError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A weights file has an extension this crate does not know how to read.
    #[error(
        "{}: unknown weights format (expected a PyTorch `.bin`/`.pt`/`.pth` state dict or `.safetensors`)",
        path.display()
    )]
    UnknownWeightsFormat {
        /// The weights file.
        path: PathBuf,
    },

    /// A weights file could not be parsed (corrupt, truncated, not a checkpoint).
    #[error("{}: cannot read checkpoint: {message}", path.display())]
    CorruptWeights {
        /// The weights file.
        path: PathBuf,
        /// What the reader reported.
        message: String,
    },

    /// The checkpoint lacks a tensor the tokenizer needs.
    #[error("{}: missing tensor '{key}' (expected shape {expected:?})", path.display())]
    MissingKey {
        /// The weights file.
        path: PathBuf,
        /// The PyTorch state-dict key.
        key: String,
        /// The shape the tokenizer expects.
        expected: Vec<usize>,
    },

    /// The checkpoint holds a tensor the tokenizer does not have (strict loading, as the
    /// reference's `load_state_dict(strict=True)`).
    #[error("{}: unexpected tensor '{key}' with shape {found:?}", path.display())]
    UnexpectedKey {
        /// The weights file.
        path: PathBuf,
        /// The PyTorch state-dict key.
        key: String,
        /// Its shape in the file.
        found: Vec<usize>,
    },

    /// A tensor has a different shape than the configuration implies.
    #[error(
        "{}: tensor '{key}' has shape {found:?}, but the tokenizer configuration expects {expected:?}",
        path.display()
    )]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// The PyTorch state-dict key.
        key: String,
        /// Shape implied by the configuration.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },

    /// A tensor's data could not be loaded (wrong dtype, unreadable bytes).
    #[error("{}: tensor '{key}': {message}", path.display())]
    BadTensor {
        /// The weights file.
        path: PathBuf,
        /// The PyTorch state-dict key.
        key: String,
        /// What went wrong.
        message: String,
    },

    /// A tokenizer configuration is inconsistent or cannot be derived from a checkpoint.
    #[error("invalid tokenizer configuration: {0}")]
    InvalidConfig(String),

    /// A tensor given to the tokenizer has the wrong shape or content.
    #[error("invalid input '{name}': {message}")]
    InvalidInput {
        /// Which argument.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// A token id outside `[0, codebook_size)`.
    #[error("token id {value} is outside the codebook [0, {codebook_size})")]
    TokenOutOfRange {
        /// The offending id.
        value: i64,
        /// The codebook size.
        codebook_size: usize,
    },

    /// An image file could not be decoded.
    #[error("{}: cannot decode image: {message}", path.display())]
    ImageDecode {
        /// The image file.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },

    /// An image could not be encoded or written.
    #[error("{}: cannot write image: {message}", path.display())]
    ImageWrite {
        /// The output file.
        path: PathBuf,
        /// What the encoder reported.
        message: String,
    },

    /// A token shard or index is malformed (bad magic, version, header field, checksum).
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

    /// The input of a resumed pretokenization run differs from the one recorded in the index.
    #[error("{}: cannot resume: {message}", path.display())]
    ResumeMismatch {
        /// The index file.
        path: PathBuf,
        /// What differs.
        message: String,
    },
}

impl VqError {
    /// An [`VqError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`VqError::InvalidInput`].
    pub(crate) fn input(name: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            name,
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = VqError> = std::result::Result<T, E>;
