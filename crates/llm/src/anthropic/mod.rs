//! The Anthropic Messages API adapter (`POST {base_url}/v1/messages`, always streaming).
//!
//! Configured with the same [`OpenAiConfig`] as the other adapters: `base_url` is the API root
//! (`https://api.anthropic.com`; a trailing `/v1` is accepted too) and the key is sent as
//! `x-api-key`. Retries, timeouts and failure classes are the crate's shared ones; an
//! `overloaded_error` event inside a 200 stream is a retryable provider error until text has
//! reached the sink.

mod request;
mod stream;

use crate::config::OpenAiConfig;
use crate::retry;
use crate::streaming::{SseAttempt, headers};
use agentry_core::ErrorCode;
use agentry_core::chat::{ChatModel, ChatRequest, ChatResponse, DeltaSink, ProviderError};
use reqwest::header::HeaderMap;
use std::marker::PhantomData;
use stream::AnthropicStream;

/// The API version this adapter speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A [`ChatModel`] speaking the Anthropic Messages API.
#[derive(Debug, Clone)]
pub struct Anthropic {
    client: reqwest::Client,
    config: OpenAiConfig,
    endpoint: String,
    headers: Result<HeaderMap, String>,
}

impl Anthropic {
    /// `client` should be shared across providers so connections are pooled; see
    /// [`crate::default_http_client`].
    pub fn new(config: OpenAiConfig, client: reqwest::Client) -> Self {
        let root = config.base_url.trim_end_matches('/');
        let root = root.strip_suffix("/v1").unwrap_or(root);
        let endpoint = format!("{root}/v1/messages");
        let headers = headers(
            &[("anthropic-version", ANTHROPIC_VERSION)],
            config.key().map(|key| ("x-api-key", key)),
        );
        Self {
            client,
            config,
            endpoint,
            headers,
        }
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl ChatModel for Anthropic {
    async fn chat(
        &self,
        request: &ChatRequest,
        sink: &dyn DeltaSink,
    ) -> Result<ChatResponse, ProviderError> {
        let body = request::encode(request).map_err(|error| {
            ProviderError::new(
                ErrorCode::ProviderRejected,
                format!("could not encode the request: {error}"),
            )
        })?;
        let attempt = SseAttempt::<AnthropicStream> {
            client: &self.client,
            endpoint: &self.endpoint,
            headers: &self.headers,
            timeouts: &self.config.timeouts,
            body: body.into(),
            model: &request.model,
            error_message: stream::error_message,
            fold: PhantomData,
        };
        retry::run(
            &self.config.retry,
            &self.config.timeouts,
            self.config.key(),
            sink,
            &attempt,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_roots_with_or_without_version() {
        for base in [
            "https://api.anthropic.com",
            "https://api.anthropic.com/",
            "https://api.anthropic.com/v1",
        ] {
            let adapter = Anthropic::new(OpenAiConfig::new(base), reqwest::Client::new());
            assert_eq!(adapter.endpoint, "https://api.anthropic.com/v1/messages");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let config = OpenAiConfig::new("http://x").with_api_key("sk-ant-secret");
        let adapter = Anthropic::new(config, reqwest::Client::new());
        let debug = format!("{adapter:?}");
        assert!(!debug.contains("sk-ant-secret"), "{debug}");
    }
}
