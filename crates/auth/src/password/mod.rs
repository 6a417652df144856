//! Passwords: the policy a new password must meet ([`check_policy`]) and argon2id storage
//! ([`hash`], [`verify`], [`verify_dummy`]).

mod common;
mod error;
mod hashing;
mod policy;

pub use error::PasswordError;
pub use hashing::{hash, verify, verify_dummy};
pub use policy::{MAX_CHARS, MIN_CHARS, check_policy};
