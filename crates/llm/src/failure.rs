//! How one HTTP attempt can fail, whether that is worth retrying, and how the final failure
//! becomes a [`ProviderError`].
//!
//! Code choices beyond the obvious status mapping:
//! - a stream that breaks off, ends without a finish, or carries an error event is a transient
//!   provider problem when nothing was shown yet (retried; `provider_unavailable` once retries
//!   run out) and a `provider_bad_response` once text reached the sink (never retried, since
//!   a retry would repeat that text);
//! - every timeout, including HTTP 408, is `provider_timeout`;
//! - 409 is retried but, like other 4xx, ends as `provider_rejected`;
//! - some 4xx answers are not about the request's form but about the account or the
//!   conversation: an exhausted quota or credit (`provider_quota_exhausted`), a conversation
//!   longer than the context window (`provider_context_overflow`) and a content-filter refusal
//!   (`provider_content_filtered`). None is retried: the same request fails the same way, and
//!   a quota 429 in particular must not be mistaken for a passing rate limit.

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

/// What a 4xx answer is about, beyond its status (see [`classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Nothing more specific than the status says.
    Plain,
    /// The account has no quota or credit left.
    Quota,
    /// The conversation exceeds the model's context window.
    ContextOverflow,
    /// The provider's content filter refused the request.
    ContentFilter,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttemptFailure {
    /// A non-2xx answer. `message` is the provider's error message, already tidied.
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
        cause: Cause,
    },
    /// A 2xx answer that the content filter emptied (no text, no tool calls).
    ContentFiltered(String),
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
            Self::Status {
                cause: Cause::Plain,
                status,
                ..
            } => matches!(status, 408 | 409 | 429 | 500..=599),
            Self::Status { .. } | Self::ContentFiltered(_) => false,
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
            Self::Status {
                cause: Cause::Quota,
                ..
            } => ErrorCode::ProviderQuotaExhausted,
            Self::Status {
                cause: Cause::ContextOverflow,
                ..
            } => ErrorCode::ProviderContextOverflow,
            Self::Status {
                cause: Cause::ContentFilter,
                ..
            }
            | Self::ContentFiltered(_) => ErrorCode::ProviderContentFiltered,
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
            Self::ContentFiltered(message) => {
                format!("the provider's content filter withheld the answer: {message}")
            }
        }
    }

    /// A non-2xx answer: `body` is the raw error body (classified), `message` the provider's
    /// message extracted from it.
    pub(crate) fn status(
        status: u16,
        body: &str,
        message: String,
        retry_after: Option<Duration>,
    ) -> Self {
        let retry_after = retry_after.or_else(|| body_retry_delay(body));
        Self::Status {
            status,
            message,
            retry_after,
            cause: classify(status, body, retry_after.is_some()),
        }
    }
}

/// Gemini sends no `Retry-After` header; its 429s carry the hint in the body instead, as a
/// `google.rpc.RetryInfo` detail: `{"error": {"details": [{"retryDelay": "12s"}]}}`.
fn body_retry_delay(body: &str) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let error = match &value {
        serde_json::Value::Array(items) => items.first()?.get("error")?,
        other => other.get("error")?,
    };
    error
        .get("details")?
        .as_array()?
        .iter()
        .filter_map(|detail| detail.get("retryDelay")?.as_str())
        .find_map(|delay| {
            let seconds: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
            (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
        })
}

/// Reads what a 4xx body is about. Providers signal these conditions in different places
/// (OpenAI in `error.code`, Anthropic and Gemini only in the message), so this matches on the
/// lowercased body text; 5xx answers are never reclassified.
///
/// Quota is the delicate one: Gemini words its per-minute rate limits ("You exceeded your
/// current quota") like its exhausted quotas, but attaches a `RetryInfo` delay to them; a 429
/// with a retry hint is therefore still a (retryable) rate limit unless it names
/// `insufficient_quota` (OpenAI's unambiguous code).
pub(crate) fn classify(status: u16, body: &str, retry_hint: bool) -> Cause {
    if !(400..=499).contains(&status) {
        return Cause::Plain;
    }
    let text = body.to_ascii_lowercase();
    let has = |needle: &str| text.contains(needle);
    let overflow = has("context_length_exceeded")
        || has("prompt is too long")
        || has("maximum context length")
        || has("exceeds the maximum number of tokens")
        || has("exceeds the available context size")
        || (has("input token count") && has("exceed"))
        || (has("context window") && has("exceed"));
    if overflow {
        return Cause::ContextOverflow;
    }
    if has("content_filter")
        || has("content_policy_violation")
        || has("responsibleaipolicyviolation")
    {
        return Cause::ContentFilter;
    }
    let unambiguous_quota = status == 402
        || has("insufficient_quota")
        || has("credit balance")
        || has("billing_error")
        || has("insufficient credits");
    let quota_wording = has("quota") || has("billing");
    let rate_limit_hint = retry_hint || has("retrydelay");
    if unambiguous_quota
        || (quota_wording && has("resource_exhausted") && !rate_limit_hint)
        || (quota_wording && status != 429)
    {
        return Cause::Quota;
    }
    Cause::Plain
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
        streamed,
        usage: None,
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
        streamed: false,
        usage: None,
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
            cause: Cause::Plain,
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
                cause: Cause::Plain,
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

    fn classified(status: u16, body: &str, hint: bool) -> AttemptFailure {
        AttemptFailure::status(status, body, "m".into(), hint.then_some(Duration::ZERO))
    }

    #[test]
    fn retryable_statuses_include_529_and_every_5xx() {
        for code in [408, 409, 429, 500, 501, 502, 503, 504, 529] {
            assert!(classified(code, "{}", false).retryable(), "{code}");
        }
        for code in [400, 401, 402, 403, 404, 413, 422] {
            assert!(!classified(code, "{}", false).retryable(), "{code}");
        }
        assert!(
            AttemptFailure::Connect {
                message: "refused".into(),
                timed_out: false
            }
            .retryable()
        );
        assert!(AttemptFailure::FirstTokenTimeout(Duration::from_secs(1)).retryable());
        assert!(AttemptFailure::IdleTimeout(Duration::from_secs(1)).retryable());
        assert!(!AttemptFailure::ContentFiltered("x".into()).retryable());
    }

    #[test]
    fn context_overflow_in_every_provider_dialect() {
        let bodies = [
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#,
            ),
        ];
        for (code, body) in bodies {
            let failure = classified(code, body, false);
            assert!(!failure.retryable(), "{body}");
            assert_eq!(
                failure.code(false),
                ErrorCode::ProviderContextOverflow,
                "{body}"
            );
        }
        // The same words in a 5xx are not a client problem.
        assert_eq!(classify(500, "prompt is too long", false), Cause::Plain);
    }

    #[test]
    fn quota_is_never_retried_but_rate_limits_are() {
        let openai = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#;
        let gemini = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED"}}"#;
        for (code, body, hint) in [
            (429, openai, false),
            // insufficient_quota stays quota even with a retry-after header.
            (429, openai, true),
            (400, anthropic, false),
            (429, gemini, false),
            (
                402,
                r#"{"error":{"message":"Insufficient credits"}}"#,
                false,
            ),
        ] {
            let failure = classified(code, body, hint);
            assert!(!failure.retryable(), "{body}");
            assert_eq!(
                failure.code(false),
                ErrorCode::ProviderQuotaExhausted,
                "{body}"
            );
        }
        // Gemini's per-minute limit uses quota words but carries a RetryInfo delay.
        let per_minute = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}"#;
        let failure = classified(429, per_minute, false);
        assert!(failure.retryable());
        assert_eq!(failure.code(false), ErrorCode::ProviderRateLimited);
        // ...which is honoured like a Retry-After header.
        assert_eq!(failure.retry_after(), Some(Duration::from_secs(12)));
        // An OpenAI rate limit that mentions billing in passing is still a rate limit.
        let rate = r#"{"error":{"message":"Rate limit reached for requests. Add a payment method at https://platform.openai.com/account/billing to increase your limit.","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert!(classified(429, rate, false).retryable());
    }

    #[test]
    fn reads_gemini_retry_delays_from_the_body() {
        let body = |delay: &str| {
            format!(
                r#"[{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure"}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}]"#
            )
        };
        assert_eq!(
            body_retry_delay(&body("1.5s")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(body_retry_delay(&body("soon")), None);
        assert_eq!(body_retry_delay(&body("-1s")), None);
        assert_eq!(body_retry_delay("<html>"), None);
        assert_eq!(body_retry_delay(r#"{"error":{"message":"x"}}"#), None);
        // A header hint wins over the body.
        let header =
            AttemptFailure::status(429, &body("30s"), "m".into(), Some(Duration::from_secs(2)));
        assert_eq!(header.retry_after(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn content_filter_refusals() {
        let azure = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        let failure = classified(400, azure, false);
        assert!(!failure.retryable());
        assert_eq!(failure.code(false), ErrorCode::ProviderContentFiltered);
        let filtered = AttemptFailure::ContentFiltered("finish reason content_filter".into());
        assert_eq!(filtered.code(false), ErrorCode::ProviderContentFiltered);
        assert!(filtered.message().contains("content filter"));
    }

    #[test]
    fn plain_client_errors_stay_rejected() {
        for (code, expected) in [
            (400, ErrorCode::ProviderRejected),
            (404, ErrorCode::ProviderRejected),
            (422, ErrorCode::ProviderRejected),
            (401, ErrorCode::ProviderAuthFailed),
            (403, ErrorCode::ProviderAuthFailed),
        ] {
            let failure = classified(code, r#"{"error":{"message":"bad field"}}"#, false);
            assert!(!failure.retryable(), "{code}");
            assert_eq!(failure.code(false), expected, "{code}");
        }
    }
}
