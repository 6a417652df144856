//! The start of a sign-in: fresh `state`, `nonce` and PKCE verifier, and the URL to send the
//! browser to.

use crate::discovery::ProviderMetadata;
use crate::error::OidcError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Random bytes behind `state`, `nonce` and the code verifier: 256 bits each, which encodes to
/// 43 base64url characters — also the minimum verifier length of RFC 7636 §4.1.
const RANDOM_BYTES: usize = 32;

/// One pending sign-in. The caller keeps it server-side (keyed by `state`) until the callback,
/// then passes `code_verifier` to `exchange_code` and `nonce` to `verify_id_token`.
///
/// `Debug` hides the verifier and nonce, so logging a request does not leak them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub authorization_endpoint: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    /// CSRF protection for the callback: it must come back unchanged.
    pub state: String,
    /// Binds the id_token to this sign-in (replay protection).
    pub nonce: String,
    /// PKCE (RFC 7636): the secret half, sent only to the token endpoint.
    pub code_verifier: String,
    /// `BASE64URL(SHA256(code_verifier))`, sent with the authorization request.
    pub code_challenge: String,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AuthRequest {
    /// A new sign-in for `client_id`. `openid` is added to `scopes` when missing.
    pub fn new(
        metadata: &ProviderMetadata,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[&str],
    ) -> Result<Self, OidcError> {
        let mut scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        let code_verifier = random_token()?;
        Ok(Self {
            authorization_endpoint: metadata.authorization_endpoint.clone(),
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            scopes,
            state: random_token()?,
            nonce: random_token()?,
            code_challenge: pkce_challenge(&code_verifier),
            code_verifier,
        })
    }

    /// The authorization endpoint with the code-flow parameters appended to its query.
    pub fn authorize_url(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &self.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        // Discovery refused fragments, so appending to the query is all there is to do; the
        // endpoint may carry its own query parameters (RFC 6749 §3.1 keeps them).
        let separator = if self.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}{query}", self.authorization_endpoint)
    }
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2, method S256).
pub fn pkce_challenge(code_verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()))
}

/// 256 random bits as 43 base64url characters (all RFC 7636 "unreserved").
fn random_token() -> Result<String, OidcError> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| OidcError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(authorization_endpoint: &str) -> ProviderMetadata {
        ProviderMetadata {
            issuer: "https://idp.example".into(),
            authorization_endpoint: authorization_endpoint.into(),
            token_endpoint: "https://idp.example/token".into(),
            jwks_uri: "https://idp.example/jwks".into(),
            userinfo_endpoint: None,
            token_endpoint_auth_methods_supported: None,
        }
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn fresh_values_are_long_unreserved_and_distinct() {
        let meta = metadata("https://idp.example/auth");
        let a = AuthRequest::new(&meta, "c", "https://app/cb", &["email"]).expect("request");
        let b = AuthRequest::new(&meta, "c", "https://app/cb", &["email"]).expect("request");
        for value in [&a.state, &a.nonce, &a.code_verifier] {
            assert_eq!(value.len(), 43);
            assert!(
                value
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
        }
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, a.state);
        assert_eq!(a.code_challenge, pkce_challenge(&a.code_verifier));
        assert_eq!(a.scopes, ["openid", "email"]);
        let debug = format!("{a:?}");
        assert!(!debug.contains(&a.code_verifier) && !debug.contains(&a.nonce));
    }

    #[test]
    fn authorize_url_encodes_and_keeps_existing_query() {
        let meta = metadata("https://idp.example/auth?tenant=x");
        let request = AuthRequest::new(
            &meta,
            "my client",
            "https://app/cb?a=1",
            &["openid", "email"],
        )
        .expect("request");
        let url = url::Url::parse(&request.authorize_url()).expect("url");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("tenant"), Some("x"));
        assert_eq!(get("client_id"), Some("my client"));
        assert_eq!(get("redirect_uri"), Some("https://app/cb?a=1"));
        assert_eq!(get("scope"), Some("openid email"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("state"), Some(request.state.as_str()));
    }
}
