//! Running the fake on a socket: [`start`] and the [`FakeIdpHandle`] it returns.

use crate::error::FakeIdpError;
use crate::keys::{SigningAlg, TokenSigner};
use crate::routes::{DISCOVERY_PATH, router};
use crate::state::{FakeIdp, FakeUser, Misbehaviour, RecordedRequest};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`FakeIdpHandle::shutdown`] lets in-flight responses finish before aborting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Binds `addr` (port 0 picks a free port) and serves a fresh fake provider whose issuer is
/// `http://<bound address>`. No client is registered yet: call
/// [`FakeIdpHandle::register_client`].
pub async fn start(addr: SocketAddr) -> Result<FakeIdpHandle, FakeIdpError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // The issuer embeds the real port, so the state can only be built after binding.
    let fake = FakeIdp::new(format!("http://{addr}"), TokenSigner::new()?);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let app = router(fake.clone());
    let task = tokio::spawn(async move {
        let stopped = async move {
            // An error means every sender is gone, which also means stop.
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(%error, "fake-idp server stopped with an error");
        }
    });
    tracing::info!(%addr, "fake-idp listening");
    Ok(FakeIdpHandle {
        fake,
        addr,
        stop: Arc::new(Stop {
            tx: stop_tx,
            task: Mutex::new(Some(task)),
        }),
    })
}

/// A running fake provider. Cheap to clone; clones control the same server.
///
/// The server runs until [`FakeIdpHandle::shutdown`] is called or the Tokio runtime it was
/// started on shuts down (as at the end of a `#[tokio::test]`). Dropping handles does not stop it.
#[derive(Debug, Clone)]
pub struct FakeIdpHandle {
    fake: FakeIdp,
    addr: SocketAddr,
    stop: Arc<Stop>,
}

#[derive(Debug)]
struct Stop {
    tx: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FakeIdpHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer, which is also the base URL: `http://127.0.0.1:<port>`, no trailing slash.
    pub fn issuer(&self) -> String {
        self.fake.issuer().to_string()
    }

    pub fn base_url(&self) -> String {
        self.issuer()
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}{DISCOVERY_PATH}", self.fake.issuer())
    }

    /// The shared state, e.g. to reach [`FakeIdp::signer`].
    pub fn fake(&self) -> &FakeIdp {
        &self.fake
    }

    /// Registers `client_id` (replacing its secret) and allows `redirect_uri` for it.
    pub fn register_client(&self, client_id: &str, client_secret: &str, redirect_uri: &str) {
        self.fake
            .register_client(client_id, client_secret, redirect_uri);
    }

    /// Who the next `/authorize` signs in as.
    pub fn set_user(
        &self,
        subject: &str,
        email: Option<&str>,
        email_verified: bool,
        name: Option<&str>,
    ) {
        self.fake.set_user(FakeUser {
            subject: subject.to_string(),
            email: email.map(str::to_string),
            email_verified,
            name: name.map(str::to_string),
        });
    }

    /// Which key signs id_tokens from now on (ES256 by default).
    pub fn set_signing_alg(&self, alg: SigningAlg) {
        self.fake.set_signing_alg(alg);
    }

    /// Makes the next id_token wrong in the given way.
    pub fn next_token(&self, misbehaviour: Misbehaviour) {
        self.fake.next_token(misbehaviour);
    }

    pub fn next_token_wrong_nonce(&self) {
        self.next_token(Misbehaviour::WrongNonce);
    }

    pub fn next_token_wrong_audience(&self) {
        self.next_token(Misbehaviour::WrongAudience);
    }

    pub fn next_token_expired(&self) {
        self.next_token(Misbehaviour::Expired);
    }

    pub fn next_token_bad_signature(&self) {
        self.next_token(Misbehaviour::BadSignature);
    }

    pub fn next_token_alg_none(&self) {
        self.next_token(Misbehaviour::AlgNone);
    }

    pub fn next_token_wrong_issuer(&self) {
        self.next_token(Misbehaviour::WrongIssuer);
    }

    /// Makes discovery claim another issuer (undo with [`clear_discovery_overrides`]).
    ///
    /// [`clear_discovery_overrides`]: Self::clear_discovery_overrides
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.override_discovery("issuer", serde_json::Value::from(issuer));
    }

    /// Replaces one field of the discovery document, e.g. `jwks_uri`.
    pub fn override_discovery(&self, field: &str, value: serde_json::Value) {
        self.fake.override_discovery(field, value);
    }

    pub fn clear_discovery_overrides(&self) {
        self.fake.clear_discovery_overrides();
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.fake.requests()
    }

    /// Stops accepting connections, gives in-flight responses a short grace period, then stops
    /// the server. Calling it again (from a clone) returns at once.
    pub async fn shutdown(self) {
        self.stop.tx.send_replace(true);
        let task = self
            .stop
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
