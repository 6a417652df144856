//! Model provider adapters: [`OpenAiCompatible`] for the OpenAI chat-completions protocol
//! (OpenAI, Ollama, vLLM, llama.cpp server, LiteLLM) [`Anthropic`] for the Messages API
//! and [`Gemini`] for Google's `generateContent`; embeddings through [`build_embedder`].
//! Adapters own timeouts and the one bounded retry layer; callers never retry.
//! [`CircuitBreakers`] is the pure bookkeeping the engine wraps around calls; [`presets()`] lists
//! known providers. [`sse`] is public because the CLI reads the platform's own event streams
//! with it.

mod anthropic;
mod body;
mod breaker;
mod config;
mod embedding;
mod factory;
mod failure;
mod gemini;
mod openai;
mod presets;
mod retry;
pub mod sse;
mod streaming;
mod text;

pub use anthropic::{ANTHROPIC_VERSION, Anthropic};
pub use breaker::{
    BreakerConfig, BreakerOpen, BreakerState, CallOutcome, CircuitBreakers, CircuitState, Permit,
    outcome_of,
};
pub use config::{OpenAiConfig, RetryPolicy, Timeouts, default_http_client, http_client};
pub use embedding::{GeminiEmbeddings, OpenAiEmbeddings};
pub use factory::{EmbedderError, ProviderKind, UnknownKind, build_embedder, build_provider};
pub use gemini::Gemini;
pub use openai::OpenAiCompatible;
pub use presets::{Preset, preset, presets};
