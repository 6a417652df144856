//! The OpenAI chat-completions adapter. One wire protocol serves OpenAI, Ollama, vLLM,
//! llama.cpp server, LiteLLM and other compatible servers.

pub(crate) mod assemble;
mod attempt;
mod completion;
mod request;
mod stream;
pub(crate) mod wire;

use crate::config::OpenAiConfig;
use crate::retry;
use agentry_core::ErrorCode;
use agentry_core::chat::{ChatModel, ChatRequest, ChatResponse, DeltaSink, ProviderError};
use attempt::OpenAiAttempt;

/// A [`ChatModel`] speaking the OpenAI chat-completions protocol. Always requests a stream
/// (with usage), and also accepts a plain JSON answer from servers that ignore `stream`.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    client: reqwest::Client,
    config: OpenAiConfig,
    endpoint: String,
}

impl OpenAiCompatible {
    /// `client` should be shared across providers so connections are pooled; see
    /// [`crate::default_http_client`].
    pub fn new(config: OpenAiConfig, client: reqwest::Client) -> Self {
        let endpoint = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Self {
            client,
            config,
            endpoint,
        }
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl ChatModel for OpenAiCompatible {
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
        let attempt = OpenAiAttempt {
            client: &self.client,
            endpoint: &self.endpoint,
            api_key: self.config.key(),
            timeouts: &self.config.timeouts,
            body: body.into(),
            model: &request.model,
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
