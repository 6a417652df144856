//! Why a sign-in step failed. Messages are safe to log and to show an operator: they never
//! contain the client secret, codes, tokens or the code verifier.

use agentry_tools::GuardError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OidcError {
    /// A configured or discovered URL does not parse or has a fragment.
    #[error("invalid {what} URL '{url}': {reason}")]
    InvalidUrl {
        what: &'static str,
        url: String,
        reason: String,
    },
    /// Plain http where https is required (see `OidcHttp::allow_insecure_http`).
    #[error("the {what} URL '{url}' must use https")]
    InsecureUrl { what: &'static str, url: String },
    /// The SSRF guard refused the destination (private, loopback, metadata address…).
    #[error("{0}")]
    BlockedUrl(GuardError),
    #[error("OpenID discovery failed: {0}")]
    Discovery(String),
    /// The discovery document names another issuer than the one configured (OIDC Discovery
    /// §4.3): someone else's provider, or a misconfiguration.
    #[error("the discovery document's issuer '{actual}' is not the configured issuer '{expected}'")]
    IssuerMismatch { expected: String, actual: String },
    #[error("fetching the provider's signing keys failed: {0}")]
    Jwks(String),
    #[error("the token exchange failed: {0}")]
    TokenExchange(String),
    #[error("invalid id_token: {0}")]
    InvalidIdToken(String),
    /// No published key has the token's `kid`. The provider may have rotated its keys: fetch
    /// the JWKS again and retry once.
    #[error("invalid id_token: no signing key with kid '{kid}' in the provider's JWKS")]
    UnknownSigningKey { kid: String },
    #[error("invalid id_token: the nonce does not match the one sent with this sign-in")]
    NonceMismatch,
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(String),
}

impl OidcError {
    /// A stable snake_case code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "oidc_invalid_url",
            Self::InsecureUrl { .. } => "oidc_insecure_url",
            Self::BlockedUrl(_) => "oidc_blocked_url",
            Self::Discovery(_) => "oidc_discovery_failed",
            Self::IssuerMismatch { .. } => "oidc_issuer_mismatch",
            Self::Jwks(_) => "oidc_jwks_failed",
            Self::TokenExchange(_) => "oidc_token_exchange_failed",
            Self::InvalidIdToken(_) => "oidc_invalid_id_token",
            Self::UnknownSigningKey { .. } => "oidc_unknown_signing_key",
            Self::NonceMismatch => "oidc_nonce_mismatch",
            Self::Random => "oidc_random_failed",
            Self::HttpClient(_) => "oidc_http_client_failed",
        }
    }
}
