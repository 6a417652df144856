//! Every failure mode on every wire format (OpenAI chat completions, Anthropic Messages, Gemini
//! generateContent), through agentry-fakellm. Each case counts the HTTP attempts the fake
//! recorded, so "retried" and "not retried" are checked exactly. Retry delays are milliseconds,
//! so the file runs in seconds; only the cases that prove a `retry-after` wait take ~1 s.

#![allow(clippy::unwrap_used)] // tests may unwrap

use agentry_core::ErrorCode;
use agentry_core::chat::{ChatModel, ChatRequest, ChatResponse, DeltaSink, Message, ProviderError};
use agentry_fakellm::{Failure, FakeLlmHandle, Reply};
use agentry_llm::{OpenAiConfig, RetryPolicy, Timeouts, build_provider, default_http_client};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "matrix-secret-key-0042";
const MODEL: &str = "matrix-model";
/// The longest `retry-after` the policy honours in these tests.
const CAP: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

const WIRES: [Wire; 3] = [Wire::OpenAi, Wire::Anthropic, Wire::Gemini];

impl Wire {
    fn kind(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
            Wire::Gemini => "gemini",
        }
    }

    /// The base URL in the shape the adapter expects.
    fn base_url(self, fake: &FakeLlmHandle) -> String {
        match self {
            Wire::OpenAi => fake.base_url(),
            Wire::Anthropic | Wire::Gemini => format!("http://{}", fake.addr()),
        }
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl DeltaSink for Collect {
    fn text_delta(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
}

struct Outcome {
    wire: Wire,
    result: Result<ChatResponse, ProviderError>,
    deltas: Vec<String>,
    /// HTTP attempts, as the fake recorded them.
    attempts: usize,
    elapsed: Duration,
}

impl Outcome {
    fn ok(&self) -> &ChatResponse {
        match &self.result {
            Ok(response) => response,
            Err(error) => panic!("{:?}: expected success, got {error:?}", self.wire),
        }
    }

    fn err(&self) -> &ProviderError {
        match &self.result {
            Ok(response) => panic!("{:?}: expected an error, got {response:?}", self.wire),
            Err(error) => {
                assert!(
                    !error.message.contains(KEY),
                    "key leaked: {}",
                    error.message
                );
                error
            }
        }
    }

    fn text(&self) -> String {
        self.deltas.concat()
    }
}

fn policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: CAP,
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_token: Duration::from_secs(5),
        idle: Duration::from_secs(5),
        total: Duration::from_secs(20),
    }
}

async fn run_with(
    wire: Wire,
    replies: Vec<Reply>,
    retry: RetryPolicy,
    timeouts: Timeouts,
) -> Outcome {
    let fake = agentry_fakellm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    fake.push_script(MODEL, replies);
    let config = OpenAiConfig {
        base_url: wire.base_url(&fake),
        api_key: Some(KEY.to_string()),
        timeouts,
        retry,
    };
    let provider: Arc<dyn ChatModel> =
        build_provider(wire.kind(), config, default_http_client()).unwrap();
    let request = ChatRequest {
        model: MODEL.to_string(),
        messages: vec![Message::system("be brief"), Message::user("hello")],
        ..ChatRequest::default()
    };
    let sink = Collect::default();
    let started = Instant::now();
    let result = provider.chat(&request, &sink).await;
    let elapsed = started.elapsed();
    let attempts = fake.requests().len();
    fake.shutdown().await;
    Outcome {
        wire,
        result,
        deltas: sink.0.into_inner().unwrap(),
        attempts,
        elapsed,
    }
}

async fn run(wire: Wire, replies: Vec<Reply>) -> Outcome {
    run_with(wire, replies, policy(2), timeouts()).await
}

/// An HTTP-date `seconds` from now, as `Retry-After` carries it.
fn http_date(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

// ---- Retry-After in each form ------------------------------------------------------------

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::error(429).with_header("retry-after", "1"),
                Reply::text("ok"),
            ],
        )
        .await;
        assert_eq!(out.ok().content.as_deref(), Some("ok"), "{wire:?}");
        assert_eq!(out.attempts, 2, "{wire:?}");
        assert!(
            out.elapsed >= Duration::from_millis(950),
            "{wire:?}: {:?}",
            out.elapsed
        );
    }
}

#[tokio::test]
async fn retry_after_ms_takes_precedence_and_is_honoured() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::error(429)
                    .with_header("retry-after-ms", "300")
                    .with_header("retry-after", "60"),
                Reply::error(503).with_header("retry-after-ms", "200"),
                Reply::text("ok"),
            ],
        )
        .await;
        assert_eq!(out.ok().content.as_deref(), Some("ok"), "{wire:?}");
        assert_eq!(out.attempts, 3, "{wire:?}");
        // 300 + 200 ms waited, and not the 60 s of the plain header.
        assert!(
            out.elapsed >= Duration::from_millis(480),
            "{wire:?}: {:?}",
            out.elapsed
        );
        assert!(
            out.elapsed < Duration::from_secs(3),
            "{wire:?}: {:?}",
            out.elapsed
        );
    }
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::error(503).with_header("retry-after", http_date(2)),
                Reply::text("ok"),
            ],
        )
        .await;
        assert_eq!(out.ok().content.as_deref(), Some("ok"), "{wire:?}");
        assert_eq!(out.attempts, 2, "{wire:?}");
        // Whole seconds: 2 s from now, cut to the second, is at least ~1 s away.
        assert!(
            out.elapsed >= Duration::from_millis(900),
            "{wire:?}: {:?}",
            out.elapsed
        );
        // A date in the past means "now".
        let out = run(
            wire,
            vec![
                Reply::error(429).with_header("retry-after", http_date(-30)),
                Reply::text("ok"),
            ],
        )
        .await;
        assert_eq!(out.attempts, 2, "{wire:?}");
        assert!(
            out.elapsed < Duration::from_secs(1),
            "{wire:?}: {:?}",
            out.elapsed
        );
    }
}

#[tokio::test]
async fn retry_after_beyond_the_cap_gives_up_at_once_in_every_form() {
    let date = http_date(120);
    let forms: [(&str, &str); 3] = [
        ("retry-after", "120"),
        ("retry-after-ms", "60000"),
        ("retry-after", &date),
    ];
    for wire in WIRES {
        for (name, value) in forms {
            let out = run(
                wire,
                vec![
                    Reply::error(429).with_header(name, value),
                    Reply::text("never"),
                ],
            )
            .await;
            let error = out.err();
            assert_eq!(
                error.code,
                ErrorCode::ProviderRateLimited,
                "{wire:?} {name}"
            );
            assert_eq!(error.status, Some(429), "{wire:?} {name}");
            assert_eq!(error.attempts, 1, "{wire:?} {name}");
            assert_eq!(out.attempts, 1, "{wire:?} {name}");
            assert!(
                error.message.contains("beyond the 3s limit"),
                "{}",
                error.message
            );
            assert!(out.elapsed < Duration::from_secs(2), "{wire:?} {name}");
        }
    }
}

// ---- Retryable statuses --------------------------------------------------------------------

#[tokio::test]
async fn server_errors_and_overload_are_retried_then_succeed() {
    for wire in WIRES {
        let out = run_with(
            wire,
            vec![
                Reply::error(500),
                Reply::error(502),
                Reply::error(503),
                Reply::error(529),
                Reply::error(408),
                Reply::error(409),
                Reply::text("finally"),
            ],
            policy(6),
            timeouts(),
        )
        .await;
        assert_eq!(out.ok().content.as_deref(), Some("finally"), "{wire:?}");
        assert_eq!(out.attempts, 7, "{wire:?}");
        assert_eq!(out.text(), "finally", "{wire:?}");
    }
}

#[tokio::test]
async fn persistent_overload_ends_unavailable_after_bounded_retries() {
    for wire in WIRES {
        let out = run(wire, vec![Reply::error(529); 5]).await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderUnavailable, "{wire:?}");
        assert_eq!(error.status, Some(529), "{wire:?}");
        assert_eq!(error.attempts, 3, "{wire:?}");
        assert_eq!(out.attempts, 3, "{wire:?}");
        assert!(!error.streamed);
    }
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    for wire in WIRES {
        for (status, code) in [
            (400, ErrorCode::ProviderRejected),
            (401, ErrorCode::ProviderAuthFailed),
            (403, ErrorCode::ProviderAuthFailed),
            (404, ErrorCode::ProviderRejected),
            (422, ErrorCode::ProviderRejected),
        ] {
            let out = run(wire, vec![Reply::error(status), Reply::text("never")]).await;
            let error = out.err();
            assert_eq!(error.code, code, "{wire:?} {status}");
            assert_eq!(error.status, Some(status), "{wire:?} {status}");
            assert_eq!(out.attempts, 1, "{wire:?} {status}");
        }
    }
}

#[tokio::test]
async fn html_error_pages_become_short_messages() {
    let script = "window.__cf = {};".repeat(400);
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway | example.com | Cloudflare</title>\
         <style>body {{ font: 14px sans-serif }}</style><script>{script}</script></head>\
         <body><h1>Bad gateway</h1>{}</body></html>",
        "<p>The web server reported a bad gateway error.</p>".repeat(100)
    );
    for wire in WIRES {
        let out = run(wire, vec![Reply::error_with_body(502, page.clone()); 3]).await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderUnavailable, "{wire:?}");
        assert_eq!(out.attempts, 3, "{wire:?}");
        assert!(
            error
                .message
                .contains("502 Bad Gateway | example.com | Cloudflare"),
            "{wire:?}: {}",
            error.message
        );
        assert!(!error.message.contains('<'), "{}", error.message);
        assert!(!error.message.contains("window.__cf"), "{}", error.message);
        assert!(error.message.len() < 200, "{wire:?}: {}", error.message);
    }
}

// ---- Failures inside a 200 stream ----------------------------------------------------------

#[tokio::test]
async fn error_event_before_the_first_token_is_retried() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::stream_error(0, "Overloaded").with_error_type("overloaded_error"),
                Reply::text("second try"),
            ],
        )
        .await;
        assert_eq!(out.ok().content.as_deref(), Some("second try"), "{wire:?}");
        assert_eq!(out.attempts, 2, "{wire:?}");
        assert_eq!(out.deltas, ["second", " try"], "{wire:?}");
    }
}

#[tokio::test]
async fn error_event_after_the_first_token_is_not_retried_nor_duplicated() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::new(agentry_fakellm::ReplyKind::StreamError {
                    after_chunks: 2,
                    error: agentry_fakellm::StreamErrorBody {
                        message: "Overloaded".into(),
                        kind: "overloaded_error".into(),
                    },
                    text: Some("alpha beta gamma".into()),
                }),
                Reply::text("must not be requested"),
            ],
        )
        .await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderBadResponse, "{wire:?}");
        assert!(error.streamed, "{wire:?}");
        assert_eq!(error.attempts, 1, "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
        assert_eq!(out.deltas, ["alpha", " beta"], "{wire:?}");
        assert!(error.message.contains("Overloaded"), "{}", error.message);
    }
}

#[tokio::test]
async fn cut_streams_retry_only_before_the_first_token() {
    for wire in WIRES {
        let out = run(wire, vec![Reply::cut("lost", 0), Reply::text("whole")]).await;
        assert_eq!(out.ok().content.as_deref(), Some("whole"), "{wire:?}");
        assert_eq!(out.attempts, 2, "{wire:?}");

        let out = run(
            wire,
            vec![Reply::cut("one two three", 2), Reply::text("never")],
        )
        .await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderBadResponse, "{wire:?}");
        assert!(error.streamed, "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
        assert_eq!(out.text(), "one two", "{wire:?}");
    }
}

#[tokio::test]
async fn total_timeout_after_text_reports_streamed() {
    let short = Timeouts {
        total: Duration::from_millis(600),
        ..timeouts()
    };
    for wire in WIRES {
        // Anthropic sends three events before its first text; 150 ms apart, text starts by 450 ms.
        let slow = Reply::text_in_chunks("a b c d e f", 6).with_chunk_delay_ms(150);
        let out = run_with(wire, vec![slow], policy(2), short.clone()).await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderTimeout, "{wire:?}");
        assert!(error.streamed, "{wire:?}");
        assert!(!out.deltas.is_empty(), "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
    }
}

#[tokio::test]
async fn utf8_split_across_network_chunks_arrives_intact() {
    let text = "héllo wörld — 日本語 🎉 façade ok";
    for wire in WIRES {
        let out = run(wire, vec![Reply::text(text).in_byte_chunks(3, 1)]).await;
        assert_eq!(out.ok().content.as_deref(), Some(text), "{wire:?}");
        assert_eq!(out.text(), text, "{wire:?}");
        assert!(!out.text().contains('\u{FFFD}'), "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
    }
}

#[tokio::test]
async fn sse_comment_lines_are_ignored() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::text("routed answer")
                    .with_sse_comments()
                    .with_chunk_delay_ms(1),
            ],
        )
        .await;
        assert_eq!(
            out.ok().content.as_deref(),
            Some("routed answer"),
            "{wire:?}"
        );
        assert_eq!(out.deltas, ["routed", " answer"], "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
    }
}

#[tokio::test]
async fn missing_usage_is_none_not_a_failure() {
    for wire in WIRES {
        let out = run(wire, vec![Reply::text("no usage").without_usage()]).await;
        let response = out.ok();
        assert_eq!(response.content.as_deref(), Some("no usage"), "{wire:?}");
        assert_eq!(response.usage, None, "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
    }
}

#[tokio::test]
async fn usage_reported_before_a_failure_is_kept_on_the_error() {
    // Anthropic reports usage in `message_start`, before any text: three failed attempts,
    // three billed prompts.
    let out = run(
        Wire::Anthropic,
        vec![Reply::stream_error(0, "Overloaded").with_usage(50, 1); 3],
    )
    .await;
    let error = out.err();
    assert_eq!(out.attempts, 3);
    assert!(!error.streamed);
    assert_eq!(error.usage.map(|u| u.input_tokens), Some(150));
    // Gemini reports it with the text chunks; the failure after text is not retried.
    let out = run(
        Wire::Gemini,
        vec![Reply::stream_error(1, "Overloaded").with_usage(40, 1)],
    )
    .await;
    let error = out.err();
    assert_eq!(out.attempts, 1);
    assert!(error.streamed);
    assert_eq!(error.usage.map(|u| u.input_tokens), Some(40));
    // A retried attempt's usage is billed on top of the successful one's.
    let out = run(
        Wire::Anthropic,
        vec![
            Reply::stream_error(0, "Overloaded").with_usage(50, 1),
            Reply::text("fine").with_usage(50, 2),
        ],
    )
    .await;
    let usage = out.ok().usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (100, 3));
}

// ---- Failures that are about the account or the conversation --------------------------------

#[tokio::test]
async fn context_overflow_is_not_retried() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::failure(Failure::ContextOverflow),
                Reply::text("never"),
            ],
        )
        .await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderContextOverflow, "{wire:?}");
        assert_eq!(error.status, Some(400), "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
    }
}

#[tokio::test]
async fn exhausted_quota_is_not_retried() {
    for wire in WIRES {
        let out = run(
            wire,
            vec![
                Reply::failure(Failure::QuotaExhausted),
                Reply::text("never"),
            ],
        )
        .await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderQuotaExhausted, "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
    }
}

#[tokio::test]
async fn content_filter_is_its_own_error() {
    for wire in WIRES {
        // The answer was withheld (a 200 answer with no content).
        let out = run(wire, vec![Reply::content_filtered(), Reply::text("never")]).await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderContentFiltered, "{wire:?}");
        assert!(!error.streamed, "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
        // The request was refused (OpenAI: 400 content_filter; others: a 200 refusal).
        let out = run(
            wire,
            vec![Reply::failure(Failure::ContentFilter), Reply::text("never")],
        )
        .await;
        let error = out.err();
        assert_eq!(error.code, ErrorCode::ProviderContentFiltered, "{wire:?}");
        assert_eq!(out.attempts, 1, "{wire:?}");
    }
}

#[tokio::test]
async fn gemini_rate_limits_honour_the_retry_delay_in_the_body() {
    let per_minute = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"0.3s"}]}}"#;
    let out = run(
        Wire::Gemini,
        vec![Reply::error_with_body(429, per_minute), Reply::text("ok")],
    )
    .await;
    assert_eq!(out.ok().content.as_deref(), Some("ok"));
    assert_eq!(out.attempts, 2);
    assert!(
        out.elapsed >= Duration::from_millis(280),
        "{:?}",
        out.elapsed
    );
}
