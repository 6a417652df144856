//! The scripted replies a test (or the admin API) queues for a model. The JSON shape is the
//! contract of `POST /_fake/script`, so field names here are wire names.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One scripted answer to one chat request.
///
/// JSON: `{"type": "text", "text": "hi", "delay_ms": 50}`: the `type` tag selects a
/// [`ReplyKind`], the remaining fields of [`ReplyOptions`] sit beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(flatten)]
    pub kind: ReplyKind,
    #[serde(flatten)]
    pub options: ReplyOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyKind {
    /// A normal text answer. `chunks` sets how many stream pieces the text is cut into
    /// (default: one piece per word).
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunks: Option<usize>,
    },
    /// One or more tool calls (several = parallel calls). Ids are generated `call_<n>`.
    ToolCalls { calls: Vec<ScriptedCall> },
    /// A non-2xx HTTP answer. Without `body`, an OpenAI-style error JSON is sent.
    Error {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// A 200 stream that sends `after_chunks` text pieces and then a
    /// `data: {"error": {...}}` event. Non-streaming requests get `200 {"error": {...}}`.
    StreamError {
        after_chunks: usize,
        error: StreamErrorBody,
        /// The text the pieces are taken from (default: a fixed sentence).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// A stream that sends `after_chunks` pieces of `text`, then drops the connection without a
    /// `finish_reason` or `[DONE]`. Non-streaming requests get half a JSON body, then the drop.
    Cut { text: String, after_chunks: usize },
    /// A provider-specific failure, written the way each protocol really reports it (status
    /// and error body); see [`Failure`].
    Failure { failure: Failure },
    /// The content filter withheld the answer: a 200 answer with no text, ending with
    /// `finish_reason: content_filter` (OpenAI), `stop_reason: refusal` (Anthropic) or
    /// `finishReason: SAFETY` (Gemini).
    ContentFiltered,
}

/// Failures that each protocol reports in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The prompt exceeds the context window: OpenAI 400 `context_length_exceeded`, Anthropic
    /// 400 "prompt is too long", Gemini 400 "input token count ... exceeds the maximum number
    /// of tokens".
    ContextOverflow,
    /// No quota or credit left: OpenAI 429 `insufficient_quota`, Anthropic 400 "credit balance
    /// is too low", Gemini 429 `RESOURCE_EXHAUSTED` with quota wording (no retry delay).
    QuotaExhausted,
    /// The request was refused by the content filter: OpenAI/Azure 400 with code
    /// `content_filter`; Anthropic and Gemini answer 200 with a refusal, as for
    /// [`ReplyKind::ContentFiltered`].
    ContentFilter,
}

/// A tool call in a `tool_calls` reply. `arguments` is sent verbatim, so it may be invalid JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedCall {
    pub name: String,
    pub arguments: String,
}

/// The `error` object of a `stream_error` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamErrorBody {
    pub message: String,
    #[serde(rename = "type", default = "default_error_type")]
    pub kind: String,
}

fn default_error_type() -> String {
    "server_error".to_string()
}

/// Options any reply may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyOptions {
    /// Wait this long before the response starts (before the status line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Wait this long between stream chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
    /// Report these token counts instead of the computed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOverride>,
    /// Report no usage at all (no `usage` field, no usage chunk).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omit_usage: bool,
    /// Prompt-cache token counts, reported by the Anthropic route only
    /// (`cache_creation_input_tokens`, `cache_read_input_tokens` in `message_start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_usage: Option<CacheUsage>,
    /// Answer with a plain `chat.completion` JSON even when a stream was requested, like
    /// servers that ignore `"stream": true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_stream: bool,
    /// Put an SSE comment line (`: OPENROUTER PROCESSING`) before every event of a stream,
    /// like OpenRouter's keep-alives.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sse_comments: bool,
    /// Write stream bodies in pieces of at most this many bytes (with `chunk_delay_ms` between
    /// them), splitting events and UTF-8 sequences across network chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_chunks: Option<usize>,
}

/// Prompt-cache token counts of a reply (see [`ReplyOptions::cache_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheUsage {
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageOverride {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Reply {
    pub fn new(kind: ReplyKind) -> Self {
        Self {
            kind,
            options: ReplyOptions::default(),
        }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self::new(ReplyKind::Text {
            text: text.into(),
            chunks: None,
        })
    }

    /// A text reply streamed in exactly `chunks` pieces.
    pub fn text_in_chunks(text: impl Into<String>, chunks: usize) -> Self {
        Self::new(ReplyKind::Text {
            text: text.into(),
            chunks: Some(chunks),
        })
    }

    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::tool_calls([(name, arguments)])
    }

    /// Parallel tool calls, given as `(name, arguments)` pairs.
    pub fn tool_calls<N: Into<String>, A: Into<String>>(
        calls: impl IntoIterator<Item = (N, A)>,
    ) -> Self {
        Self::new(ReplyKind::ToolCalls {
            calls: calls
                .into_iter()
                .map(|(name, arguments)| ScriptedCall {
                    name: name.into(),
                    arguments: arguments.into(),
                })
                .collect(),
        })
    }

    pub fn error(status: u16) -> Self {
        Self::new(ReplyKind::Error {
            status,
            body: None,
            headers: BTreeMap::new(),
        })
    }

    pub fn error_with_body(status: u16, body: impl Into<String>) -> Self {
        Self::new(ReplyKind::Error {
            status,
            body: Some(body.into()),
            headers: BTreeMap::new(),
        })
    }

    pub fn stream_error(after_chunks: usize, message: impl Into<String>) -> Self {
        Self::new(ReplyKind::StreamError {
            after_chunks,
            error: StreamErrorBody {
                message: message.into(),
                kind: default_error_type(),
            },
            text: None,
        })
    }

    pub fn cut(text: impl Into<String>, after_chunks: usize) -> Self {
        Self::new(ReplyKind::Cut {
            text: text.into(),
            after_chunks,
        })
    }

    /// Adds a response header; only `error` replies send headers, others ignore it.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let ReplyKind::Error { headers, .. } = &mut self.kind {
            headers.insert(name.into(), value.into());
        }
        self
    }

    pub fn with_delay_ms(mut self, ms: u64) -> Self {
        self.options.delay_ms = Some(ms);
        self
    }

    pub fn with_chunk_delay_ms(mut self, ms: u64) -> Self {
        self.options.chunk_delay_ms = Some(ms);
        self
    }

    pub fn with_usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.options.usage = Some(UsageOverride {
            prompt_tokens,
            completion_tokens,
        });
        self
    }

    /// Reports prompt-cache writes and reads (Anthropic route only).
    pub fn with_cache_usage(mut self, creation: u64, read: u64) -> Self {
        self.options.cache_usage = Some(CacheUsage {
            cache_creation_input_tokens: creation,
            cache_read_input_tokens: read,
        });
        self
    }

    /// A `stream_error` reply whose error event has this `type` (e.g. Anthropic's
    /// `overloaded_error`); other replies are unchanged.
    pub fn with_error_type(mut self, kind: impl Into<String>) -> Self {
        if let ReplyKind::StreamError { error, .. } = &mut self.kind {
            error.kind = kind.into();
        }
        self
    }

    /// A provider-specific failure in each protocol's own words.
    pub fn failure(failure: Failure) -> Self {
        Self::new(ReplyKind::Failure { failure })
    }

    /// An answer withheld by the content filter.
    pub fn content_filtered() -> Self {
        Self::new(ReplyKind::ContentFiltered)
    }

    /// Precedes every stream event with an SSE comment line.
    pub fn with_sse_comments(mut self) -> Self {
        self.options.sse_comments = true;
        self
    }

    /// Writes the stream in pieces of at most `bytes` bytes, `chunk_delay_ms` apart.
    pub fn in_byte_chunks(mut self, bytes: usize, chunk_delay_ms: u64) -> Self {
        self.options.byte_chunks = Some(bytes.max(1));
        self.options.chunk_delay_ms = Some(chunk_delay_ms);
        self
    }

    pub fn without_usage(mut self) -> Self {
        self.options.omit_usage = true;
        self
    }

    pub fn ignoring_stream(mut self) -> Self {
        self.options.ignore_stream = true;
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Reply {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn parses_every_kind_with_options() {
        let text = parse(json!({"type": "text", "text": "hi", "chunks": 2, "delay_ms": 5}));
        assert_eq!(text, Reply::text_in_chunks("hi", 2).with_delay_ms(5));

        let calls = parse(json!({"type": "tool_calls", "calls": [
            {"name": "a", "arguments": "{\"x\":1}"},
            {"name": "b", "arguments": "{not json"}
        ]}));
        assert_eq!(
            calls,
            Reply::tool_calls([("a", "{\"x\":1}"), ("b", "{not json")])
        );

        let error = parse(json!({"type": "error", "status": 429,
            "headers": {"retry-after": "0"}, "omit_usage": true}));
        assert_eq!(
            error,
            Reply::error(429)
                .with_header("retry-after", "0")
                .without_usage()
        );

        let stream_error = parse(json!({"type": "stream_error", "after_chunks": 1,
            "error": {"message": "boom", "type": "overloaded"}}));
        let ReplyKind::StreamError { error, .. } = &stream_error.kind else {
            panic!("wrong kind: {stream_error:?}");
        };
        assert_eq!(error.kind, "overloaded");

        let failure = parse(json!({"type": "failure", "failure": "quota_exhausted"}));
        assert_eq!(failure, Reply::failure(Failure::QuotaExhausted));
        let filtered = parse(json!({"type": "content_filtered", "sse_comments": true,
            "byte_chunks": 3, "chunk_delay_ms": 1}));
        assert_eq!(
            filtered,
            Reply::content_filtered()
                .with_sse_comments()
                .in_byte_chunks(3, 1)
        );

        let cut = parse(json!({"type": "cut", "text": "a b c", "after_chunks": 2,
            "chunk_delay_ms": 3, "usage": {"prompt_tokens": 1, "completion_tokens": 2}}));
        assert_eq!(
            cut,
            Reply::cut("a b c", 2)
                .with_chunk_delay_ms(3)
                .with_usage(1, 2)
        );
    }

    #[test]
    fn round_trips_through_json() {
        let reply = Reply::error_with_body(502, "<html>bad gateway</html>")
            .with_header("content-type", "text/html")
            .with_delay_ms(10);
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["status"], 502);
        assert_eq!(json["delay_ms"], 10);
        assert_eq!(parse(json), reply);
    }

    #[test]
    fn rejects_unknown_type_and_missing_fields() {
        assert!(serde_json::from_value::<Reply>(json!({"type": "nope"})).is_err());
        assert!(serde_json::from_value::<Reply>(json!({"type": "text"})).is_err());
        assert!(serde_json::from_value::<Reply>(json!({"text": "hi"})).is_err());
    }
}
