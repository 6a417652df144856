//! The one retry layer: bounded attempts, exponential backoff with full jitter, `retry-after`
//! hints, a total time budget, and the rule that nothing is retried once text has reached the
//! caller's sink (a retry would show that text twice). Protocol adapters implement [`Attempt`]
//! and get all of this from [`run`].

use crate::config::{RetryPolicy, Timeouts};
use crate::failure::{Failed, provider_error, total_timeout_error};
use agentry_core::chat::{ChatResponse, DeltaSink, ProviderError, Usage};
use agentry_core::embedding::Embeddings;
use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::HeaderMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// One HTTP attempt of a model call.
#[async_trait::async_trait]
pub(crate) trait Attempt: Send + Sync {
    type Output: Billed + Send;
    async fn run(&self, sink: &Forwarding<'_>) -> Result<Self::Output, Failed>;
}

/// A successful answer that can absorb the usage of earlier failed attempts of the same call:
/// the provider billed those too, and the caller only ever sees one result.
pub(crate) trait Billed {
    fn add_billed(&mut self, usage: Usage);
}

impl Billed for ChatResponse {
    fn add_billed(&mut self, usage: Usage) {
        self.usage.get_or_insert_with(Usage::default).add(usage);
    }
}

impl Billed for Embeddings {
    fn add_billed(&mut self, usage: Usage) {
        self.usage.add(usage);
    }
}

/// The caller's sink, remembering whether any text went through it, plus the usage the
/// current attempt has reported so far.
pub(crate) struct Forwarding<'a> {
    sink: &'a dyn DeltaSink,
    forwarded: AtomicBool,
    usage: Mutex<Option<Usage>>,
}

impl<'a> Forwarding<'a> {
    pub(crate) fn new(sink: &'a dyn DeltaSink) -> Self {
        Self {
            sink,
            forwarded: AtomicBool::new(false),
            usage: Mutex::new(None),
        }
    }

    pub(crate) fn text(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.forwarded.store(true, Ordering::Relaxed);
        self.sink.text_delta(text);
    }

    pub(crate) fn forwarded(&self) -> bool {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// The current attempt's answer reported this (cumulative) usage. Kept outside the attempt
    /// so that it survives the attempt being dropped by the total timeout.
    pub(crate) fn report_usage(&self, usage: Usage) {
        *self.usage.lock().unwrap_or_else(PoisonError::into_inner) = Some(usage);
    }

    /// The usage the attempt that just ended reported, resetting it for the next attempt.
    fn take_usage(&self) -> Option<Usage> {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Retry(Duration),
    /// Stop; the note explains an early stop.
    GiveUp(Option<String>),
}

/// Whether and when to try again after `attempts` attempts ended with `failed`.
pub(crate) fn decide(
    policy: &RetryPolicy,
    failed: &Failed,
    attempts: u32,
    forwarded: bool,
) -> Decision {
    if forwarded {
        return Decision::GiveUp(Some(
            "not retried: part of the answer was already streamed".to_string(),
        ));
    }
    if !failed.failure.retryable() || attempts > policy.max_retries {
        return Decision::GiveUp(None);
    }
    match failed.failure.retry_after() {
        Some(hint) if hint > policy.max_retry_after => Decision::GiveUp(Some(format!(
            "provider asked to retry after {}s, beyond the {}s limit",
            hint.as_secs(),
            policy.max_retry_after.as_secs()
        ))),
        Some(hint) => Decision::Retry(hint),
        None => Decision::Retry(backoff(policy, attempts)),
    }
}

/// Full jitter: uniformly random in `[0, min(max_delay, base_delay * 2^(retry-1))]`, which
/// spreads out clients that failed together better than a fixed exponential schedule.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    let cap = policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay);
    cap.mul_f64(rand::rng().random::<f64>())
}

/// Reads `retry-after-ms` (OpenAI, Azure), then `retry-after` as seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

fn add_usage(total: &mut Option<Usage>, usage: Option<Usage>) {
    if let Some(usage) = usage {
        total.get_or_insert_with(Usage::default).add(usage);
    }
}

/// Runs `attempt` until it succeeds or the policy says stop. Usage reported by failed attempts
/// (billed by the provider) is carried into the result: added to a success's usage, or set as
/// the error's `usage`.
pub(crate) async fn run<A: Attempt + ?Sized>(
    policy: &RetryPolicy,
    timeouts: &Timeouts,
    secret: Option<&str>,
    sink: &dyn DeltaSink,
    attempt: &A,
) -> Result<A::Output, ProviderError> {
    let sink = Forwarding::new(sink);
    let deadline = Instant::now() + timeouts.total;
    let mut attempts = 0;
    let mut last_status = None;
    let mut billed: Option<Usage> = None;
    loop {
        attempts += 1;
        let outcome = tokio::time::timeout_at(deadline, attempt.run(&sink)).await;
        let attempt_usage = sink.take_usage();
        let mut failed = match outcome {
            Ok(Ok(mut response)) => {
                if let Some(usage) = billed {
                    response.add_billed(usage);
                }
                return Ok(response);
            }
            Ok(Err(failed)) => failed,
            Err(_) => {
                add_usage(&mut billed, attempt_usage);
                let mut error = total_timeout_error(timeouts.total, attempts, last_status);
                error.streamed = sink.forwarded();
                error.usage = billed;
                return Err(error);
            }
        };
        add_usage(&mut billed, attempt_usage);
        failed.status = failed.status.or(last_status);
        last_status = failed.status;
        let forwarded = sink.forwarded();
        let give_up = |note: Option<&str>| {
            let mut error = provider_error(&failed, attempts, forwarded, note, secret);
            error.usage = billed;
            error
        };
        let delay = match decide(policy, &failed, attempts, forwarded) {
            Decision::Retry(delay) if Instant::now() + delay < deadline => delay,
            Decision::Retry(_) => {
                return Err(give_up(Some(
                    "no time left for a retry within the total timeout",
                )));
            }
            Decision::GiveUp(note) => return Err(give_up(note.as_deref())),
        };
        let error = provider_error(&failed, attempts, forwarded, None, secret);
        tracing::warn!(
            attempt = attempts,
            status = failed.status,
            code = %error.code,
            delay_ms = delay.as_millis() as u64,
            error = %error.message,
            "model call failed; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::failure::AttemptFailure;
    use reqwest::header::HeaderValue;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
        }
    }

    fn status(status: u16, retry_after: Option<Duration>) -> Failed {
        Failed::new(
            AttemptFailure::Status {
                status,
                message: String::new(),
                retry_after,
                cause: crate::failure::Cause::Plain,
            },
            Some(status),
        )
    }

    #[test]
    fn backoff_is_jittered_below_a_doubling_cap() {
        let policy = policy();
        for _ in 0..200 {
            assert!(backoff(&policy, 1) <= Duration::from_millis(100));
            assert!(backoff(&policy, 2) <= Duration::from_millis(200));
            assert!(backoff(&policy, 3) <= Duration::from_millis(250));
            assert!(backoff(&policy, 40) <= Duration::from_millis(250));
        }
    }

    #[test]
    fn decisions() {
        let policy = policy();
        assert!(matches!(
            decide(&policy, &status(500, None), 1, false),
            Decision::Retry(_)
        ));
        assert!(matches!(
            decide(&policy, &status(500, None), 3, false),
            Decision::GiveUp(None)
        ));
        assert!(matches!(
            decide(&policy, &status(400, None), 1, false),
            Decision::GiveUp(None)
        ));
        assert!(matches!(
            decide(&policy, &status(500, None), 1, true),
            Decision::GiveUp(Some(_))
        ));
        let hint = Some(Duration::from_secs(3));
        assert_eq!(
            decide(&policy, &status(429, hint), 1, false),
            Decision::Retry(Duration::from_secs(3))
        );
        // 500 does not honour retry-after; the jittered backoff applies.
        let Decision::Retry(delay) = decide(&policy, &status(500, hint), 1, false) else {
            panic!("should retry");
        };
        assert!(delay <= Duration::from_millis(100));
        let too_long = Some(Duration::from_secs(11));
        assert!(matches!(
            decide(&policy, &status(503, too_long), 1, false),
            Decision::GiveUp(Some(_))
        ));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let parse = |pairs: &[(&'static str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(parse(&[("retry-after", "0")]), Some(Duration::ZERO));
        assert_eq!(
            parse(&[("retry-after", " 7 ")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse(&[("retry-after", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse(&[("retry-after-ms", "250"), ("retry-after", "9")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse(&[("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT")]),
            Some(Duration::ZERO)
        );
        assert_eq!(parse(&[("retry-after", "soon")]), None);
        assert_eq!(parse(&[("retry-after", "-1")]), None);
        assert_eq!(parse(&[]), None);
    }

    /// A scripted attempt: each run pops the next step.
    struct Scripted {
        steps: Mutex<Vec<Step>>,
    }

    enum Step {
        /// Report usage, forward `text`, then fail with a retryable stream failure.
        Fail {
            usage: Option<Usage>,
            text: &'static str,
        },
        /// Report usage, forward text, then hang (only the total timeout ends it).
        Hang {
            usage: Usage,
            text: &'static str,
        },
        Succeed(Option<Usage>),
    }

    #[async_trait::async_trait]
    impl Attempt for Scripted {
        type Output = ChatResponse;
        async fn run(&self, sink: &Forwarding<'_>) -> Result<ChatResponse, Failed> {
            let step = self.steps.lock().unwrap().remove(0);
            match step {
                Step::Fail { usage, text } => {
                    if let Some(usage) = usage {
                        sink.report_usage(usage);
                    }
                    sink.text(text);
                    Err(Failed::new(
                        AttemptFailure::ErrorEvent("overloaded".into()),
                        Some(200),
                    ))
                }
                Step::Hang { usage, text } => {
                    sink.report_usage(usage);
                    sink.text(text);
                    std::future::pending().await
                }
                Step::Succeed(usage) => Ok(ChatResponse {
                    model: "m".into(),
                    content: Some("ok".into()),
                    tool_calls: Vec::new(),
                    finish_reason: agentry_core::chat::FinishReason::Stop,
                    usage,
                }),
            }
        }
    }

    fn fast() -> (RetryPolicy, Timeouts) {
        let policy = RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_retry_after: Duration::from_secs(1),
        };
        let timeouts = Timeouts {
            total: Duration::from_millis(200),
            ..Timeouts::default()
        };
        (policy, timeouts)
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    async fn run_steps(steps: Vec<Step>) -> Result<ChatResponse, ProviderError> {
        let (policy, timeouts) = fast();
        let attempt = Scripted {
            steps: Mutex::new(steps),
        };
        run(
            &policy,
            &timeouts,
            None,
            &agentry_core::chat::NoDeltas,
            &attempt,
        )
        .await
    }

    #[tokio::test]
    async fn usage_of_a_failed_stream_is_kept_on_the_error() {
        let error = run_steps(vec![Step::Fail {
            usage: Some(usage(7, 1)),
            text: "partial",
        }])
        .await
        .unwrap_err();
        assert!(error.streamed);
        assert_eq!(error.attempts, 1);
        assert_eq!(error.usage, Some(usage(7, 1)));
    }

    #[tokio::test]
    async fn usage_of_every_failed_attempt_adds_up() {
        let fail = |input| Step::Fail {
            usage: Some(usage(input, 0)),
            text: "",
        };
        let error = run_steps(vec![fail(5), fail(6), fail(7)])
            .await
            .unwrap_err();
        assert!(!error.streamed);
        assert_eq!(error.attempts, 3);
        assert_eq!(error.usage, Some(usage(18, 0)));
        // A failure without usage reports none.
        let none = || Step::Fail {
            usage: None,
            text: "",
        };
        let error = run_steps(vec![none(), none(), none()]).await.unwrap_err();
        assert_eq!(error.usage, None);
    }

    #[tokio::test]
    async fn a_success_after_failures_carries_their_billed_usage() {
        let response = run_steps(vec![
            Step::Fail {
                usage: Some(usage(5, 0)),
                text: "",
            },
            Step::Succeed(Some(usage(5, 3))),
        ])
        .await
        .unwrap();
        assert_eq!(response.usage, Some(usage(10, 3)));
        let response = run_steps(vec![
            Step::Fail {
                usage: Some(usage(5, 0)),
                text: "",
            },
            Step::Succeed(None),
        ])
        .await
        .unwrap();
        assert_eq!(response.usage, Some(usage(5, 0)));
        let response = run_steps(vec![Step::Succeed(None)]).await.unwrap();
        assert_eq!(response.usage, None);
    }

    #[tokio::test]
    async fn total_timeout_reports_streamed_and_usage() {
        let error = run_steps(vec![Step::Hang {
            usage: usage(9, 2),
            text: "some text",
        }])
        .await
        .unwrap_err();
        assert_eq!(error.code, agentry_core::ErrorCode::ProviderTimeout);
        assert!(error.streamed);
        assert_eq!(error.usage, Some(usage(9, 2)));
        let error = run_steps(vec![Step::Hang {
            usage: usage(1, 0),
            text: "",
        }])
        .await
        .unwrap_err();
        assert!(!error.streamed);
    }
}
