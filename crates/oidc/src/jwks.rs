//! The provider's published signing keys (JWKS, RFC 7517) and the choice of the key that may
//! verify a given token.

use crate::discovery::ProviderMetadata;
use crate::error::OidcError;
use crate::http::{OidcHttp, Step};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A key set. Keys this crate cannot parse (encryption keys with unknown parameters, new key
/// types) are dropped when reading, so one odd key does not make the whole set unusable.
/// Serializable so the caller can cache it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "RawJwks")]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl From<RawJwks> for Jwks {
    fn from(raw: RawJwks) -> Self {
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value(key).ok())
            .collect();
        Self { keys }
    }
}

/// Fetches the provider's JWKS from `metadata.jwks_uri`.
///
/// Providers rotate keys: cache the set, and when verification fails with
/// `oidc_unknown_signing_key`, fetch it again and retry once.
pub async fn fetch_jwks(http: &OidcHttp, metadata: &ProviderMetadata) -> Result<Jwks, OidcError> {
    let url = http.check_endpoint("JWKS", &metadata.jwks_uri)?;
    let jwks: Jwks = http.get_json(Step::Jwks, &url).await?;
    if jwks.keys.is_empty() {
        return Err(OidcError::Jwks(format!("{url} publishes no usable keys")));
    }
    Ok(jwks)
}

impl Jwks {
    /// The key for a token signed with `alg`: the one with the token's `kid`, or — when the
    /// token names none — the only key able to verify `alg`.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Jwk, OidcError> {
        match kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|key| key.common.key_id.as_deref() == Some(kid))
                    .ok_or_else(|| OidcError::UnknownSigningKey {
                        kid: kid.to_string(),
                    })?;
                if !can_verify(key, alg) {
                    return Err(OidcError::InvalidIdToken(format!(
                        "the key '{kid}' is not a {alg:?} signing key"
                    )));
                }
                Ok(key)
            }
            None => {
                let mut candidates = self.keys.iter().filter(|key| can_verify(key, alg));
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => Ok(key),
                    (None, _) => Err(OidcError::InvalidIdToken(format!(
                        "the token names no key and the JWKS has no {alg:?} signing key"
                    ))),
                    (Some(_), Some(_)) => Err(OidcError::InvalidIdToken(
                        "the token names no key (kid) and the JWKS has several".into(),
                    )),
                }
            }
        }
    }
}

/// Whether `key` is meant for signatures and its type, curve and declared `alg` fit `alg`.
/// This is what stops a token from choosing how its own signature is checked.
fn can_verify(key: &Jwk, alg: Algorithm) -> bool {
    let common = &key.common;
    let for_signing = match &common.public_key_use {
        None | Some(PublicKeyUse::Signature) => true,
        Some(_) => false,
    };
    let may_verify = common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    let declared_alg_fits = common
        .key_algorithm
        .is_none_or(|declared| Algorithm::from_str(&declared.to_string()).ok() == Some(alg));
    let type_fits = match (&key.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        // Symmetric ("oct") keys never verify id_tokens here: an HMAC key in a public JWKS is
        // a key anyone can sign with.
        _ => false,
    };
    for_signing && may_verify && declared_alg_fits && type_fits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(json: &str) -> Jwks {
        serde_json::from_str(json).expect("jwks")
    }

    const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec","use":"sig","alg":"ES256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn unparseable_keys_are_dropped_not_fatal() {
        let set = jwks(&format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256"}}, {EC_KEY}, {{"kty":"weird"}}]}}"#
        ));
        assert!(
            set.keys
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some("ec"))
        );
        assert!(set.select(Some("ec"), Algorithm::ES256).is_ok());
    }

    #[test]
    fn key_must_fit_the_algorithm() {
        let set = jwks(&format!(r#"{{"keys":[{EC_KEY}]}}"#));
        for alg in [Algorithm::RS256, Algorithm::ES384, Algorithm::HS256] {
            let err = set.select(Some("ec"), alg).expect_err("mismatch");
            assert_eq!(err.code(), "oidc_invalid_id_token", "{alg:?}");
        }
        let err = set
            .select(Some("other"), Algorithm::ES256)
            .expect_err("unknown");
        assert_eq!(err.code(), "oidc_unknown_signing_key");
        assert!(set.select(None, Algorithm::ES256).is_ok());
    }

    #[test]
    fn encryption_and_symmetric_keys_never_verify() {
        let set = jwks(
            r#"{"keys":[
                {"kty":"EC","crv":"P-256","kid":"enc","use":"enc",
                 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
                {"kty":"oct","kid":"hmac","k":"c2VjcmV0"}]}"#,
        );
        assert!(set.select(Some("enc"), Algorithm::ES256).is_err());
        assert!(set.select(Some("hmac"), Algorithm::HS256).is_err());
        assert!(set.select(None, Algorithm::ES256).is_err());
    }
}
