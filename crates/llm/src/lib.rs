//! Model provider adapters: [`OpenAiCompatible`] for the OpenAI chat-completions protocol
//! (OpenAI, Ollama, vLLM, llama.cpp server, LiteLLM) [`Anthropic`] for the Messages API
//! and [`Gemini`] for Google's `generateContent`. Adapters own timeouts and the
//! one bounded retry layer; callers never retry. [`sse`] is public because the CLI reads the
//! platform's own event streams with it.

mod anthropic;
mod body;
mod config;
mod factory;
mod failure;
mod gemini;
mod openai;
mod retry;
pub mod sse;
mod streaming;
mod text;

pub use anthropic::{ANTHROPIC_VERSION, Anthropic};
pub use config::{OpenAiConfig, RetryPolicy, Timeouts, default_http_client, http_client};
pub use factory::{ProviderKind, UnknownKind, build_provider};
pub use gemini::Gemini;
pub use openai::OpenAiCompatible;
