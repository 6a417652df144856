//! Writes a [`Plan`] as an HTTP response: a JSON completion or an SSE stream, with the planned
//! delays, and with a dropped connection for `cut` replies.

use crate::plan::{Completion, Pacing, Plan, PlanBody};
use crate::reply::Failure;
use crate::wire::{self, Meta};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// What one request asked for, as far as rendering cares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
}

/// How long a `cut` waits before dropping the connection.
const ABORT_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// One piece of a response body.
pub(crate) enum Frame {
    Data(Bytes),
    /// Fail the body stream: hyper then closes the connection without finishing the response,
    /// which is what a crashed or cut-off upstream looks like to a client.
    Abort,
}

pub(crate) async fn render(plan: Plan, meta: Meta, mode: Mode) -> Response {
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    match plan.body {
        PlanBody::Error {
            status,
            body,
            headers,
        } => error_response(status, body, &headers, openai_error_body),
        PlanBody::Complete(completion) if mode.stream => {
            let frames = completion_frames(&meta, &completion, mode.include_usage);
            sse_response(frames, plan.pacing)
        }
        PlanBody::Complete(completion) => {
            json_response(StatusCode::OK, &wire::completion(&meta, &completion))
        }
        PlanBody::Failure(failure) => openai_failure(failure),
        PlanBody::StreamError { pieces, error, .. } if mode.stream => {
            let mut frames = text_frames(&meta, &pieces, mode.include_usage);
            let event =
                serde_json::json!({"error": {"message": error.message, "type": error.kind}});
            frames.push_back(data_frame(&event));
            sse_response(frames, plan.pacing)
        }
        PlanBody::StreamError { error, .. } => json_response(
            StatusCode::OK,
            &wire::error_body(&error.message, &error.kind, None),
        ),
        PlanBody::Cut { pieces, .. } if mode.stream => {
            let mut frames = text_frames(&meta, &pieces, mode.include_usage);
            frames.push_back(Frame::Abort);
            sse_response(frames, plan.pacing)
        }
        PlanBody::Cut { text, .. } => {
            let full = wire::completion(
                &meta,
                &Completion {
                    text: Some(text),
                    pieces: Vec::new(),
                    calls: Vec::new(),
                    finish_reason: "stop",
                    usage: None,
                    cache: None,
                },
            )
            .to_string();
            let half: String = full.chars().take(full.chars().count() / 2).collect();
            let frames = VecDeque::from([Frame::Data(Bytes::from(half)), Frame::Abort]);
            streamed_response("application/json", frames, Pacing::default())
        }
    }
}

fn data_frame(value: &serde_json::Value) -> Frame {
    Frame::Data(Bytes::from(wire::sse_data(value)))
}

/// The role chunk followed by one chunk per text piece.
fn text_frames(meta: &Meta, pieces: &[String], include_usage: bool) -> VecDeque<Frame> {
    let mut frames = VecDeque::with_capacity(pieces.len() + 3);
    frames.push_back(data_frame(&wire::chunk(
        meta,
        wire::role_delta(true),
        None,
        include_usage,
    )));
    for piece in pieces {
        frames.push_back(data_frame(&wire::chunk(
            meta,
            wire::content_delta(piece),
            None,
            include_usage,
        )));
    }
    frames
}

fn completion_frames(meta: &Meta, completion: &Completion, include_usage: bool) -> VecDeque<Frame> {
    let mut frames = if completion.calls.is_empty() {
        text_frames(meta, &completion.pieces, include_usage)
    } else {
        let mut frames = VecDeque::new();
        frames.push_back(data_frame(&wire::chunk(
            meta,
            wire::role_delta(false),
            None,
            include_usage,
        )));
        for (index, call) in completion.calls.iter().enumerate() {
            frames.push_back(data_frame(&wire::chunk(
                meta,
                wire::call_start_delta(index, call),
                None,
                include_usage,
            )));
            for fragment in &call.fragments {
                frames.push_back(data_frame(&wire::chunk(
                    meta,
                    wire::call_arguments_delta(index, fragment),
                    None,
                    include_usage,
                )));
            }
        }
        frames
    };
    frames.push_back(data_frame(&wire::chunk(
        meta,
        serde_json::json!({}),
        Some(completion.finish_reason),
        include_usage,
    )));
    if include_usage && let Some((prompt, output)) = completion.usage {
        frames.push_back(data_frame(&wire::usage_chunk(meta, prompt, output)));
    }
    frames.push_back(Frame::Data(Bytes::from_static(wire::SSE_DONE.as_bytes())));
    frames
}

/// The comment line OpenRouter sends while a request waits upstream.
pub(crate) const SSE_COMMENT: &[u8] = b": OPENROUTER PROCESSING\n\n";

pub(crate) fn sse_response(frames: VecDeque<Frame>, pacing: Pacing) -> Response {
    let frames = if pacing.sse_comments {
        frames
            .into_iter()
            .flat_map(|frame| match frame {
                Frame::Data(bytes) => vec![
                    Frame::Data(Bytes::from_static(SSE_COMMENT)),
                    Frame::Data(bytes),
                ],
                Frame::Abort => vec![Frame::Abort],
            })
            .collect()
    } else {
        frames
    };
    streamed_response("text/event-stream", frames, pacing)
}

/// Cuts data frames into pieces of at most `size` bytes (ignoring UTF-8 boundaries on purpose).
fn rechunk(frames: VecDeque<Frame>, size: usize) -> VecDeque<Frame> {
    let mut out = VecDeque::new();
    for frame in frames {
        match frame {
            Frame::Data(bytes) => {
                let mut offset = 0;
                while offset < bytes.len() {
                    let end = (offset + size).min(bytes.len());
                    out.push_back(Frame::Data(bytes.slice(offset..end)));
                    offset = end;
                }
            }
            Frame::Abort => out.push_back(Frame::Abort),
        }
    }
    out
}

pub(crate) fn streamed_response(
    content_type: &str,
    frames: VecDeque<Frame>,
    pacing: Pacing,
) -> Response {
    let chunk_delay = pacing.chunk_delay;
    let frames = match pacing.byte_chunks {
        Some(size) => rechunk(frames, size),
        None => frames,
    };
    // With no pacing and no scripted cut, send the whole stream in one write: a real provider's
    // network coalesces too, and the benchmark should not measure the fake's write pattern.
    if chunk_delay.is_zero() && frames.iter().all(|f| matches!(f, Frame::Data(_))) {
        let mut body = Vec::new();
        for frame in &frames {
            if let Frame::Data(bytes) = frame {
                body.extend_from_slice(bytes);
            }
        }
        return (
            [(axum::http::header::CONTENT_TYPE, content_type.to_string())],
            body,
        )
            .into_response();
    }
    let body =
        futures_util::stream::unfold((frames, true), move |(mut frames, first)| async move {
            let frame = frames.pop_front()?;
            if !first && !chunk_delay.is_zero() {
                tokio::time::sleep(chunk_delay).await;
            }
            let item = match frame {
                Frame::Data(bytes) => Ok(bytes),
                Frame::Abort => {
                    // hyper writes buffered chunks out only while the body is pending; failing
                    // at once would discard the chunks the script promised before the cut.
                    tokio::time::sleep(ABORT_FLUSH_PAUSE).await;
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "fake-llm: scripted cut",
                    ))
                }
            };
            Some((item, (frames, false)))
        });
    let mut response = Body::from_stream(body).into_response();
    set_header(&mut response, header::CONTENT_TYPE, content_type);
    set_header(&mut response, header::CACHE_CONTROL, "no-cache");
    response
}

pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    set_header(&mut response, header::CONTENT_TYPE, "application/json");
    response
}

/// The body of a scripted error without an explicit body, in OpenAI's format.
fn openai_error_body(status: StatusCode) -> serde_json::Value {
    let reason = status.canonical_reason().unwrap_or("error");
    wire::error_body(
        &format!("fake-llm scripted error: {} {reason}", status.as_u16()),
        error_type(status),
        None,
    )
}

/// A scripted error answer; `default_body` writes the protocol's error JSON when the script
/// gives no body.
pub(crate) fn error_response(
    status: u16,
    body: Option<String>,
    headers: &BTreeMap<String, String>,
    default_body: fn(StatusCode) -> serde_json::Value,
) -> Response {
    let Ok(status) = StatusCode::from_u16(status) else {
        let message = format!("fake-llm: scripted status {status} is not a valid HTTP status");
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &wire::error_body(&message, "invalid_script", None),
        );
    };
    let (body, content_type) = match body {
        Some(body) => {
            let content_type = match body.trim_start().chars().next() {
                Some('{') | Some('[') => "application/json",
                Some('<') => "text/html; charset=utf-8",
                _ => "text/plain; charset=utf-8",
            };
            (body, content_type)
        }
        None => (default_body(status).to_string(), "application/json"),
    };
    let mut response = (status, body).into_response();
    set_header(&mut response, header::CONTENT_TYPE, content_type);
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().insert(name, value);
            }
            _ => tracing::warn!(header = %name, "fake-llm: skipping invalid scripted header"),
        }
    }
    response
}

/// A provider failure in OpenAI's words. A content-filter refusal is Azure's 400 with code
/// `content_filter`.
fn openai_failure(failure: Failure) -> Response {
    let (status, body) = match failure {
        Failure::ContextOverflow => (
            StatusCode::BAD_REQUEST,
            json!({"error": {
                "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        ),
        Failure::QuotaExhausted => (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        ),
        Failure::ContentFilter => (
            StatusCode::BAD_REQUEST,
            json!({"error": {
                "message": "The response was filtered due to the prompt triggering the content management policy.",
                "type": null, "param": "prompt", "code": "content_filter", "status": 400}}),
        ),
    };
    json_response(status, &body)
}

/// The OpenAI error `type` that goes with a status, so clients that branch on it see the usual.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "invalid_api_key",
        403 => "permission_denied",
        404 => "not_found_error",
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn set_header(response: &mut Response, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
