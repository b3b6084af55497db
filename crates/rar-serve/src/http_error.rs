//! The HTTP errors: a status, the request field at fault and a message, sent as
//! `{"error": {"status": …, "field": …, "message": …}}`.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::EngineError;

/// A refused or failed HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status,
            field: field.map(str::to_owned),
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// A well-formed request with an invalid value in `field` (422).
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, Some(field), message)
    }

    /// A body that is not the JSON asked for (400); `field` is the path to the value at
    /// fault when there is one.
    pub fn malformed(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, field, message)
    }

    /// The queue is full (429 with `Retry-After`).
    pub fn busy(capacity: usize, retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                format!("the server is busy ({capacity} jobs waiting): retry later"),
            )
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error as its JSON body.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({ "error": {
            "status": self.status.as_u16(),
            "field": self.field,
            "message": self.message,
        }})
    }

    /// Maps an engine refusal: a full queue is 429, a bad request 422, the rest 500/503. (The
    /// server checks every field itself first, so an engine refusal names no field.)
    pub fn from_engine(error: EngineError, retry_after_s: u64) -> Self {
        match error {
            EngineError::QueueFull { capacity } => Self::busy(capacity, retry_after_s),
            EngineError::TooManyImages { .. } => Self::invalid("count", error.to_string()),
            EngineError::InvalidRequest(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, None, m),
            EngineError::Stopped => Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "stopped"),
            EngineError::Sampling(m) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, m),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field}): {}", self.status, self.message),
            None => write!(f, "{}: {}", self.status, self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_value().to_string(),
        )
            .into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}
