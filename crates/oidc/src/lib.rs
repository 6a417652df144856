//! The OpenID Connect relying party behind "sign in with Google/Microsoft/Okta/Keycloak…":
//! authorization code flow with PKCE (S256), for a confidential client.
//!
//! A sign-in, end to end:
//! 1. [`discover`] the provider once (cache the [`ProviderMetadata`]) and [`fetch_jwks`].
//! 2. [`AuthRequest::new`] makes fresh `state`, `nonce` and PKCE verifier; store them
//!    server-side keyed by `state`, and redirect the browser to [`AuthRequest::authorize_url`].
//! 3. On the callback, look the request up by the returned `state` (unknown → refuse), then
//!    [`exchange_code`] with its `code_verifier`.
//! 4. [`verify_id_token`] with the stored `nonce`; identify the user by `(issuer, subject)`.
//!
//! Every request goes through [`OidcHttp`], a wrapper around the SSRF-guarded client of
//! `agentry-tools`: https only (unless explicitly allowed for tests), no redirects, and no
//! private, loopback or metadata address unless the operator allow-listed it.
//!
//! Errors are [`OidcError`] with a stable [`OidcError::code`]; no message or log line carries the
//! client secret, a code, a token or the PKCE verifier.

mod auth_request;
mod discovery;
mod error;
mod http;
mod id_token;
mod jwks;
mod token;

pub use auth_request::{AuthRequest, pkce_challenge};
pub use discovery::{ProviderMetadata, WELL_KNOWN_PATH, discover};
pub use error::OidcError;
pub use http::OidcHttp;
pub use id_token::{ALLOWED_ALGORITHMS, CLOCK_LEEWAY_SECS, IdentityClaims, verify_id_token};
pub use jwks::{Jwks, fetch_jwks};
pub use token::{ClientAuthMethod, ClientCredentials, TokenResponse, exchange_code};
