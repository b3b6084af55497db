//! Errors of the serving engine.

use thiserror::Error;

/// Why a job was refused or failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EngineError {
    /// The queue holds `capacity` waiting jobs already: try again later (HTTP 429).
    #[error("the queue is full ({capacity} jobs waiting): retry later")]
    QueueFull {
        /// Jobs the queue holds.
        capacity: usize,
    },
    /// A job asks for more images than one batch holds.
    #[error("a job of {images} images exceeds the batch limit of {limit}")]
    TooManyImages {
        /// Images asked for.
        images: usize,
        /// The engine's batch size in images.
        limit: usize,
    },
    /// A request is invalid (class, temperature, guidance …); the message names it.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Sampling failed on the device.
    #[error("sampling failed: {0}")]
    Sampling(String),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}
