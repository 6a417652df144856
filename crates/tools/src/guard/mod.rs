//! The SSRF guard: everything that decides whether Agentry may contact a URL chosen by a user or
//! a model, and the HTTP client that enforces it.
//!
//! Refused: schemes other than http/https; loopback, private, link-local, CGNAT, unspecified,
//! broadcast, multicast, documentation and reserved ranges; IPv6 unique-local; cloud metadata
//! endpoints (by address and by name); IPv6 forms that embed a refused IPv4 address; `localhost`.
//! A host name is refused if ANY of its addresses is refused. The operator can allow-list hosts,
//! addresses or networks that must be reachable anyway.

mod allow;
mod client;
mod error;
mod ip;
mod policy;
mod resolver;

#[cfg(test)]
mod tests;

pub use client::{GuardedHttpClient, GuardedRequest, GuardedResponse};
pub use error::{BlockedBy, GuardError};
pub use ip::{BlockReason, blocked_reason};

use std::time::Duration;

pub const DEFAULT_MAX_REDIRECTS: usize = 5;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Host names (`api.internal`), IP addresses (`10.0.0.5`, `[::1]`) or networks
    /// (`10.0.0.0/8`) that may be contacted even though they are not public. Names match the URL
    /// host exactly (case-insensitive); addresses match literal hosts and resolved addresses.
    pub allow_hosts: Vec<String>,
    /// Redirects followed before giving up with `too_many_redirects`.
    pub max_redirects: usize,
    /// Total time for a request, including redirects and reading the body.
    pub timeout: Duration,
    /// Response bytes kept; the rest is not read and the response is marked truncated.
    pub max_response_bytes: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}
