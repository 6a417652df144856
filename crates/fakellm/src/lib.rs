//! A scripted model server speaking the OpenAI chat-completions, Anthropic Messages and Gemini
//! `generateContent` wire formats, for integration tests (in-process on port 0),
//! `agentry dev fake-llm` (offline trials) and benchmarks.
//!
//! Routes: `POST /v1/chat/completions` (streaming and not), `POST /v1/messages` (Anthropic),
//! `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent` (Gemini),
//! `POST /v1/embeddings` and `POST /v1beta/models/{model}:batchEmbedContents` (deterministic
//! vectors from a hash of each input, see [`embedding_vector`]), `GET /v1/models`, and the
//! admin routes `POST /_fake/script {"model", "replies"}`,
//! `DELETE /_fake/script`, `GET /_fake/requests` and `DELETE /_fake/requests`. The same scripts
//! and behaviours answer on every protocol route, each in its own wire format.
//!
//! Each chat request consumes the next [`Reply`] queued for its model (then for
//! [`ANY_MODEL`]); with none queued, a built-in behaviour chosen by the model name answers,
//! computed only from the request's messages:
//! - `tool-loop-N`: calls `calculator` with `{"expression":"k+k"}` (k = tool results so far + 1)
//!   until the conversation has N tool results, then answers `done after N tool calls`;
//! - any other name (`echo`): calls `calculator` with the arithmetic expression of the last user
//!   message when that tool is offered and not yet answered, answers `The answer is <result>.`
//!   after a tool result, and `You said: <last user message>` otherwise.
//!
//! Besides text and tool calls, scripts can fail the way providers do: HTTP errors with
//! headers (`retry-after`, `retry-after-ms`), error events inside a 200 stream, cut streams,
//! provider-specific [`Failure`]s (context overflow, exhausted quota, content-filter refusal)
//! written in each protocol's own words, and content-filtered answers. Stream pacing options
//! add SSE comment lines (OpenRouter's keep-alives) or split the body into tiny byte chunks
//! (UTF-8 sequences across network reads).
//!
//! Model names take modifiers: `echo+latency=200+chunk_delay=20` delays the response start by
//! 200 ms and each stream chunk by 20 ms (scripted replies' own delays take precedence).
//!
//! Usage is deterministic unless overridden: prompt tokens = ceil(chars of all message texts
//! and tool-call arguments / 4) + 1, completion tokens = output chars / 4 + 1. Non-streaming
//! answers always carry it; streams send it only with `stream_options.include_usage`.
//!
//! A server started with [`start`] runs until [`FakeLlmHandle::shutdown`] or until its Tokio
//! runtime ends; dropping the handle does not stop it.

mod anthropic;
mod behaviour;
mod embeddings;
mod gemini;
mod plan;
mod render;
mod reply;
mod request;
mod routes;
mod server;
mod state;
mod wire;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use embeddings::embedding_vector;
pub use reply::{
    CacheUsage, Failure, Reply, ReplyKind, ReplyOptions, ScriptedCall, StreamErrorBody,
    UsageOverride,
};
pub use routes::router;
pub use server::{FakeLlmHandle, start, start_with};
pub use state::{ANY_MODEL, DEFAULT_REQUEST_LOG_LIMIT, FakeLlm, RecordedRequest};
