//! Model provider adapters. Today: [`OpenAiCompatible`] for the OpenAI chat-completions
//! protocol (OpenAI, Ollama, vLLM, llama.cpp server, LiteLLM). Adapters own timeouts and the
//! one bounded retry layer; callers never retry. [`sse`] is public because the CLI reads the
//! platform's own event streams with it.

mod body;
mod config;
mod factory;
mod failure;
mod openai;
mod retry;
pub mod sse;
mod text;

pub use config::{OpenAiConfig, RetryPolicy, Timeouts, default_http_client, http_client};
pub use factory::{ProviderKind, UnknownKind, build_provider};
pub use openai::OpenAiCompatible;
