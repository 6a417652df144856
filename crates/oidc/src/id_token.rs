//! id_token validation (OIDC Core §3.1.3.7): signature first, with a key from the provider's
//! JWKS and an algorithm from our allow-list, then issuer, audience, times and nonce.

use crate::error::OidcError;
use crate::jwks::Jwks;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// Clock skew tolerated between us and the provider, for `exp`, `iat` and `nbf`.
pub const CLOCK_LEEWAY_SECS: i64 = 60;

/// Asymmetric algorithms only: `none` is an unsigned token, and HMAC would mean the token is
/// "signed" with a secret we share — or, with an `oct` key in a public JWKS, with no secret.
pub const ALLOWED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Who signed in, as the provider asserts it. `(issuer, subject)` is the stable identity; the
/// email only identifies a person when `email_verified` is true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
}

/// Verifies `id_token` and returns its identity claims.
///
/// Checks, in order: three-part compact JWS; `alg` in [`ALLOWED_ALGORITHMS`]; signature with the
/// JWKS key named by `kid` (or the only fitting key); `iss` equals `expected_issuer` (the
/// discovered issuer, exactly); `aud` is or contains `client_id`, and with several audiences
/// `azp` equals `client_id` (as it must whenever present); `exp` in the future and `iat`/`nbf`
/// not in the future, each with [`CLOCK_LEEWAY_SECS`]; `nonce` equals `expected_nonce`
/// (compared in constant time); `sub` non-empty.
pub fn verify_id_token(
    jwks: &Jwks,
    id_token: &str,
    expected_issuer: &str,
    client_id: &str,
    expected_nonce: &str,
    now_unix: i64,
) -> Result<IdentityClaims, OidcError> {
    let claims = verify_signature(jwks, id_token)?;
    check_claims(
        &claims,
        expected_issuer,
        client_id,
        expected_nonce,
        now_unix,
    )?;
    Ok(IdentityClaims {
        issuer: claims.iss,
        subject: claims.sub,
        email: claims.email,
        email_verified: claims.email_verified.is_some_and(|v| v.is_true()),
        name: claims.name,
        preferred_username: claims.preferred_username,
    })
}

fn invalid(reason: impl Into<String>) -> OidcError {
    OidcError::InvalidIdToken(reason.into())
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// Extensions the token says we must understand; we understand none.
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: f64,
    iat: f64,
    nbf: Option<f64>,
    nonce: Option<String>,
    azp: Option<String>,
    email: Option<String>,
    email_verified: Option<Flag>,
    name: Option<String>,
    preferred_username: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// `email_verified` is a boolean, but some providers send the string `"true"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Self::Bool(b) => *b,
            Self::Text(text) => text.eq_ignore_ascii_case("true"),
        }
    }
}

/// Checks the signature and returns the (not yet validated) claims.
fn verify_signature(jwks: &Jwks, token: &str) -> Result<Claims, OidcError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(invalid(if parts.len() == 5 {
            "encrypted id_tokens (JWE) are not supported".to_string()
        } else {
            format!("expected 3 dot-separated parts, found {}", parts.len())
        }));
    };
    let header: Header = decode_json(header_b64, "header")?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(invalid("the token is unsigned (alg none)"));
    }
    if !ALLOWED_ALGORITHMS.contains(&header.alg.as_str()) {
        return Err(invalid(format!(
            "the signing algorithm '{}' is not allowed",
            header.alg
        )));
    }
    if header.crit.is_some() {
        return Err(invalid("the header has critical extensions (crit)"));
    }
    let alg = Algorithm::from_str(&header.alg)
        .map_err(|_| invalid(format!("unknown algorithm '{}'", header.alg)))?;
    let jwk = jwks.select(header.kid.as_deref(), alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("unusable key: {e}")))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| invalid("the signature is not base64url"))?;
    // The aws-lc-rs provider is called directly rather than through jsonwebtoken's process-wide
    // default, which panics if another crate in the build also enables its RustCrypto backend.
    let verifier = (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.verifier_factory)(&alg, &key)
        .map_err(|e| invalid(format!("unusable key: {e}")))?;
    let message = format!("{header_b64}.{payload_b64}");
    verifier
        .verify(message.as_bytes(), &signature)
        .map_err(|_| invalid("the signature does not verify"))?;
    decode_json(payload_b64, "payload")
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, OidcError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("the {what} does not parse: {e}")))
}

fn check_claims(
    claims: &Claims,
    expected_issuer: &str,
    client_id: &str,
    expected_nonce: &str,
    now: i64,
) -> Result<(), OidcError> {
    if claims.iss != expected_issuer {
        return Err(invalid(format!(
            "issued by '{}', expected '{expected_issuer}'",
            claims.iss
        )));
    }
    let audiences: &[String] = match &claims.aud {
        Audience::One(aud) => std::slice::from_ref(aud),
        Audience::Many(auds) => auds,
    };
    if !audiences.iter().any(|aud| aud == client_id) {
        return Err(invalid("the token is not meant for this client (aud)"));
    }
    match &claims.azp {
        Some(azp) if azp != client_id => {
            return Err(invalid("the token was issued to another party (azp)"));
        }
        None if audiences.len() > 1 => {
            return Err(invalid("several audiences but no authorized party (azp)"));
        }
        _ => {}
    }
    let (now, leeway) = (now as f64, CLOCK_LEEWAY_SECS as f64);
    if claims.exp + leeway <= now {
        return Err(invalid("the token has expired (exp)"));
    }
    if claims.iat - leeway > now {
        return Err(invalid("the token is issued in the future (iat)"));
    }
    if claims.nbf.is_some_and(|nbf| nbf - leeway > now) {
        return Err(invalid("the token is not valid yet (nbf)"));
    }
    let nonce = claims.nonce.as_deref().ok_or(OidcError::NonceMismatch)?;
    // An empty expectation would accept a token with an empty nonce: a caller bug, refused.
    if expected_nonce.is_empty() || !bool::from(nonce.as_bytes().ct_eq(expected_nonce.as_bytes())) {
        return Err(OidcError::NonceMismatch);
    }
    if claims.sub.is_empty() {
        return Err(invalid("the subject (sub) is empty"));
    }
    Ok(())
}
