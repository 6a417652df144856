//! A fake OpenID Connect provider for integration tests, started in-process on port 0 like
//! `agentry-fakellm` is for model providers.
//!
//! Routes: `GET /.well-known/openid-configuration`, `GET /jwks`, `GET /authorize` and
//! `POST /token`. `/authorize` validates the client, the exact redirect URI,
//! `response_type=code`, the `openid` scope and PKCE S256, records state/nonce/challenge and
//! immediately redirects back with a code, as if the configured user had signed in. `/token`
//! checks client authentication (`client_secret_basic` or `client_secret_post`), the code
//! (single use), the redirect URI and the PKCE verifier, and returns an id_token signed with ES256
//! (generated at start) or RS256 (a fixture key).
//!
//! Negative tests queue a [`Misbehaviour`] for the next token, or make discovery lie about the
//! issuer. [`TokenSigner`] signs arbitrary tokens with the published keys.

mod authorize;
mod error;
mod keys;
mod routes;
mod server;
mod state;
mod token;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use error::FakeIdpError;
pub use keys::{ES256_KID, RS256_KID, SigningAlg, TokenSigner, unsigned_token};
pub use routes::{DISCOVERY_PATH, router};
pub use server::{FakeIdpHandle, start};
pub use state::{FakeIdp, FakeUser, Misbehaviour, RecordedRequest};
