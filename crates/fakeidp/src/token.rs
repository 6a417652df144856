//! `POST /token`: the authorization-code grant with client authentication (HTTP Basic or form
//! body) and PKCE S256, answering with an id_token signed as configured — or wrong on purpose.

use crate::keys::unsigned_token;
use crate::routes::{decode_form, random_token, recorded, single};
use crate::state::{FakeIdp, Grant, Misbehaviour};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lifetime of issued id_tokens and access tokens.
const TOKEN_TTL_SECS: i64 = 300;

/// An OAuth error response (RFC 6749 §5.2).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        (self.status, no_store(), Json(body)).into_response()
    }
}

pub(crate) async fn token(
    State(fake): State<FakeIdp>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = decode_form(&body);
    fake.record(recorded(&method, &uri, &headers, &form));
    match issue(&fake, &headers, &form) {
        Ok(body) => (no_store(), Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Token responses carry credentials and must not be cached (RFC 6749 §5.1).
fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

fn issue(
    fake: &FakeIdp,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Value, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::new(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let param = |name: &str| single(form, name).map_err(|m| OAuthError::new("invalid_request", m));
    let client_id = authenticate_client(fake, headers, form)?;
    if param("grant_type")? != Some("authorization_code") {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            "only authorization_code is supported",
        ));
    }
    let code = param("code")?.ok_or_else(|| OAuthError::new("invalid_request", "missing code"))?;
    // Removed before any further check: a code is single use, even when the attempt fails.
    let grant = fake
        .state()
        .grants
        .remove(code)
        .ok_or_else(|| OAuthError::new("invalid_grant", "unknown or already used code"))?;
    if grant.client_id != client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "the code was issued to another client",
        ));
    }
    if param("redirect_uri")? != Some(grant.redirect_uri.as_str()) {
        return Err(OAuthError::new(
            "invalid_grant",
            "redirect_uri does not match",
        ));
    }
    check_pkce(param("code_verifier")?, &grant.code_challenge)?;

    let access_token =
        random_token().ok_or_else(|| OAuthError::new("server_error", "no randomness"))?;
    let id_token = id_token(fake, &grant)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "id_token": id_token,
        "expires_in": TOKEN_TTL_SECS,
        "scope": "openid email profile",
    }))
}

/// The authenticated client id. Exactly one method must be used (RFC 6749 §2.3).
fn authenticate_client(
    fake: &FakeIdp,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<String, OAuthError> {
    let invalid_request = |m: String| OAuthError::new("invalid_request", m);
    let basic = headers
        .get(header::AUTHORIZATION)
        .map(|value| parse_basic(value.as_bytes()))
        .transpose()?;
    let post_id = single(form, "client_id").map_err(invalid_request)?;
    let post_secret = single(form, "client_secret").map_err(invalid_request)?;
    let (client_id, secret) = match (basic, post_secret) {
        (Some(_), Some(_)) => {
            return Err(invalid_request(
                "more than one client authentication method".into(),
            ));
        }
        (Some((id, secret)), None) => {
            // A client_id in the body is allowed alongside Basic, but must agree.
            if post_id.is_some_and(|post_id| post_id != id) {
                return Err(invalid_request(
                    "client_id differs from the Basic user".into(),
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => {
            let id = post_id.ok_or_else(|| invalid_request("missing client_id".into()))?;
            (id.to_string(), secret.to_string())
        }
        (None, None) => {
            return Err(OAuthError::new(
                "invalid_client",
                "no client authentication",
            ));
        }
    };
    let state = fake.state();
    match state.clients.get(&client_id) {
        Some(client) if client.secret == secret => Ok(client_id),
        _ => Err(OAuthError::new(
            "invalid_client",
            "client authentication failed",
        )),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → `(id, secret)` (RFC 6749 §2.3.1).
fn parse_basic(value: &[u8]) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::new("invalid_client", "malformed Basic authorization");
    let encoded = value.strip_prefix(b"Basic ").ok_or_else(bad)?;
    let decoded = STANDARD.decode(encoded).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok((form_decode(id), form_decode(secret)))
}

fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) must equal the recorded challenge; the
/// verifier itself must be 43–128 unreserved characters.
fn check_pkce(verifier: Option<&str>, challenge: &str) -> Result<(), OAuthError> {
    let fail = |m: &str| OAuthError::new("invalid_grant", m);
    let verifier = verifier.ok_or_else(|| fail("missing code_verifier"))?;
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return Err(fail("malformed code_verifier"));
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
        return Err(fail("PKCE verification failed"));
    }
    Ok(())
}

/// The id_token for `grant`, spoiled by the queued misbehaviour if there is one.
fn id_token(fake: &FakeIdp, grant: &Grant) -> Result<String, OAuthError> {
    let (alg, misbehaviour) = {
        let mut state = fake.state();
        (state.signing_alg, state.misbehaviour.take())
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut claims = json!({
        "iss": fake.issuer(),
        "sub": grant.user.subject,
        "aud": grant.client_id,
        "exp": now + TOKEN_TTL_SECS,
        "iat": now,
        "auth_time": now,
        "email": grant.user.email,
        "email_verified": grant.user.email_verified,
        "name": grant.user.name,
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    match misbehaviour {
        Some(Misbehaviour::WrongNonce) => claims["nonce"] = json!("not-the-nonce-you-sent"),
        Some(Misbehaviour::WrongAudience) => claims["aud"] = json!("some-other-client"),
        Some(Misbehaviour::WrongIssuer) => claims["iss"] = json!("https://evil.example"),
        Some(Misbehaviour::Expired) => {
            claims["exp"] = json!(now - 3600);
            claims["iat"] = json!(now - 3900);
        }
        Some(Misbehaviour::AlgNone) => return Ok(unsigned_token(&claims)),
        Some(Misbehaviour::BadSignature) => {
            return sign(fake.signer().sign_with_rogue_key(&claims));
        }
        None => {}
    }
    sign(fake.signer().sign(alg, &claims))
}

fn sign(result: Result<String, crate::FakeIdpError>) -> Result<String, OAuthError> {
    result.map_err(|e| OAuthError::new("server_error", e.to_string()))
}
