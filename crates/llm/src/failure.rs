//! How one HTTP attempt can fail, whether that is worth retrying, and how the final failure
//! becomes a [`ProviderError`].
//!
//! Code choices beyond the obvious status mapping:
//! - a stream that breaks off, ends without a finish, or carries an error event is a transient
//!   provider problem when nothing was shown yet (retried; `provider_unavailable` once retries
//!   run out) and a `provider_bad_response` once text reached the sink (never retried, since
//!   a retry would repeat that text);
//! - every timeout, including HTTP 408, is `provider_timeout`;
//! - 409 is retried but, like other 4xx, ends as `provider_rejected`.

use crate::text::{redact, tidy};
use agentry_core::ErrorCode;
use agentry_core::chat::ProviderError;
use std::time::Duration;

/// A failed attempt and the last HTTP status it saw (200 for failures inside a stream).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failed {
    pub(crate) failure: AttemptFailure,
    pub(crate) status: Option<u16>,
}

impl Failed {
    pub(crate) fn new(failure: AttemptFailure, status: Option<u16>) -> Self {
        Self { failure, status }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttemptFailure {
    /// A non-2xx answer. `message` is the provider's error message, already tidied.
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request could not be sent (DNS, connect, TLS, reset before the answer).
    Connect { message: String, timed_out: bool },
    /// The request could not even be built (e.g. an invalid base URL); retrying cannot help.
    InvalidRequest(String),
    /// Nothing arrived within the first-token timeout.
    FirstTokenTimeout(Duration),
    /// The stream went silent for longer than the idle timeout.
    IdleTimeout(Duration),
    /// The body broke off, or the stream ended before the answer was complete.
    Interrupted(String),
    /// The provider reported an error inside a 200 answer.
    ErrorEvent(String),
    /// The answer is not a valid completion.
    BadResponse(String),
}

impl AttemptFailure {
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            Self::Connect { .. }
            | Self::FirstTokenTimeout(_)
            | Self::IdleTimeout(_)
            | Self::Interrupted(_)
            | Self::ErrorEvent(_) => true,
            Self::InvalidRequest(_) | Self::BadResponse(_) => false,
        }
    }

    /// The `retry-after` hint, honoured only where providers mean it (429, 503 and
    /// Anthropic's 529 "overloaded").
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status {
                status: 429 | 503 | 529,
                retry_after,
                ..
            } => *retry_after,
            _ => None,
        }
    }

    /// The error code for this failure; `streamed` says whether text already reached the sink.
    pub(crate) fn code(&self, streamed: bool) -> ErrorCode {
        match self {
            Self::Status { status, .. } => match status {
                401 | 403 => ErrorCode::ProviderAuthFailed,
                408 => ErrorCode::ProviderTimeout,
                429 => ErrorCode::ProviderRateLimited,
                500..=599 => ErrorCode::ProviderUnavailable,
                400..=499 => ErrorCode::ProviderRejected,
                _ => ErrorCode::ProviderBadResponse,
            },
            Self::Connect {
                timed_out: true, ..
            }
            | Self::FirstTokenTimeout(_)
            | Self::IdleTimeout(_) => ErrorCode::ProviderTimeout,
            Self::Connect { .. } | Self::InvalidRequest(_) => ErrorCode::ProviderUnavailable,
            Self::Interrupted(_) | Self::ErrorEvent(_) if streamed => {
                ErrorCode::ProviderBadResponse
            }
            Self::Interrupted(_) | Self::ErrorEvent(_) => ErrorCode::ProviderUnavailable,
            Self::BadResponse(_) => ErrorCode::ProviderBadResponse,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Self::Status {
                status, message, ..
            } => format!("provider answered HTTP {status}: {message}"),
            Self::Connect { message, .. } => format!("could not reach the provider: {message}"),
            Self::InvalidRequest(message) => format!("could not build the request: {message}"),
            Self::FirstTokenTimeout(limit) => format!(
                "no response from the provider within the first-token timeout ({})",
                seconds(*limit)
            ),
            Self::IdleTimeout(limit) => format!(
                "the provider's stream stalled longer than the idle timeout ({})",
                seconds(*limit)
            ),
            Self::Interrupted(message) => format!("the provider's answer broke off: {message}"),
            Self::ErrorEvent(message) => format!("the provider reported an error: {message}"),
            Self::BadResponse(message) => format!("invalid answer from the provider: {message}"),
        }
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// Builds the error the caller sees. `note` explains an early stop (e.g. a long retry-after).
pub(crate) fn provider_error(
    failed: &Failed,
    attempts: u32,
    streamed: bool,
    note: Option<&str>,
    secret: Option<&str>,
) -> ProviderError {
    let mut message = failed.failure.message();
    if let Some(note) = note {
        message.push_str(" (");
        message.push_str(note);
        message.push(')');
    }
    if attempts > 1 {
        message.push_str(&format!(" [after {attempts} attempts]"));
    }
    ProviderError {
        code: failed.failure.code(streamed),
        message: redact(&message, secret),
        status: failed.status,
        attempts,
    }
}

/// The error for a call that ran out of its total time budget.
pub(crate) fn total_timeout_error(
    total: Duration,
    attempts: u32,
    status: Option<u16>,
) -> ProviderError {
    ProviderError {
        code: ErrorCode::ProviderTimeout,
        message: format!(
            "the model call exceeded its total timeout ({})",
            seconds(total)
        ),
        status,
        attempts,
    }
}

/// Describes a transport error without its URL (which may carry credentials) but with its
/// causes, which say what actually went wrong ("connection refused", "invalid certificate").
pub(crate) fn describe_reqwest(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    tidy(&message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(status: u16) -> AttemptFailure {
        AttemptFailure::Status {
            status,
            message: "m".into(),
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    #[test]
    fn retryable_statuses() {
        for code in [408, 409, 429, 500, 502, 503, 504] {
            assert!(status(code).retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!status(code).retryable(), "{code}");
        }
        assert!(!AttemptFailure::BadResponse("x".into()).retryable());
        assert!(AttemptFailure::Interrupted("x".into()).retryable());
    }

    #[test]
    fn codes() {
        use ErrorCode::*;
        let cases = [
            (401, ProviderAuthFailed),
            (403, ProviderAuthFailed),
            (408, ProviderTimeout),
            (409, ProviderRejected),
            (422, ProviderRejected),
            (429, ProviderRateLimited),
            (500, ProviderUnavailable),
            (503, ProviderUnavailable),
            (302, ProviderBadResponse),
        ];
        for (code, expected) in cases {
            assert_eq!(status(code).code(false), expected, "{code}");
        }
        let cut = AttemptFailure::Interrupted("x".into());
        assert_eq!(cut.code(false), ProviderUnavailable);
        assert_eq!(cut.code(true), ProviderBadResponse);
        let connect = |timed_out| AttemptFailure::Connect {
            message: "x".into(),
            timed_out,
        };
        assert_eq!(connect(false).code(false), ProviderUnavailable);
        assert_eq!(connect(true).code(false), ProviderTimeout);
    }

    #[test]
    fn retry_after_only_for_429_503_and_529() {
        assert!(status(429).retry_after().is_some());
        assert!(status(503).retry_after().is_some());
        assert!(status(529).retry_after().is_some());
        assert!(status(500).retry_after().is_none());
    }

    #[test]
    fn provider_error_redacts_and_counts() {
        let failed = Failed::new(
            AttemptFailure::Status {
                status: 401,
                message: "Incorrect API key provided: sk-live-abc".into(),
                retry_after: None,
            },
            Some(401),
        );
        let error = provider_error(&failed, 3, false, Some("note"), Some("sk-live-abc"));
        assert_eq!(error.code, ErrorCode::ProviderAuthFailed);
        assert_eq!(error.attempts, 3);
        assert_eq!(error.status, Some(401));
        assert!(!error.message.contains("sk-live-abc"), "{}", error.message);
        assert!(error.message.contains("(note)"));
        assert!(error.message.contains("after 3 attempts"));
    }
}
