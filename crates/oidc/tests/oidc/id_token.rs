//! id_token edge cases, with tokens signed by hand with the fake's published keys.

use agentry_fakeidp::{ES256_KID, RS256_KID, SigningAlg, TokenSigner};
use agentry_oidc::{Jwks, OidcError, verify_id_token};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "client-1";
const NONCE: &str = "nonce-123";
const NOW: i64 = 1_700_000_000;

fn keys() -> (TokenSigner, Jwks) {
    let signer = TokenSigner::new().unwrap();
    let jwks = serde_json::from_value(signer.jwks()).unwrap();
    (signer, jwks)
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": "u1", "aud": CLIENT, "nonce": NONCE,
        "iat": NOW, "exp": NOW + 300, "email": "u@example.com",
    })
}

fn verify(jwks: &Jwks, token: &str) -> Result<agentry_oidc::IdentityClaims, OidcError> {
    verify_id_token(jwks, token, ISSUER, CLIENT, NONCE, NOW)
}

fn with(changes: Value) -> Value {
    let mut claims = claims();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

fn assert_invalid(
    result: Result<agentry_oidc::IdentityClaims, OidcError>,
    code: &str,
    reason: &str,
) {
    let err = result.unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    assert!(
        err.to_string().contains(reason),
        "expected '{reason}' in: {err}"
    );
}

#[test]
fn both_algorithms_verify_and_a_missing_kid_picks_the_only_fitting_key() {
    let (signer, jwks) = keys();
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let token = signer.sign(alg, &claims()).unwrap();
        assert_eq!(verify(&jwks, &token).unwrap().subject, "u1");
    }
    let header = json!({"alg": "ES256"});
    let token = signer
        .sign_with_header(&header, SigningAlg::Es256, &claims())
        .unwrap();
    let identity = verify(&jwks, &token).unwrap();
    assert_eq!(identity.email.as_deref(), Some("u@example.com"));
    assert!(
        !identity.email_verified,
        "absent email_verified means unverified"
    );
}

#[test]
fn the_header_cannot_choose_how_it_is_checked() {
    let (signer, jwks) = keys();
    let cases = [
        (json!({"alg": "HS256", "kid": ES256_KID}), "not allowed"),
        // An RSA signature presented as ES256 under the EC key, and the other way round.
        (
            json!({"alg": "ES256", "kid": RS256_KID}),
            "not a ES256 signing key",
        ),
        (
            json!({"alg": "RS256", "kid": ES256_KID}),
            "not a RS256 signing key",
        ),
        (
            json!({"alg": "ES256", "kid": ES256_KID, "crit": ["exp"]}),
            "crit",
        ),
    ];
    for (header, reason) in cases {
        let token = signer
            .sign_with_header(&header, SigningAlg::Rs256, &claims())
            .unwrap();
        assert_invalid(verify(&jwks, &token), "oidc_invalid_id_token", reason);
    }
    let token = signer
        .sign_with_header(
            &json!({"alg": "ES256", "kid": "rotated"}),
            SigningAlg::Es256,
            &claims(),
        )
        .unwrap();
    assert_invalid(verify(&jwks, &token), "oidc_unknown_signing_key", "rotated");
}

#[test]
fn tampering_breaks_the_signature() {
    let (signer, jwks) = keys();
    let good = signer.sign(SigningAlg::Es256, &claims()).unwrap();
    let other = signer
        .sign(SigningAlg::Es256, &with(json!({"sub": "admin"})))
        .unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let other_payload = other.split('.').nth(1).unwrap();
    let forged = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
    assert_invalid(verify(&jwks, &forged), "oidc_invalid_id_token", "signature");
    assert_invalid(verify(&jwks, "a.b.c.d.e"), "oidc_invalid_id_token", "JWE");
    assert_invalid(
        verify(&jwks, "not-a-token"),
        "oidc_invalid_id_token",
        "3 dot-separated",
    );
}

#[test]
fn audience_and_authorized_party() {
    let (signer, jwks) = keys();
    let sign = |changes: Value| signer.sign(SigningAlg::Es256, &with(changes)).unwrap();

    let several = sign(json!({"aud": [CLIENT, "other"]}));
    assert_invalid(verify(&jwks, &several), "oidc_invalid_id_token", "azp");
    let several_with_azp = sign(json!({"aud": [CLIENT, "other"], "azp": CLIENT}));
    assert!(verify(&jwks, &several_with_azp).is_ok());
    let foreign_azp = sign(json!({"azp": "other"}));
    assert_invalid(verify(&jwks, &foreign_azp), "oidc_invalid_id_token", "azp");
    let not_us = sign(json!({"aud": ["other", "third"], "azp": "other"}));
    assert_invalid(verify(&jwks, &not_us), "oidc_invalid_id_token", "aud");
}

#[test]
fn times_allow_one_minute_of_skew() {
    let (signer, jwks) = keys();
    let sign = |changes: Value| signer.sign(SigningAlg::Es256, &with(changes)).unwrap();

    assert!(verify(&jwks, &sign(json!({"exp": NOW - 30}))).is_ok());
    assert_invalid(
        verify(&jwks, &sign(json!({"exp": NOW - 61}))),
        "oidc_invalid_id_token",
        "exp",
    );
    assert!(verify(&jwks, &sign(json!({"iat": NOW + 30}))).is_ok());
    assert_invalid(
        verify(&jwks, &sign(json!({"iat": NOW + 120}))),
        "oidc_invalid_id_token",
        "iat",
    );
    assert_invalid(
        verify(&jwks, &sign(json!({"nbf": NOW + 120}))),
        "oidc_invalid_id_token",
        "nbf",
    );
    assert_invalid(
        verify(&jwks, &sign(json!({"iat": null}))),
        "oidc_invalid_id_token",
        "iat",
    );
}

#[test]
fn nonce_and_claims() {
    let (signer, jwks) = keys();
    let sign = |changes: Value| signer.sign(SigningAlg::Es256, &with(changes)).unwrap();

    let missing = sign(json!({"nonce": null}));
    assert_invalid(verify(&jwks, &missing), "oidc_nonce_mismatch", "nonce");
    let token = sign(json!({}));
    let err = verify_id_token(&jwks, &token, ISSUER, CLIENT, "", NOW).unwrap_err();
    assert_eq!(err.code(), "oidc_nonce_mismatch");

    let text_flag = sign(json!({"email_verified": "true", "preferred_username": "u"}));
    let identity = verify(&jwks, &text_flag).unwrap();
    assert!(identity.email_verified);
    assert_eq!(identity.preferred_username.as_deref(), Some("u"));
    assert_invalid(
        verify(&jwks, &sign(json!({"sub": ""}))),
        "oidc_invalid_id_token",
        "sub",
    );
    // The issuer must match exactly: no trailing-slash tolerance for tokens.
    let slash = sign(json!({"iss": format!("{ISSUER}/")}));
    assert_invalid(verify(&jwks, &slash), "oidc_invalid_id_token", "issued by");
}
