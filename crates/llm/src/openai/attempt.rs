//! One HTTP attempt against a chat-completions endpoint: send, classify the status, then read
//! either the SSE stream or a JSON completion.

use super::stream::StreamState;
use super::{completion, wire};
use crate::body::{TimedBody, read_error_body};
use crate::config::Timeouts;
use crate::failure::{AttemptFailure, Failed, describe_reqwest};
use crate::retry::{self, Attempt, Forwarding};
use crate::text::tidy;
use agentry_core::chat::ChatResponse;
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use std::time::Duration;
use tokio::time::Instant;

/// Error bodies only feed a message; more is never needed.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// A JSON completion larger than this is not a plausible answer.
const MAX_JSON_BODY: usize = 32 * 1024 * 1024;
/// How long an error body may take to arrive.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(5);

pub(super) struct OpenAiAttempt<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) endpoint: &'a str,
    pub(super) api_key: Option<&'a str>,
    pub(super) timeouts: &'a Timeouts,
    pub(super) body: Bytes,
    pub(super) model: &'a str,
}

#[async_trait::async_trait]
impl Attempt for OpenAiAttempt<'_> {
    type Output = ChatResponse;

    async fn run(&self, sink: &Forwarding<'_>) -> Result<ChatResponse, Failed> {
        let first_deadline = Instant::now() + self.timeouts.first_token;
        let mut request = self
            .client
            .post(self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream, application/json")
            .body(self.body.clone());
        if let Some(key) = self.api_key {
            // reqwest marks this header sensitive, keeping it out of its own debug output.
            request = request.bearer_auth(key);
        }
        let response = match tokio::time::timeout_at(first_deadline, request.send()).await {
            Err(_) => {
                let failure = AttemptFailure::FirstTokenTimeout(self.timeouts.first_token);
                return Err(Failed::new(failure, None));
            }
            Ok(Err(error)) => return Err(Failed::new(send_failure(error), None)),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let retry_after = retry::retry_after(response.headers(), chrono::Utc::now());
            let body = read_error_body(response, MAX_ERROR_BODY, ERROR_BODY_WAIT).await;
            let message = wire::error_message(&body);
            let failure = AttemptFailure::status(status, &body, message, retry_after);
            return Err(Failed::new(failure, Some(status)));
        }
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
        read_answer(&mut body, &content_type, sink, self.model)
            .await
            .map_err(|failure| Failed::new(failure, Some(status)))
    }
}

fn send_failure(error: reqwest::Error) -> AttemptFailure {
    if error.is_builder() {
        return AttemptFailure::InvalidRequest(describe_reqwest(error));
    }
    let timed_out = error.is_timeout();
    AttemptFailure::Connect {
        message: describe_reqwest(error),
        timed_out,
    }
}

/// Reads a 2xx body. The format is sniffed from the first bytes rather than trusted from
/// `Content-Type`, because some servers label streams `application/json` or `text/plain`.
async fn read_answer(
    body: &mut TimedBody,
    content_type: &str,
    sink: &Forwarding<'_>,
    model: &str,
) -> Result<ChatResponse, AttemptFailure> {
    if content_type.contains("text/html") {
        let page = body.read_to_end(MAX_ERROR_BODY).await.unwrap_or_default();
        return Err(AttemptFailure::BadResponse(format!(
            "expected an event stream or JSON, got an HTML page: {}",
            tidy(&String::from_utf8_lossy(&page))
        )));
    }
    let first = loop {
        match body.next().await? {
            None => {
                return Err(AttemptFailure::Interrupted(
                    "the answer had an empty body".to_string(),
                ));
            }
            Some(chunk) => {
                if let Some(byte) = chunk.iter().find(|byte| !byte.is_ascii_whitespace()) {
                    let byte = *byte;
                    body.unread(chunk);
                    break byte;
                }
            }
        }
    };
    if first == b'{' {
        let bytes = body.read_to_end(MAX_JSON_BODY).await?;
        let response = completion::parse(&bytes, model)?;
        if let Some(content) = &response.content {
            sink.text(content);
        }
        return Ok(response);
    }
    read_stream(body, sink, model).await
}

async fn read_stream(
    body: &mut TimedBody,
    sink: &Forwarding<'_>,
    model: &str,
) -> Result<ChatResponse, AttemptFailure> {
    crate::streaming::fold_stream::<StreamState>(body, sink, model).await
}
