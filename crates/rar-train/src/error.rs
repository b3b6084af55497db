//! Errors of the training crate.

use std::path::PathBuf;

/// Why a training run or step failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model rejected its input or configuration.
    #[error(transparent)]
    Model(#[from] rar_model::RarModelError),
    /// A schedule or order could not be built.
    #[error(transparent)]
    Core(#[from] rar_core::CoreError),
    /// Sampling failed.
    #[error(transparent)]
    Sample(#[from] rar_sample::SampleError),
    /// Decoding previews with the tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] rar_vq::VqError),
    /// Reading the training data failed, or a record does not fit it (the message names the
    /// file, the record and the value).
    #[error(transparent)]
    Data(#[from] rar_data::DataError),
    /// The loss became NaN or infinite; the run stops so no bad update is applied.
    #[error(
        "non-finite training loss {loss} at optimizer step {step}: stopping (the update of this step was not applied)"
    )]
    NonFiniteLoss {
        /// The 0-based optimizer step whose loss was not finite.
        step: u64,
        /// The loss value read back from the device.
        loss: f64,
    },
    /// The global gradient norm became NaN or infinite.
    #[error("non-finite gradient norm {norm} at optimizer step {step}: stopping")]
    NonFiniteGradient {
        /// The 0-based optimizer step.
        step: u64,
        /// The pre-clip global gradient norm.
        norm: f64,
    },
    /// A device list cannot be used for training.
    #[error("unsupported training devices {devices}: {reason}")]
    Devices {
        /// The devices as given (debug form).
        devices: String,
        /// Why they are refused.
        reason: String,
    },
    /// A training setting is out of range.
    #[error("invalid training setting: {0}")]
    InvalidSetting(String),
    /// The model has no trainable parameter with a gradient.
    #[error("the loss has no gradient with respect to any parameter")]
    NoGradients,
    /// The newest checkpoint of a run cannot be resumed from; `fallback` is the newest older
    /// one that can.
    #[error(
        "cannot resume from {}: {reason}{}",
        path.display(),
        fallback.as_ref().map_or_else(
            || " (no older checkpoint of the run is readable either)".to_string(),
            |f| format!(
                "; the older checkpoint {} is intact: resume from it explicitly (train_imagenet \
                 --resume {}), or move the damaged one aside",
                f.display(),
                f.display()
            )
        )
    )]
    Checkpoint {
        /// The checkpoint folder that cannot be read.
        path: PathBuf,
        /// Why.
        reason: String,
        /// The newest older checkpoint folder that can be read, if any.
        fallback: Option<PathBuf>,
    },
    /// Reading a checkpoint file failed.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
