//! Adapter configuration: endpoint, credentials, timeouts and the retry policy. The fields are
//! protocol-neutral, so future adapters (Anthropic, Gemini) take the same struct.

use std::fmt;
use std::time::Duration;

#[derive(Clone, Default)]
pub struct OpenAiConfig {
    /// The API root including the version, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set and non-empty.
    pub api_key: Option<String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl OpenAiConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            ..Self::default()
        }
    }

    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The key, if one is configured and non-empty.
    pub(crate) fn key(&self) -> Option<&str> {
        self.api_key.as_deref().filter(|key| !key.is_empty())
    }
}

/// Hand-written so the API key can never reach a log line through `{:?}`.
impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.key().map(|_| "[redacted]"))
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP/TLS connect. Applied by the HTTP client ([`http_client`]), since reqwest sets it per
    /// client, not per request.
    pub connect: Duration,
    /// From sending the request to the first streamed event (or the first body bytes of a JSON
    /// answer). Generous by default: local servers may load the model first.
    pub first_token: Duration,
    /// Longest silence between chunks once the stream has started.
    pub idle: Duration,
    /// The whole call, retries and backoff included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` HTTP attempts).
    pub max_retries: u32,
    /// The backoff cap of the first retry; it doubles per retry up to `max_delay`, and the
    /// actual wait is uniformly random below the cap ("full jitter").
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry-after` hint honoured; a longer hint ends the retries at once, because
    /// waiting minutes inside one model call helps nobody.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A client for model providers with the default connect timeout. Share one per process so
/// connections are pooled.
pub fn default_http_client() -> reqwest::Client {
    http_client(Timeouts::default().connect, None)
}

/// A client for model providers with the given connect timeout.
pub fn http_client(
    connect_timeout: Duration,
    resolver: Option<std::sync::Arc<dyn reqwest::dns::Resolve>>,
) -> reqwest::Client {
    // The SSRF guard's resolver: provider base URLs are user-chosen, so every address a name
    // resolves to is checked; a proxy would bypass it. Kept on the fallback client too.
    let guarded = |builder: reqwest::ClientBuilder| match &resolver {
        Some(r) => builder.dns_resolver(r.clone()).no_proxy(),
        None => builder,
    };
    guarded(reqwest::Client::builder())
        .connect_timeout(connect_timeout)
        // Streams are many small writes; Nagle's algorithm would only add latency.
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building only fails when the TLS backend cannot initialise; the plain client then
        // reports the same problem on first use instead of at startup.
        .or_else(|error| {
            tracing::error!(%error, "could not build the configured HTTP client; using defaults");
            guarded(reqwest::Client::builder()).build()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let config = OpenAiConfig::new("http://x/v1").with_api_key("sk-secret-123");
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-secret-123"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn empty_key_counts_as_none() {
        assert_eq!(OpenAiConfig::new("x").with_api_key("").key(), None);
    }

    #[test]
    fn default_client_builds() {
        let _client = default_http_client();
    }
}
