//! Running the fake on a socket: [`start`] and the [`FakeLlmHandle`] it returns.

use crate::reply::Reply;
use crate::routes::router;
use crate::state::{FakeLlm, RecordedRequest};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`FakeLlmHandle::shutdown`] lets in-flight (possibly deliberately slow) responses
/// finish before it aborts the server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Binds `addr` (port 0 picks a free port) and serves a fresh [`FakeLlm`] on a spawned task.
pub async fn start(addr: SocketAddr) -> std::io::Result<FakeLlmHandle> {
    start_with(FakeLlm::new(), addr).await
}

/// Like [`start`], serving the given state.
pub async fn start_with(fake: FakeLlm, addr: SocketAddr) -> std::io::Result<FakeLlmHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
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
            tracing::warn!(%error, "fake-llm server stopped with an error");
        }
    });
    tracing::info!(%addr, "fake-llm listening");
    Ok(FakeLlmHandle {
        fake,
        addr,
        stop: Arc::new(Stop {
            tx: stop_tx,
            task: Mutex::new(Some(task)),
        }),
    })
}

/// A running fake server. Cheap to clone; clones control the same server.
///
/// The server runs until [`FakeLlmHandle::shutdown`] is called or the Tokio runtime it was
/// started on shuts down (as at the end of a `#[tokio::test]`). Dropping handles does not stop it.
#[derive(Debug, Clone)]
pub struct FakeLlmHandle {
    fake: FakeLlm,
    addr: SocketAddr,
    stop: Arc<Stop>,
}

#[derive(Debug)]
struct Stop {
    tx: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FakeLlmHandle {
    /// The bound address (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, e.g. `http://127.0.0.1:4000/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The shared state, e.g. to serve the same fake on another listener.
    pub fn fake(&self) -> &FakeLlm {
        &self.fake
    }

    /// Queues replies for `model`; see [`FakeLlm::push_script`].
    pub fn push_script(&self, model: &str, replies: Vec<Reply>) {
        self.fake.push_script(model, replies);
    }

    /// Every chat request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.fake.requests()
    }

    /// Forgets recorded requests and queued scripts.
    pub fn clear(&self) {
        self.fake.clear();
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
