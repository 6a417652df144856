//! The router and the two read-only routes (discovery, JWKS); `/authorize` and `/token` live in
//! their own modules.

use crate::state::{FakeIdp, RecordedRequest};
use crate::{authorize, token};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The fake's routes, serving `fake`.
pub fn router(fake: FakeIdp) -> Router {
    Router::new()
        .route(DISCOVERY_PATH, get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize::authorize))
        .route("/token", post(token::token))
        .with_state(fake)
}

async fn discovery(State(fake): State<FakeIdp>, method: Method, uri: Uri) -> Json<Value> {
    fake.record(recorded(&method, &uri, &HeaderMap::new(), &[]));
    let base = fake.issuer();
    let mut document = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name"],
    });
    if let Some(fields) = document.as_object_mut() {
        fields.extend(fake.state().discovery_overrides.clone());
    }
    Json(document)
}

async fn jwks(State(fake): State<FakeIdp>, method: Method, uri: Uri) -> Json<Value> {
    fake.record(recorded(&method, &uri, &HeaderMap::new(), &[]));
    Json(fake.signer().jwks())
}

/// A log entry for a request; `form` is the already-decoded body.
pub(crate) fn recorded(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> RecordedRequest {
    RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: decode_form(uri.query().unwrap_or_default().as_bytes()),
        form: form.to_vec(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
    }
}

pub(crate) fn decode_form(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The single value of `name`; `Err` names the parameter when it is repeated (RFC 6749 §3.1:
/// parameters must not appear more than once).
pub(crate) fn single<'a>(
    params: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, String> {
    let mut values = params.iter().filter(|(key, _)| key == name);
    let first = values.next().map(|(_, value)| value.as_str());
    match values.next() {
        Some(_) => Err(format!("parameter '{name}' is repeated")),
        None => Ok(first),
    }
}

/// 256 random bits, base64url: codes and access tokens. `None` when the OS has no randomness.
pub(crate) fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}
