//! The token request of the authorization-code flow (RFC 6749 §4.1.3, with the PKCE verifier of
//! RFC 7636 §4.5), authenticated as a confidential client.

use crate::discovery::ProviderMetadata;
use crate::error::OidcError;
use crate::http::{OidcHttp, Step};
use agentry_tools::GuardedRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};

/// How the client authenticates at the token endpoint (OIDC Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded id and secret; what a provider must support by default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// The relying party's registration at the provider. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    client_secret: String,
    pub auth_method: ClientAuthMethod,
}

impl ClientCredentials {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            auth_method: ClientAuthMethod::default(),
        }
    }

    pub fn with_auth_method(mut self, auth_method: ClientAuthMethod) -> Self {
        self.auth_method = auth_method;
        self
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

/// A successful token response. `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Required in the OIDC code flow; its absence is an error.
    pub id_token: String,
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Exchanges the authorization `code` for tokens. `redirect_uri` must be the one sent to the
/// authorization endpoint; `code_verifier` is the [`crate::AuthRequest`]'s.
pub async fn exchange_code(
    http: &OidcHttp,
    metadata: &ProviderMetadata,
    client: &ClientCredentials,
    redirect_uri: &str,
    code: &str,
    code_verifier: &str,
) -> Result<TokenResponse, OidcError> {
    let url = http.check_endpoint("token endpoint", &metadata.token_endpoint)?;
    let mut headers = reqwest::header::HeaderMap::new();
    // Built in a block: the serializer is not `Send` and must not live across the await below.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", code_verifier);
        match client.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                headers.insert(AUTHORIZATION, basic_authorization(client)?);
            }
            ClientAuthMethod::ClientSecretPost => {
                form.append_pair("client_id", &client.client_id)
                    .append_pair("client_secret", &client.client_secret);
            }
        }
        form.finish()
    };
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut request = GuardedRequest::post(url.as_str(), body);
    request.headers = headers;

    let response = http.send(Step::Token, request).await?;
    if response.status != 200 {
        return Err(OidcError::TokenExchange(refusal(
            response.status,
            &response.body,
        )));
    }
    // serde_json's messages name the field and position, never the input, so no token leaks.
    let tokens: TokenResponse = serde_json::from_slice(&response.body)
        .map_err(|e| OidcError::TokenExchange(format!("unexpected token response: {e}")))?;
    tracing::debug!(client_id = %client.client_id, "authorization code exchanged");
    Ok(tokens)
}

/// `Basic base64(urlencode(client_id) ":" urlencode(client_secret))` (RFC 6749 §2.3.1).
fn basic_authorization(client: &ClientCredentials) -> Result<HeaderValue, OidcError> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!(
        "{}:{}",
        encode(&client.client_id),
        encode(&client.client_secret)
    );
    let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
        .map_err(|_| OidcError::TokenExchange("the client credentials are not encodable".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The provider's refusal as text: status plus the OAuth `error` and `error_description`
/// (RFC 6749 §5.2), never the raw body.
fn refusal(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
        error_description: Option<String>,
    }
    let Ok(error) = serde_json::from_slice::<ErrorBody>(body) else {
        return format!("the token endpoint answered HTTP {status}");
    };
    let printable =
        |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(200).collect() };
    match error.error_description {
        Some(description) => format!(
            "the provider refused (HTTP {status}, {}: {})",
            printable(&error.error),
            printable(&description)
        ),
        None => format!(
            "the provider refused (HTTP {status}, {})",
            printable(&error.error)
        ),
    }
}

/// `expires_in` as a number, or a numeric string as some providers send it.
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Seconds>::deserialize(d)? {
        Some(Seconds::Number(n)) => Some(n),
        Some(Seconds::Text(text)) => text.trim().parse().ok(),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let client = ClientCredentials::new("id:1", "p@ss w+rd");
        let value = basic_authorization(&client).expect("header");
        let encoded = value
            .to_str()
            .expect("ascii")
            .strip_prefix("Basic ")
            .expect("basic");
        let decoded = String::from_utf8(STANDARD.decode(encoded).expect("b64")).expect("utf8");
        assert_eq!(decoded, "id%3A1:p%40ss+w%2Brd");
        assert!(value.is_sensitive());
    }

    #[test]
    fn debug_output_hides_secrets_and_tokens() {
        let client = ClientCredentials::new("id", "very-secret");
        assert!(!format!("{client:?}").contains("very-secret"));
        let tokens: TokenResponse = serde_json::from_str(
            r#"{"access_token":"AT-123","token_type":"Bearer","id_token":"ID-456","expires_in":"3600"}"#,
        )
        .expect("parse");
        assert_eq!(tokens.expires_in, Some(3600));
        let debug = format!("{tokens:?}");
        assert!(
            !debug.contains("AT-123") && !debug.contains("ID-456"),
            "{debug}"
        );
    }

    #[test]
    fn refusals_show_the_oauth_error_not_the_body() {
        let text = refusal(
            400,
            br#"{"error":"invalid_grant","error_description":"bad code\nx"}"#,
        );
        assert_eq!(
            text,
            "the provider refused (HTTP 400, invalid_grant: bad codex)"
        );
        assert_eq!(
            refusal(502, b"<html>secret</html>"),
            "the token endpoint answered HTTP 502"
        );
    }
}
