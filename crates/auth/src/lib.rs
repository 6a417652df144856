//! Security building blocks for signing people in.
//!
//! Pure functions with no I/O beyond the operating system's random number generator, so the
//! HTTP layer and the services can share one reviewed implementation of each rule:
//!
//! - [`password`]: the ASVS 5.0 V6 password policy (length 8–128, no composition rules, common
//!   passwords refused) and argon2id hashing, including [`password::verify_dummy`] so sign-in
//!   takes the same time whether or not the account exists.
//! - [`totp`]: RFC 6238 one-time codes (HMAC-SHA1, 6 digits, 30 s) with a ±1 step window and
//!   replay refusal, base32 secrets and `otpauth://` enrolment URIs.
//! - [`token`]: random opaque tokens (session ids, invitations, resets, API keys), the SHA-256
//!   digest we store instead of them, and constant-time comparison.
//! - [`csrf`]: stateless cross-origin protection for cookie-authenticated requests from
//!   `Sec-Fetch-Site` / `Origin`, modelled on Go 1.25's `http.CrossOriginProtection`.

pub mod csrf;
pub mod password;
pub mod token;
pub mod totp;

pub use csrf::CsrfRejection;
pub use password::PasswordError;
pub use token::TokenError;
pub use totp::TotpError;
