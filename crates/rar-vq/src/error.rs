//! The crate's error type.
//!
//! Every failure names what it is about (a file, a checkpoint key, a tensor, a value) so a
//! user can act on it; bad input is always an error, never a panic or silent corruption.

/// Everything that can go wrong in `rar-vq`.
#[derive(Debug, thiserror::Error)]
pub enum VqError {
    /// A weights file could not be read or does not fit the tokenizer (the message names
    /// the file and the key).
    #[error(transparent)]
    Weights(#[from] rar_weights::WeightError),

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
}

impl VqError {
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
