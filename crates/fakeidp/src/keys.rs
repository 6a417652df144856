//! The fake's signing keys and a minimal JWS signer.
//!
//! Signing is written here directly on aws-lc-rs rather than with a JWT library, so the client
//! under test (which verifies with `jsonwebtoken`) is checked against an independent encoder.

use crate::error::FakeIdpError;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A fixed 2048-bit RSA key (PKCS#8): generating one at every start would cost seconds in
/// unoptimised test builds. It signs nothing but test tokens.
const RSA_FIXTURE_PEM: &str = include_str!("fixtures/rsa-2048.pem");

pub const ES256_KID: &str = "fake-es256";
pub const RS256_KID: &str = "fake-rs256";

/// The algorithm the fake signs id_tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlg {
    #[default]
    Es256,
    Rs256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    pub fn kid(self) -> &'static str {
        match self {
            Self::Es256 => ES256_KID,
            Self::Rs256 => RS256_KID,
        }
    }
}

/// The fake's key material: one ES256 and one RS256 key (both published in the JWKS), plus a
/// "rogue" ES256 key that is never published, for tokens whose signature must not verify.
#[derive(Debug)]
pub struct TokenSigner {
    ec: EcdsaKeyPair,
    rsa: RsaKeyPair,
    rogue: EcdsaKeyPair,
}

impl TokenSigner {
    /// A fresh ES256 key pair, the fixture RSA key and a fresh rogue key.
    pub fn new() -> Result<Self, FakeIdpError> {
        let generate = || {
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| FakeIdpError::Crypto("could not generate a P-256 key"))
        };
        let rsa = RsaKeyPair::from_pkcs8(&pem_body(RSA_FIXTURE_PEM)?)
            .map_err(|_| FakeIdpError::Crypto("the RSA fixture key does not parse"))?;
        Ok(Self {
            ec: generate()?,
            rsa,
            rogue: generate()?,
        })
    }

    /// The public JWKS (`{"keys": [...]}`) with both published keys.
    pub fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let coordinates = self.ec.public_key().as_ref().get(1..).unwrap_or_default();
        let (x, y) = coordinates.split_at(coordinates.len() / 2);
        let rsa = self.rsa.public_key();
        json!({"keys": [
            {
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": ES256_KID,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            },
            {
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": RS256_KID,
                "n": URL_SAFE_NO_PAD.encode(rsa.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(rsa.exponent().big_endian_without_leading_zero()),
            },
        ]})
    }

    /// A compact JWS of `claims` with the standard header (`alg`, `typ`, `kid`) for `alg`.
    pub fn sign(&self, alg: SigningAlg, claims: &Value) -> Result<String, FakeIdpError> {
        let header = json!({"alg": alg.as_str(), "typ": "JWT", "kid": alg.kid()});
        self.sign_with_header(&header, alg, claims)
    }

    /// A compact JWS with any header, signed by the published key of `key`. Lets tests lie in
    /// the header (another `alg`, an unknown `kid`, none at all).
    pub fn sign_with_header(
        &self,
        header: &Value,
        key: SigningAlg,
        claims: &Value,
    ) -> Result<String, FakeIdpError> {
        let input = signing_input(header, claims);
        let signature = match key {
            SigningAlg::Es256 => sign_ec(&self.ec, &input)?,
            SigningAlg::Rs256 => {
                let mut signature = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(
                        &RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        input.as_bytes(),
                        &mut signature,
                    )
                    .map_err(|_| FakeIdpError::Crypto("RSA signing failed"))?;
                signature
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// An ES256 token claiming the published ES256 `kid` but signed by an unpublished key.
    pub fn sign_with_rogue_key(&self, claims: &Value) -> Result<String, FakeIdpError> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": ES256_KID});
        let input = signing_input(&header, claims);
        let signature = sign_ec(&self.rogue, &input)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// An unsigned token (`alg: none`, empty signature), as an attacker would forge it.
pub fn unsigned_token(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!("{}.", signing_input(&header, claims))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn sign_ec(key: &EcdsaKeyPair, input: &str) -> Result<Vec<u8>, FakeIdpError> {
    key.sign(&SystemRandom::new(), input.as_bytes())
        .map(|signature| signature.as_ref().to_vec())
        .map_err(|_| FakeIdpError::Crypto("ECDSA signing failed"))
}

/// The DER bytes inside a PEM block.
fn pem_body(pem: &str) -> Result<Vec<u8>, FakeIdpError> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD
        .decode(body.trim())
        .map_err(|_| FakeIdpError::Crypto("the RSA fixture is not valid PEM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_publishes_both_keys_with_full_size_coordinates() {
        let signer = TokenSigner::new().expect("keys");
        let jwks = signer.jwks();
        let keys = jwks["keys"].as_array().expect("keys array");
        assert_eq!(keys.len(), 2);
        let x = URL_SAFE_NO_PAD
            .decode(keys[0]["x"].as_str().expect("x"))
            .expect("b64");
        assert_eq!(x.len(), 32);
        let n = URL_SAFE_NO_PAD
            .decode(keys[1]["n"].as_str().expect("n"))
            .expect("b64");
        assert_eq!(n.len(), 256);
    }

    #[test]
    fn tokens_have_three_parts() {
        let signer = TokenSigner::new().expect("keys");
        let claims = json!({"sub": "a"});
        for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
            let token = signer.sign(alg, &claims).expect("sign");
            assert_eq!(token.split('.').count(), 3);
        }
        assert!(unsigned_token(&claims).ends_with('.'));
    }
}
