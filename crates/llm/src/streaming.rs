//! One HTTP attempt against a provider that always answers with an SSE stream (Anthropic,
//! Gemini): send with the protocol's headers, classify the status, then fold the events with a
//! protocol-specific [`StreamFold`]. Timeouts and failure classes match the OpenAI adapter's.

use crate::body::{TimedBody, read_error_body};
use crate::config::Timeouts;
use crate::failure::{AttemptFailure, Failed, describe_reqwest};
use crate::retry::{self, Attempt, Forwarding};
use crate::sse::{SseEvent, SseParser};
use crate::text::tidy;
use agentry_core::chat::{ChatResponse, Usage};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use std::marker::PhantomData;
use std::time::Duration;
use tokio::time::Instant;

/// Error bodies only feed a message; more is never needed.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How long an error body may take to arrive.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(5);

/// Folds a protocol's stream events into a response.
pub(crate) trait StreamFold: Default + Send {
    /// Applies one event and returns the text it adds, if any.
    fn apply(&mut self, event: &SseEvent) -> Result<Option<String>, AttemptFailure>;
    /// Nothing more will come (the protocol's explicit end marker arrived).
    fn is_done(&self) -> bool;
    /// The answer is complete even if the end marker is still missing.
    fn is_complete(&self) -> bool;
    /// Usage reported so far, kept when the attempt fails later (the provider bills it).
    fn usage(&self) -> Option<Usage>;
    fn finish(self, requested_model: &str) -> Result<ChatResponse, AttemptFailure>;
}

/// Builds a header map for the attempt; the key header is marked sensitive so it stays out of
/// reqwest's debug output. A key that is not a valid header value is an invalid request (the
/// message never repeats the key).
pub(crate) fn headers(
    pairs: &[(&'static str, &str)],
    secret: Option<(&'static str, &str)>,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let value =
            HeaderValue::from_str(value).map_err(|_| format!("invalid `{name}` header value"))?;
        map.insert(HeaderName::from_static(name), value);
    }
    if let Some((name, key)) = secret {
        let mut value = HeaderValue::from_str(key)
            .map_err(|_| "the API key is not a valid header value".to_string())?;
        value.set_sensitive(true);
        map.insert(HeaderName::from_static(name), value);
    }
    Ok(map)
}

/// Sends one JSON POST of an attempt within the first-token deadline and turns a non-2xx
/// answer into its failure class (with the provider's message and `retry-after`). Returns the
/// successful response and the deadline its first bytes had to beat.
pub(crate) async fn post(
    client: &reqwest::Client,
    endpoint: &str,
    headers: &Result<HeaderMap, String>,
    timeouts: &Timeouts,
    body: Bytes,
    accept: &'static str,
    error_message: fn(&str) -> String,
) -> Result<(reqwest::Response, Instant), Failed> {
    let headers = match headers {
        Ok(headers) => headers.clone(),
        Err(message) => {
            let failure = AttemptFailure::InvalidRequest(message.clone());
            return Err(Failed::new(failure, None));
        }
    };
    let first_deadline = Instant::now() + timeouts.first_token;
    let request = client
        .post(endpoint)
        .headers(headers)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, accept)
        .body(body);
    let response = match tokio::time::timeout_at(first_deadline, request.send()).await {
        Err(_) => {
            let failure = AttemptFailure::FirstTokenTimeout(timeouts.first_token);
            return Err(Failed::new(failure, None));
        }
        Ok(Err(error)) => return Err(Failed::new(send_failure(error), None)),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    if !response.status().is_success() {
        let retry_after = retry::retry_after(response.headers(), chrono::Utc::now());
        let body = read_error_body(response, MAX_ERROR_BODY, ERROR_BODY_WAIT).await;
        let message = error_message(&body);
        let failure = AttemptFailure::status(status, &body, message, retry_after);
        return Err(Failed::new(failure, Some(status)));
    }
    Ok((response, first_deadline))
}

pub(crate) struct SseAttempt<'a, F> {
    pub(crate) client: &'a reqwest::Client,
    pub(crate) endpoint: &'a str,
    /// Protocol headers, or why they could not be built.
    pub(crate) headers: &'a Result<HeaderMap, String>,
    pub(crate) timeouts: &'a Timeouts,
    pub(crate) body: Bytes,
    pub(crate) model: &'a str,
    /// Extracts the provider's message from an error body.
    pub(crate) error_message: fn(&str) -> String,
    pub(crate) fold: PhantomData<fn() -> F>,
}

#[async_trait::async_trait]
impl<F: StreamFold> Attempt for SseAttempt<'_, F> {
    type Output = ChatResponse;

    async fn run(&self, sink: &Forwarding<'_>) -> Result<ChatResponse, Failed> {
        let (response, first_deadline) = post(
            self.client,
            self.endpoint,
            self.headers,
            self.timeouts,
            self.body.clone(),
            "text/event-stream",
            self.error_message,
        )
        .await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mut body = TimedBody::new(
            response,
            first_deadline,
            self.timeouts.first_token,
            self.timeouts.idle,
        );
        read_stream::<F>(
            &mut body,
            &content_type,
            sink,
            self.model,
            self.error_message,
        )
        .await
        .map_err(|failure| Failed::new(failure, Some(status)))
    }
}

/// Classifies an error from sending a request.
pub(crate) fn send_failure(error: reqwest::Error) -> AttemptFailure {
    if error.is_builder() {
        return AttemptFailure::InvalidRequest(describe_reqwest(error));
    }
    let timed_out = error.is_timeout();
    AttemptFailure::Connect {
        message: describe_reqwest(error),
        timed_out,
    }
}

async fn read_stream<F: StreamFold>(
    body: &mut TimedBody,
    content_type: &str,
    sink: &Forwarding<'_>,
    model: &str,
    error_message: fn(&str) -> String,
) -> Result<ChatResponse, AttemptFailure> {
    if content_type.contains("text/html") || content_type.contains("application/json") {
        // Not a stream: an HTML page from a proxy, or a JSON error object with status 200.
        let page = body.read_to_end(MAX_ERROR_BODY).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&page);
        return Err(if content_type.contains("json") {
            AttemptFailure::BadResponse(format!(
                "expected an event stream, got JSON: {}",
                error_message(&text)
            ))
        } else {
            AttemptFailure::BadResponse(format!(
                "expected an event stream, got an HTML page: {}",
                tidy(&text)
            ))
        });
    }
    fold_stream::<F>(body, sink, model).await
}

/// Reads an SSE body to its end, folding its events with `F` and forwarding text as it comes.
/// Shared by every streaming protocol (OpenAI-compatible, Anthropic, Gemini).
pub(crate) async fn fold_stream<F: StreamFold>(
    body: &mut TimedBody,
    sink: &Forwarding<'_>,
    model: &str,
) -> Result<ChatResponse, AttemptFailure> {
    let mut parser = SseParser::new();
    let mut state = F::default();
    loop {
        let chunk = match body.next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // The answer is complete and only the end marker (or usage) is missing: a server
            // that stalls or drops the connection now has still delivered the whole answer.
            Err(_) if state.is_complete() => return state.finish(model),
            Err(failure) => return Err(failure),
        };
        let events = parser
            .push(&chunk)
            .map_err(|error| AttemptFailure::BadResponse(error.to_string()))?;
        for event in events {
            body.started();
            let applied = state.apply(&event);
            if let Some(usage) = state.usage() {
                sink.report_usage(usage);
            }
            if let Some(text) = applied? {
                sink.text(&text);
            }
            if state.is_done() {
                return state.finish(model);
            }
        }
    }
    let last = parser
        .finish()
        .map_err(|error| AttemptFailure::BadResponse(error.to_string()))?;
    if let Some(event) = last {
        let applied = state.apply(&event);
        if let Some(usage) = state.usage() {
            sink.report_usage(usage);
        }
        if let Some(text) = applied? {
            sink.text(&text);
        }
    }
    state.finish(model)
}
