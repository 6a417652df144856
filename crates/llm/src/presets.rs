//! Known providers: a name, the wire protocol it speaks and its default base URL, so a user
//! picks "groq" instead of looking up an endpoint. Base URLs are in the shape each adapter
//! expects: OpenAI-compatible ones include the version (`/v1`, `/chat/completions` is
//! appended); Anthropic and Gemini are the API roots (the adapters add `/v1/messages` and
//! `/v1beta/models/...`).

use crate::factory::ProviderKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub kind: ProviderKind,
    pub base_url: &'static str,
    /// One line for UIs and docs.
    pub notes: &'static str,
}

const fn openai(name: &'static str, base_url: &'static str, notes: &'static str) -> Preset {
    Preset {
        name,
        kind: ProviderKind::OpenAi,
        base_url,
        notes,
    }
}

static PRESETS: &[Preset] = &[
    openai("openai", "https://api.openai.com/v1", "OpenAI platform."),
    openai(
        "groq",
        "https://api.groq.com/openai/v1",
        "Groq (OpenAI-compatible).",
    ),
    openai(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DeepSeek (OpenAI-compatible).",
    ),
    openai(
        "xai",
        "https://api.x.ai/v1",
        "xAI Grok (OpenAI-compatible).",
    ),
    openai(
        "mistral",
        "https://api.mistral.ai/v1",
        "Mistral La Plateforme (OpenAI-compatible).",
    ),
    openai(
        "together",
        "https://api.together.xyz/v1",
        "Together AI (OpenAI-compatible).",
    ),
    openai(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OpenRouter: many vendors' models behind one key; streams carry `: OPENROUTER PROCESSING` keep-alive comments.",
    ),
    openai(
        "ollama",
        "http://127.0.0.1:11434/v1",
        "Local Ollama server; no API key.",
    ),
    openai(
        "vllm",
        "http://127.0.0.1:8000/v1",
        "Local vLLM OpenAI-compatible server.",
    ),
    openai(
        "llamacpp",
        "http://127.0.0.1:8080/v1",
        "Local llama.cpp server (llama-server).",
    ),
    openai("litellm", "http://127.0.0.1:4000/v1", "LiteLLM proxy."),
    Preset {
        name: "anthropic",
        kind: ProviderKind::Anthropic,
        base_url: "https://api.anthropic.com",
        notes: "Anthropic Messages API; key sent as x-api-key.",
    },
    Preset {
        name: "gemini",
        kind: ProviderKind::Gemini,
        base_url: "https://generativelanguage.googleapis.com",
        notes: "Google Gemini API; key sent as x-goog-api-key.",
    },
];

/// Every preset, in a stable order.
pub fn presets() -> &'static [Preset] {
    PRESETS
}

/// The preset called `name` (exact, lowercase).
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|preset| preset.name == name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Anthropic, Gemini, OpenAiConfig, build_provider};
    use std::collections::HashSet;

    #[test]
    fn looks_up_presets() {
        let groq = preset("groq").unwrap();
        assert_eq!(groq.kind, ProviderKind::OpenAi);
        assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
        assert_eq!(preset("anthropic").unwrap().kind, ProviderKind::Anthropic);
        assert_eq!(preset("gemini").unwrap().kind, ProviderKind::Gemini);
        assert_eq!(
            preset("ollama").unwrap().base_url,
            "http://127.0.0.1:11434/v1"
        );
        assert!(preset("Groq").is_none());
        assert!(preset("cohere").is_none());
        assert_eq!(presets().len(), 13);
    }

    #[test]
    fn names_are_unique_and_urls_match_their_adapters() {
        let names: HashSet<&str> = presets().iter().map(|p| p.name).collect();
        assert_eq!(names.len(), presets().len());
        for preset in presets() {
            assert!(
                preset.base_url.starts_with("https://")
                    || preset.base_url.starts_with("http://127.0.0.1:"),
                "{}",
                preset.name
            );
            assert!(!preset.base_url.ends_with('/'), "{}", preset.name);
            match preset.kind {
                ProviderKind::OpenAi => {
                    assert!(preset.base_url.ends_with("/v1"), "{}", preset.name)
                }
                // The roots, without a version: the adapters append it.
                _ => assert!(!preset.base_url.contains("/v1"), "{}", preset.name),
            }
            let client = reqwest::Client::new();
            let config = OpenAiConfig::new(preset.base_url);
            assert!(build_provider(preset.kind.as_str(), config, client).is_ok());
        }
        // The adapters build the real endpoints from these roots.
        let client = reqwest::Client::new();
        let anthropic = Anthropic::new(
            OpenAiConfig::new(preset("anthropic").unwrap().base_url),
            client.clone(),
        );
        assert!(format!("{anthropic:?}").contains("https://api.anthropic.com/v1/messages"));
        let gemini = Gemini::new(
            OpenAiConfig::new(preset("gemini").unwrap().base_url),
            client,
        );
        assert!(
            format!("{gemini:?}").contains("root: \"https://generativelanguage.googleapis.com\"")
        );
    }
}
