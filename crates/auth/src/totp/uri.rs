//! `otpauth://` enrolment URIs (the Key URI Format read by Google Authenticator, 1Password,
//! Aegis and others), usually shown as a QR code.

use std::fmt::Write as _;

use super::base32::encode_base32;
use super::code::{DIGITS, STEP_SECS};

/// `otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
///
/// The issuer appears in both the label prefix and the `issuer` parameter because older apps
/// read only one of them. Both parts are percent-encoded (spaces as `%20`, not `+`, which some
/// apps show literally), so a `:` in an issuer or account cannot move the label's split point.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = percent_encode(account),
        secret = encode_base32(secret),
    )
}

/// Percent-encodes every byte outside RFC 3986's unreserved set, so the result is safe in
/// both a path segment and a query value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_uri() {
        assert_eq!(
            otpauth_uri("Agentry", "ada@example.com", b"12345678901234567890"),
            "otpauth://totp/Agentry:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Agentry&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn label_and_issuer_are_percent_encoded() {
        let uri = otpauth_uri("Acme & Co: Prod", "a+b c/d?e#f", &[0; 20]);
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20%26%20Co%3A%20Prod:a%2Bb%20c%2Fd%3Fe%23f\
             ?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\
             &issuer=Acme%20%26%20Co%3A%20Prod&algorithm=SHA1&digits=6&period=30"
        );
        // Exactly one literal ':' after the scheme: the label's issuer/account separator.
        assert_eq!(uri["otpauth://".len()..].matches(':').count(), 1);
    }

    #[test]
    fn non_ascii_is_encoded_as_utf8_bytes() {
        assert_eq!(percent_encode("Zürich"), "Z%C3%BCrich");
        assert_eq!(percent_encode("A-Z.a_z~09"), "A-Z.a_z~09");
    }
}
