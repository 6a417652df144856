//! Choosing an adapter by provider kind. Each kind is a wire protocol; adding one means a
//! variant here and an adapter module beside `openai`, `anthropic` and `gemini`.

use crate::anthropic::Anthropic;
use crate::config::OpenAiConfig;
use crate::embedding::{GeminiEmbeddings, OpenAiEmbeddings};
use crate::gemini::Gemini;
use crate::openai::OpenAiCompatible;
use agentry_core::chat::ChatModel;
use agentry_core::embedding::EmbeddingModel;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A supported provider protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI chat completions (also Ollama, vLLM, llama.cpp server, LiteLLM, ...).
    OpenAi,
    /// The Anthropic Messages API.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl ProviderKind {
    pub const ALL: &'static [ProviderKind] = &[
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = UnknownKind;

    fn from_str(kind: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .iter()
            .copied()
            .find(|known| known.as_str() == kind)
            .ok_or_else(|| UnknownKind {
                kind: kind.to_string(),
            })
    }
}

/// A provider kind this build does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider kind `{kind}` (known: {})", known_kinds())]
pub struct UnknownKind {
    pub kind: String,
}

fn known_kinds() -> String {
    ProviderKind::ALL
        .iter()
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the adapter for `kind` (`"openai"`, `"anthropic"`, `"gemini"`).
pub fn build_provider(
    kind: &str,
    config: OpenAiConfig,
    client: reqwest::Client,
) -> Result<Arc<dyn ChatModel>, UnknownKind> {
    match kind.parse::<ProviderKind>()? {
        ProviderKind::OpenAi => Ok(Arc::new(OpenAiCompatible::new(config, client))),
        ProviderKind::Anthropic => Ok(Arc::new(Anthropic::new(config, client))),
        ProviderKind::Gemini => Ok(Arc::new(Gemini::new(config, client))),
    }
}

/// Why no embedding adapter could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedderError {
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    #[error("provider kind `{0}` has no embeddings API")]
    Unsupported(ProviderKind),
}

/// Builds the embedding adapter for `kind` (`"openai"`, `"gemini"`; Anthropic offers none).
pub fn build_embedder(
    kind: &str,
    config: OpenAiConfig,
    client: reqwest::Client,
) -> Result<Arc<dyn EmbeddingModel>, EmbedderError> {
    match kind.parse::<ProviderKind>()? {
        ProviderKind::OpenAi => Ok(Arc::new(OpenAiEmbeddings::new(config, client))),
        ProviderKind::Gemini => Ok(Arc::new(GeminiEmbeddings::new(config, client))),
        kind @ ProviderKind::Anthropic => Err(EmbedderError::Unsupported(kind)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builds_known_kinds_and_names_the_known_ones() {
        let client = reqwest::Client::new();
        assert!(build_provider("openai", OpenAiConfig::new("http://x/v1"), client.clone()).is_ok());
        assert!(build_provider("anthropic", OpenAiConfig::new("http://x"), client.clone()).is_ok());
        let error = build_provider("cohere", OpenAiConfig::default(), client)
            .err()
            .unwrap();
        assert_eq!(error.kind, "cohere");
        assert_eq!(
            error.to_string(),
            "unknown provider kind `cohere` (known: openai, anthropic, gemini)"
        );
        assert_eq!("openai".parse::<ProviderKind>(), Ok(ProviderKind::OpenAi));
        assert!(
            build_provider(
                "gemini",
                OpenAiConfig::new("http://x"),
                reqwest::Client::new()
            )
            .is_ok()
        );
        assert_eq!(
            "anthropic".parse::<ProviderKind>(),
            Ok(ProviderKind::Anthropic)
        );
    }

    #[test]
    fn builds_embedders_where_the_protocol_has_them() {
        let client = reqwest::Client::new();
        assert!(build_embedder("openai", OpenAiConfig::new("http://x/v1"), client.clone()).is_ok());
        assert!(build_embedder("gemini", OpenAiConfig::new("http://x"), client.clone()).is_ok());
        let error = build_embedder("anthropic", OpenAiConfig::new("http://x"), client.clone())
            .err()
            .unwrap();
        assert_eq!(error, EmbedderError::Unsupported(ProviderKind::Anthropic));
        assert_eq!(
            error.to_string(),
            "provider kind `anthropic` has no embeddings API"
        );
        let error = build_embedder("cohere", OpenAiConfig::default(), client)
            .err()
            .unwrap();
        assert!(matches!(error, EmbedderError::UnknownKind(_)));
    }
}
