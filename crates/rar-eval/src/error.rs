//! What can go wrong computing a statistic.

/// Why a statistic could not be computed. Each names the input and the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A buffer's length is not a whole number of rows of the expected width.
    #[error("{what}: {len} values are not a whole number of rows of {width}")]
    Ragged {
        /// The input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The row width it should be a multiple of.
        width: usize,
    },
    /// Two inputs that must have the same width do not.
    #[error("{what}: dimension {left} against {right}")]
    DimensionMismatch {
        /// What was compared.
        what: &'static str,
        /// The first input's dimension.
        left: usize,
        /// The second input's dimension.
        right: usize,
    },
    /// Too few samples for the statistic (a covariance needs two).
    #[error("{what}: {got} samples, at least {need} needed")]
    TooFewSamples {
        /// The statistic.
        what: &'static str,
        /// Samples given.
        got: u64,
        /// Samples needed.
        need: u64,
    },
    /// A NaN or an infinity in the input.
    #[error("{what}: non-finite value {value} at index {index}")]
    NonFinite {
        /// The input.
        what: &'static str,
        /// Its flat index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A value outside its valid range (a negative probability, a zero split size, …).
    #[error("{what}: {reason}")]
    Invalid {
        /// The input or setting.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written, or holds something other than what it should.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The Inception weights could not be loaded (the error names the file and the key).
    #[error(transparent)]
    Weights(#[from] rar_weights::WeightError),
    /// The device failed to hand back a result.
    #[error("reading {what} back from the device: {reason}")]
    Device {
        /// The tensor.
        what: &'static str,
        /// The backend's message.
        reason: String,
    },
    /// The eigendecomposition behind the matrix square root did not converge.
    #[error("eigendecomposition of {what} did not converge")]
    NoConvergence {
        /// The matrix.
        what: &'static str,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, EvalError>;

/// The first non-finite value of `values`, as an error naming `what`.
pub(crate) fn check_finite<T: Copy + Into<f64>>(what: &'static str, values: &[T]) -> Result<()> {
    match values.iter().position(|v| !(*v).into().is_finite()) {
        Some(index) => Err(EvalError::NonFinite {
            what,
            index,
            value: values[index].into(),
        }),
        None => Ok(()),
    }
}
