//! The fake's shared state: registered clients, the signed-in user, outstanding authorization
//! codes, the misbehaviour queued for the next token, and the request log.

use crate::keys::{SigningAlg, TokenSigner};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The user every `/authorize` request signs in as (until [`FakeIdp::set_user`] changes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeUser {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

impl Default for FakeUser {
    fn default() -> Self {
        Self {
            subject: "fake-user-1".into(),
            email: Some("user@example.com".into()),
            email_verified: true,
            name: Some("Fake User".into()),
        }
    }
}

/// A way for the next issued id_token to be wrong, so a client's checks can be exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// `nonce` differs from the one sent to `/authorize`.
    WrongNonce,
    /// `aud` names another client.
    WrongAudience,
    /// `exp` (and `iat`) lie an hour in the past.
    Expired,
    /// Signed by a key that is not in the JWKS (under a published `kid`).
    BadSignature,
    /// `alg: none` and no signature.
    AlgNone,
    /// `iss` names another provider.
    WrongIssuer,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Decoded form body parameters, in order (empty for non-form requests).
    pub form: Vec<(String, String)>,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
}

/// A registered client. Secrets are compared in plain text: this is a test fake.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) secret: String,
    pub(crate) redirect_uris: Vec<String>,
}

/// What `/authorize` recorded for a code, checked again at `/token`.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) nonce: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) user: FakeUser,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) clients: HashMap<String, Client>,
    pub(crate) user: FakeUser,
    pub(crate) grants: HashMap<String, Grant>,
    pub(crate) misbehaviour: Option<Misbehaviour>,
    pub(crate) signing_alg: SigningAlg,
    /// Fields replacing those of the real discovery document.
    pub(crate) discovery_overrides: serde_json::Map<String, serde_json::Value>,
    pub(crate) requests: Vec<RecordedRequest>,
}

/// The fake provider. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct FakeIdp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    signer: TokenSigner,
    state: Mutex<State>,
}

impl FakeIdp {
    /// A fake whose issuer (and base URL) is `issuer`, e.g. `http://127.0.0.1:4321`.
    pub fn new(issuer: impl Into<String>, signer: TokenSigner) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: issuer.into().trim_end_matches('/').to_string(),
                signer,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The keys behind the published JWKS, to sign hand-made tokens in tests.
    pub fn signer(&self) -> &TokenSigner {
        &self.inner.signer
    }

    /// A poisoned lock only means a handler panicked mid-update; the data is still usable for a
    /// test fake, so recover instead of cascading the panic.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `client_id` (replacing its secret) and adds `redirect_uri` to its allowed ones.
    pub fn register_client(&self, client_id: &str, client_secret: &str, redirect_uri: &str) {
        let mut state = self.state();
        let client = state
            .clients
            .entry(client_id.to_string())
            .or_insert_with(|| Client {
                secret: String::new(),
                redirect_uris: Vec::new(),
            });
        client.secret = client_secret.to_string();
        if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
            client.redirect_uris.push(redirect_uri.to_string());
        }
    }

    /// Who the next `/authorize` signs in as.
    pub fn set_user(&self, user: FakeUser) {
        self.state().user = user;
    }

    pub fn set_signing_alg(&self, alg: SigningAlg) {
        self.state().signing_alg = alg;
    }

    /// Makes the next issued id_token wrong in the given way (replacing any queued one).
    pub fn next_token(&self, misbehaviour: Misbehaviour) {
        self.state().misbehaviour = Some(misbehaviour);
    }

    /// Replaces `field` of the discovery document with `value` (e.g. another `issuer`, or a
    /// `jwks_uri` pointing elsewhere), until [`clear_discovery_overrides`](Self::clear_discovery_overrides).
    pub fn override_discovery(&self, field: &str, value: serde_json::Value) {
        self.state()
            .discovery_overrides
            .insert(field.to_string(), value);
    }

    pub fn clear_discovery_overrides(&self) {
        self.state().discovery_overrides.clear();
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        self.state().requests.push(request);
    }
}
