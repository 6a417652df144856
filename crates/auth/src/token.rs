//! Opaque random tokens (session ids, invitation and reset tokens, API keys) and how we store
//! and compare them.
//!
//! Only [`sha256_hex`] of a token is stored, so a database leak does not hand out working
//! credentials. A plain hash (no salt, no slow KDF) is enough because the tokens are random
//! with at least 128 bits of entropy: there is nothing to guess from a dictionary.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fewest random bytes [`random_token`] produces: 128 bits, OWASP's floor for session ids.
pub const MIN_TOKEN_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token needs at least {min} random bytes, {requested} were asked for")]
    TooFewBytes { requested: usize, min: usize },
    #[error("the operating system's random number generator failed")]
    Random,
}

/// `prefix` followed by `bytes` random bytes in lowercase hex (so `2 * bytes` characters).
///
/// The prefix (e.g. `"agk_"`) makes a leaked token recognisable to secret scanners and to the
/// person who finds it; it adds no secrecy. Use 16 bytes for session, invitation and reset
/// tokens and 32 for API keys. Fewer than [`MIN_TOKEN_BYTES`] is refused rather than silently
/// producing a guessable token.
pub fn random_token(prefix: &str, bytes: usize) -> Result<String, TokenError> {
    if bytes < MIN_TOKEN_BYTES {
        return Err(TokenError::TooFewBytes {
            requested: bytes,
            min: MIN_TOKEN_BYTES,
        });
    }
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).map_err(|_| TokenError::Random)?;
    let mut token = String::with_capacity(prefix.len() + 2 * bytes);
    token.push_str(prefix);
    token.push_str(&hex::encode(random));
    Ok(token)
}

/// Lowercase hex SHA-256 of the whole token (prefix included): the value we store and look
/// tokens up by.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Compares secrets without an early exit at the first differing byte, so response time does
/// not reveal how much of a guess was right. Lengths are not secret (all our tokens of a kind
/// have the same length); different lengths return `false`.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let t = random_token("ags_", 16).unwrap();
        assert_eq!(t.len(), 4 + 32);
        let hex_part = t.strip_prefix("ags_").unwrap();
        assert!(
            hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{t}"
        );
        assert_eq!(random_token("", 32).unwrap().len(), 64);
    }

    #[test]
    fn tokens_are_random() {
        let a = random_token("x_", 16).unwrap();
        let b = random_token("x_", 16).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn too_few_bytes_refused() {
        assert_eq!(
            random_token("x_", 15),
            Err(TokenError::TooFewBytes {
                requested: 15,
                min: 16
            })
        );
        assert!(random_token("x_", 0).is_err());
        assert!(random_token("x_", 16).is_ok());
    }

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 examples.
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"same "));
        assert!(!constant_time_eq(b"same", b""));
    }
}
