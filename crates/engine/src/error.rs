//! The error every service function returns: a stable code, a sentence for a person, and
//! optional structured details (e.g. which fields failed, which tools exist).

use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_store::StoreError;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(ErrorCode::ValidationFailed, message)
            .with_details(serde_json::json!({ "fields": errors }))
    }

    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        // The cause is logged here, once; the caller only sees the request id.
        tracing::error!(error = %error, "{context}");
        Self::new(ErrorCode::Internal, "an internal error occurred")
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::new(ErrorCode::Internal, "unexpected conflict"),
            other => Self::internal("database error", other),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
