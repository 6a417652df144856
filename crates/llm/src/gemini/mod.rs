//! The Google Gemini adapter
//! (`POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse`).
//!
//! Configured with the same [`OpenAiConfig`] as the other adapters: `base_url` is the API root
//! (`https://generativelanguage.googleapis.com`; a trailing `/v1beta` is accepted too) and the
//! key is sent as `x-goog-api-key`. Retries, timeouts and failure classes are the crate's
//! shared ones.

mod request;
mod stream;

pub(crate) use stream::error_message;

use crate::config::OpenAiConfig;
use crate::retry;
use crate::streaming::{SseAttempt, headers};
use agentry_core::ErrorCode;
use agentry_core::chat::{ChatModel, ChatRequest, ChatResponse, DeltaSink, ProviderError};
use reqwest::header::HeaderMap;
use std::marker::PhantomData;
use stream::GeminiStream;

/// The API root (without a `/v1beta` the user may have included) and the key header, shared by
/// the chat and embedding clients.
pub(crate) fn connection(config: &OpenAiConfig) -> (String, Result<HeaderMap, String>) {
    let root = config.base_url.trim_end_matches('/');
    let root = root.strip_suffix("/v1beta").unwrap_or(root).to_string();
    let headers = headers(&[], config.key().map(|key| ("x-goog-api-key", key)));
    (root, headers)
}

/// A [`ChatModel`] speaking the Gemini `generateContent` API.
#[derive(Debug, Clone)]
pub struct Gemini {
    client: reqwest::Client,
    config: OpenAiConfig,
    root: String,
    headers: Result<HeaderMap, String>,
}

impl Gemini {
    /// `client` should be shared across providers so connections are pooled; see
    /// [`crate::default_http_client`].
    pub fn new(config: OpenAiConfig, client: reqwest::Client) -> Self {
        let (root, headers) = connection(&config);
        Self {
            client,
            config,
            root,
            headers,
        }
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    fn endpoint(&self, model: &str) -> String {
        // A model name is one path segment; `/`, `?` and `#` would change the URL's meaning.
        let model: String = model
            .trim()
            .trim_start_matches("models/")
            .chars()
            .filter(|c| !matches!(c, '/' | '?' | '#'))
            .collect();
        format!(
            "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
            self.root
        )
    }
}

#[async_trait::async_trait]
impl ChatModel for Gemini {
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
        let endpoint = self.endpoint(&request.model);
        let attempt = SseAttempt::<GeminiStream> {
            client: &self.client,
            endpoint: &endpoint,
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
    fn endpoint_from_root_and_model() {
        for base in [
            "https://generativelanguage.googleapis.com",
            "https://generativelanguage.googleapis.com/v1beta/",
        ] {
            let adapter = Gemini::new(OpenAiConfig::new(base), reqwest::Client::new());
            assert_eq!(
                adapter.endpoint("gemini-2.5-flash"),
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            );
            assert_eq!(
                adapter.endpoint("models/x/../y?z"),
                "https://generativelanguage.googleapis.com/v1beta/models/x..yz:streamGenerateContent?alt=sse"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let config = OpenAiConfig::new("http://x").with_api_key("AIza-secret");
        let adapter = Gemini::new(config, reqwest::Client::new());
        assert!(!format!("{adapter:?}").contains("AIza-secret"));
    }
}
