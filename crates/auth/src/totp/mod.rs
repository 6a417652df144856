//! RFC 6238 time-based one-time passwords as authenticator apps expect them: HMAC-SHA1,
//! 6 digits, 30-second steps.
//!
//! Enrolment: [`generate_secret`], show [`otpauth_uri`] as a QR code (and [`encode_base32`] for
//! manual entry), then confirm with one [`verify`] before switching 2FA on. Sign-in: [`verify`]
//! with the account's last used step, and store the step it returns.

mod base32;
mod code;
mod uri;

pub use base32::{decode_base32, encode_base32};
pub use code::{DIGITS, STEP_SECS, code_at, verify};
pub use uri::otpauth_uri;

/// Length of a generated secret: 160 bits, the size RFC 4226 recommends for HMAC-SHA1.
pub const SECRET_BYTES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the operating system's random number generator failed")]
    Random,
}

/// A fresh random secret of [`SECRET_BYTES`] bytes.
pub fn generate_secret() -> Result<Vec<u8>, TotpError> {
    let mut secret = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|_| TotpError::Random)?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_20_random_bytes() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(a.len(), 20);
        assert_eq!(b.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn enrolment_round_trip() {
        // What an authenticator app does with the URI's secret, then what we check.
        let secret = generate_secret().unwrap();
        let typed = decode_base32(&encode_base32(&secret).to_lowercase()).unwrap();
        let now = 1_700_000_000;
        assert_eq!(
            verify(&secret, &code_at(&typed, now), now, None),
            Some(now / 30)
        );
    }
}
