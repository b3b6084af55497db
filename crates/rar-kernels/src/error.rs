//! Errors of the kernels (shape mismatches between the caller's buffers and a kernel).

/// What a kernel refused.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Buffers whose lengths do not fit the sizes given.
    #[error("kernel shape mismatch: {0}")]
    Shape(String),
}

/// `Result` with [`KernelError`].
pub type Result<T> = std::result::Result<T, KernelError>;
