//! Reading a response body under the first-token and idle timeouts.

use crate::failure::{AttemptFailure, describe_reqwest};
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

/// A response body read chunk by chunk. Until [`TimedBody::started`] is called, reads share the
/// first-token deadline; afterwards each read may take up to the idle timeout.
pub(crate) struct TimedBody {
    response: reqwest::Response,
    unread: Option<Bytes>,
    deadline: Instant,
    first_token: Duration,
    idle: Duration,
    started: bool,
}

impl TimedBody {
    pub(crate) fn new(
        response: reqwest::Response,
        first_deadline: Instant,
        first_token: Duration,
        idle: Duration,
    ) -> Self {
        Self {
            response,
            unread: None,
            deadline: first_deadline,
            first_token,
            idle,
            started: false,
        }
    }

    /// The next chunk, `None` at the end of the body.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, AttemptFailure> {
        if let Some(bytes) = self.unread.take() {
            return Ok(Some(bytes));
        }
        let chunk = tokio::time::timeout_at(self.deadline, self.response.chunk()).await;
        match chunk {
            Err(_) if self.started => Err(AttemptFailure::IdleTimeout(self.idle)),
            Err(_) => Err(AttemptFailure::FirstTokenTimeout(self.first_token)),
            Ok(Err(error)) => Err(AttemptFailure::Interrupted(describe_reqwest(error))),
            Ok(Ok(chunk)) => {
                if self.started {
                    self.deadline = Instant::now() + self.idle;
                }
                Ok(chunk)
            }
        }
    }

    /// Puts a chunk back to be returned by the next [`TimedBody::next`].
    pub(crate) fn unread(&mut self, bytes: Bytes) {
        self.unread = Some(bytes);
    }

    /// The answer has started: switch from the first-token deadline to the idle timeout.
    pub(crate) fn started(&mut self) {
        if !self.started {
            self.started = true;
            self.deadline = Instant::now() + self.idle;
        }
    }

    /// Reads the rest of the body, refusing more than `limit` bytes.
    pub(crate) async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, AttemptFailure> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next().await? {
            self.started();
            if body.len() + chunk.len() > limit {
                return Err(AttemptFailure::BadResponse(format!(
                    "response body exceeds {limit} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Reads at most `limit` bytes of an error body within `within`; error bodies only feed a
/// message, so a slow or huge one is cut rather than waited for.
pub(crate) async fn read_error_body(
    mut response: reqwest::Response,
    limit: usize,
    within: Duration,
) -> String {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= limit {
                body.truncate(limit);
                break;
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    String::from_utf8_lossy(&body).into_owned()
}
