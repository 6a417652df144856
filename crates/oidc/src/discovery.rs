//! OpenID Provider discovery (OpenID Connect Discovery 1.0): fetch
//! `<issuer>/.well-known/openid-configuration` and check it really describes that issuer.

use crate::error::OidcError;
use crate::http::{OidcHttp, Step};
use serde::{Deserialize, Serialize};

pub const WELL_KNOWN_PATH: &str = "/.well-known/openid-configuration";

/// The parts of the provider's discovery document a relying party needs. Serializable so the
/// caller can cache it (e.g. next to the provider's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// Exactly as the provider spells it; id_tokens must carry this `iss`.
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// Absent means `client_secret_basic` only (OIDC Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// Fetches and checks the discovery document. `discovery_url` is either the issuer
/// (`https://accounts.google.com`) or the full `…/.well-known/openid-configuration` URL.
///
/// The document's `issuer` must be the issuer the URL was built from (OIDC Discovery §4.3; a
/// single trailing slash difference is tolerated, as providers differ on it), and every endpoint
/// must be https (unless [`OidcHttp::allow_insecure_http`]) and, for those this crate calls,
/// pass the SSRF guard's static checks.
pub async fn discover(http: &OidcHttp, discovery_url: &str) -> Result<ProviderMetadata, OidcError> {
    let (issuer, document_url) = split_discovery_url(discovery_url);
    let url = http.check_endpoint("discovery", &document_url)?;
    if url.query().is_some() {
        return Err(OidcError::InvalidUrl {
            what: "discovery",
            url: discovery_url.to_string(),
            reason: "an issuer has no query string".into(),
        });
    }
    let metadata: ProviderMetadata = http.get_json(Step::Discovery, &url).await?;
    if metadata.issuer.trim_end_matches('/') != issuer {
        return Err(OidcError::IssuerMismatch {
            expected: issuer,
            actual: metadata.issuer,
        });
    }
    http.check_endpoint("authorization endpoint", &metadata.authorization_endpoint)?;
    if let Some(userinfo) = &metadata.userinfo_endpoint {
        http.check_endpoint("userinfo endpoint", userinfo)?;
    }
    // These two are called by the server itself: refuse inside addresses now, at configuration
    // time, rather than at the first sign-in (they are checked again on every request).
    for (what, endpoint) in [
        ("token endpoint", &metadata.token_endpoint),
        ("JWKS", &metadata.jwks_uri),
    ] {
        http.check_endpoint(what, endpoint)?;
        http.guard()
            .check_url(endpoint)
            .map_err(OidcError::BlockedUrl)?;
    }
    tracing::debug!(issuer = %metadata.issuer, "OpenID provider discovered");
    Ok(metadata)
}

/// `(issuer without trailing slash, discovery document URL)`.
fn split_discovery_url(input: &str) -> (String, String) {
    let input = input.trim();
    let issuer = input
        .strip_suffix(WELL_KNOWN_PATH)
        .unwrap_or(input)
        .trim_end_matches('/')
        .to_string();
    let document = format!("{issuer}{WELL_KNOWN_PATH}");
    (issuer, document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_or_document_url_give_the_same_pair() {
        let expected = (
            "https://idp.example/realms/a".to_string(),
            "https://idp.example/realms/a/.well-known/openid-configuration".to_string(),
        );
        for input in [
            "https://idp.example/realms/a",
            "https://idp.example/realms/a/",
            " https://idp.example/realms/a/.well-known/openid-configuration ",
        ] {
            assert_eq!(split_discovery_url(input), expected, "{input}");
        }
    }
}
