//! The fake's shared state: queued scripts per model and the log of received requests.

use crate::reply::Reply;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Scripts queued under this model name answer requests for any model that has none queued.
pub const ANY_MODEL: &str = "*";

/// How many requests the log keeps by default; older ones are dropped so a long-running
/// `agentry dev fake-llm` or a benchmark does not grow without bound.
pub const DEFAULT_REQUEST_LOG_LIMIT: usize = 10_000;

/// One chat request as the fake received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub model: String,
    /// The JSON body (a JSON string holding the raw text when the body was not JSON).
    pub body: serde_json::Value,
    pub stream: bool,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// The `x-api-key` (Anthropic) or `x-goog-api-key` (Gemini) header, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The request path, e.g. `/v1/chat/completions` or `/v1/embeddings`.
    #[serde(default)]
    pub path: String,
}

/// The fake model server's state. Cheap to clone; clones share state. Serve it with
/// [`crate::router`] or start a server with [`crate::start`].
#[derive(Debug, Clone)]
pub struct FakeLlm {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    request_log_limit: usize,
    next_response: AtomicU64,
}

impl Default for FakeLlm {
    fn default() -> Self {
        Self::new()
    }
}

/// A poisoned lock only means a handler panicked mid-update of a queue or log; the data is
/// still usable for a test fake, so recover instead of cascading the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeLlm {
    pub fn new() -> Self {
        Self::with_request_log_limit(DEFAULT_REQUEST_LOG_LIMIT)
    }

    /// A fake that keeps at most `limit` recorded requests (the newest).
    pub fn with_request_log_limit(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                scripts: Mutex::new(HashMap::new()),
                requests: Mutex::new(VecDeque::new()),
                request_log_limit: limit,
                next_response: AtomicU64::new(1),
            }),
        }
    }

    /// Queues replies for `model` (or [`ANY_MODEL`]); each request consumes one, FIFO.
    pub fn push_script(&self, model: &str, replies: Vec<Reply>) {
        lock(&self.inner.scripts)
            .entry(model.to_string())
            .or_default()
            .extend(replies);
    }

    /// Every chat request received (up to the log limit), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).iter().cloned().collect()
    }

    /// Forgets recorded requests and queued scripts.
    pub fn clear(&self) {
        self.clear_requests();
        self.clear_scripts();
    }

    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    pub fn clear_scripts(&self) {
        lock(&self.inner.scripts).clear();
    }

    /// Models with replies still queued, with their counts (for `GET /v1/models`).
    pub fn scripted_models(&self) -> Vec<(String, usize)> {
        let mut models: Vec<(String, usize)> = lock(&self.inner.scripts)
            .iter()
            .filter(|(_, queue)| !queue.is_empty())
            .map(|(model, queue)| (model.clone(), queue.len()))
            .collect();
        models.sort();
        models
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut requests = lock(&self.inner.requests);
        if self.inner.request_log_limit == 0 {
            return;
        }
        while requests.len() >= self.inner.request_log_limit {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    /// The next queued reply for `model`, falling back to the [`ANY_MODEL`] queue.
    pub(crate) fn next_script(&self, model: &str) -> Option<Reply> {
        let mut scripts = lock(&self.inner.scripts);
        if let Some(reply) = scripts.get_mut(model).and_then(VecDeque::pop_front) {
            return Some(reply);
        }
        scripts.get_mut(ANY_MODEL).and_then(VecDeque::pop_front)
    }

    pub(crate) fn next_response_number(&self) -> u64 {
        self.inner.next_response.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn recorded(model: &str) -> RecordedRequest {
        RecordedRequest {
            model: model.to_string(),
            body: serde_json::Value::Null,
            stream: false,
            authorization: None,
            api_key: None,
            path: String::new(),
        }
    }

    #[test]
    fn scripts_are_fifo_per_model_with_wildcard_fallback() {
        let fake = FakeLlm::new();
        fake.push_script("a", vec![Reply::text("1"), Reply::text("2")]);
        fake.push_script(ANY_MODEL, vec![Reply::text("any")]);
        assert_eq!(fake.next_script("a"), Some(Reply::text("1")));
        assert_eq!(fake.scripted_models(), [("*".into(), 1), ("a".into(), 1)]);
        assert_eq!(fake.next_script("b"), Some(Reply::text("any")));
        assert_eq!(fake.next_script("a"), Some(Reply::text("2")));
        assert_eq!(fake.next_script("a"), None);
    }

    #[test]
    fn request_log_is_bounded_and_clearable() {
        let fake = FakeLlm::with_request_log_limit(2);
        for model in ["1", "2", "3"] {
            fake.record(recorded(model));
        }
        let models: Vec<String> = fake.requests().into_iter().map(|r| r.model).collect();
        assert_eq!(models, ["2", "3"]);
        fake.push_script("x", vec![Reply::text("t")]);
        fake.clear();
        assert!(fake.requests().is_empty());
        assert_eq!(fake.next_script("x"), None);
    }
}
