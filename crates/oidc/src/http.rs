//! [`OidcHttp`]: the SSRF-guarded client configured for talking to an OpenID provider, plus the
//! https rule and the mapping of transport failures to the step that made the request.

use crate::error::OidcError;
use agentry_tools::{GuardConfig, GuardError, GuardedHttpClient, GuardedRequest, GuardedResponse};
use url::Url;

/// The sign-in step a request belongs to; transport failures are reported as that step's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Discovery,
    Jwks,
    Token,
}

impl Step {
    pub(crate) fn fail(self, message: impl Into<String>) -> OidcError {
        let message = message.into();
        match self {
            Self::Discovery => OidcError::Discovery(message),
            Self::Jwks => OidcError::Jwks(message),
            Self::Token => OidcError::TokenExchange(message),
        }
    }
}

/// The HTTP client every request of this crate goes through: a [`GuardedHttpClient`] (so a
/// discovery URL or a discovered endpoint pointing inside the network is refused unless the
/// operator allow-listed it) that follows no redirects and, by default, speaks https only.
#[derive(Debug, Clone)]
pub struct OidcHttp {
    guard: GuardedHttpClient,
    allow_insecure_http: bool,
}

impl OidcHttp {
    /// Builds the guarded client from `config`, with redirects switched off: OIDC endpoints
    /// answer directly, and following a redirect could carry the token request (code, verifier,
    /// possibly the client secret) somewhere else or downgrade it to plain http.
    pub fn new(config: GuardConfig) -> Result<Self, OidcError> {
        let config = GuardConfig {
            max_redirects: 0,
            ..config
        };
        let guard =
            GuardedHttpClient::new(config).map_err(|e| OidcError::HttpClient(e.to_string()))?;
        Ok(Self {
            guard,
            allow_insecure_http: false,
        })
    }

    /// Allows plain `http://` discovery, token and JWKS URLs. Only for tests and local
    /// development (a provider on 127.0.0.1, which must also be in `allow_hosts`): over http
    /// anyone on the path can read the code exchange and forge the keys that sign id_tokens.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    pub fn guard(&self) -> &GuardedHttpClient {
        &self.guard
    }

    /// Parses an endpoint URL and applies the https rule. Fragments are refused (RFC 6749 §3.1).
    pub(crate) fn check_endpoint(&self, what: &'static str, url: &str) -> Result<Url, OidcError> {
        let parsed = Url::parse(url.trim()).map_err(|e| OidcError::InvalidUrl {
            what,
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if parsed.fragment().is_some() {
            return Err(OidcError::InvalidUrl {
                what,
                url: url.to_string(),
                reason: "a fragment is not allowed".into(),
            });
        }
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.allow_insecure_http => Ok(parsed),
            "http" => Err(OidcError::InsecureUrl {
                what,
                url: url.to_string(),
            }),
            other => Err(OidcError::InvalidUrl {
                what,
                url: url.to_string(),
                reason: format!("the scheme '{other}' is not allowed"),
            }),
        }
    }

    /// Sends `request` through the guard and returns the complete response (any status).
    pub(crate) async fn send(
        &self,
        step: Step,
        request: GuardedRequest,
    ) -> Result<GuardedResponse, OidcError> {
        let response = self.guard.send(request).await.map_err(|e| match e {
            GuardError::Blocked { .. } => OidcError::BlockedUrl(e),
            GuardError::InvalidUrl { url, reason } => OidcError::InvalidUrl {
                what: "provider",
                url,
                reason,
            },
            GuardError::TooManyRedirects { url, .. } => step.fail(format!(
                "the provider answered with a redirect (to {url}); OIDC endpoints must answer \
                 directly"
            )),
            other => step.fail(other.to_string()),
        })?;
        if response.truncated {
            return Err(step.fail(format!(
                "the response from {} is larger than the {} bytes allowed",
                response.url,
                self.guard.config().max_response_bytes
            )));
        }
        Ok(response)
    }

    /// GETs `url` (already checked by [`check_endpoint`](Self::check_endpoint)) and parses a
    /// 200 JSON body.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        step: Step,
        url: &Url,
    ) -> Result<T, OidcError> {
        let mut request = GuardedRequest::get(url.as_str());
        request.headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let response = self.send(step, request).await?;
        if response.status != 200 {
            return Err(step.fail(format!("{url} answered HTTP {}", response.status)));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| step.fail(format!("{url} did not answer the expected JSON: {e}")))
    }
}
