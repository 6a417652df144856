//! Why a guarded request was refused or failed.

use super::ip::BlockReason;
use crate::codes;
use agentry_core::tool::ToolError;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// The URL does not parse, uses a refused scheme, has no host or carries credentials.
    #[error("invalid URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The host name, or an address it resolves to, is in a refused range.
    #[error(
        "refusing to connect to {host}{}: {reason}. If this host is meant to be reachable, the \
         operator can allow-list it (allow_hosts)",
        address_note(host, address)
    )]
    Blocked {
        host: String,
        /// The refused address; `None` when the host name itself is refused.
        address: Option<IpAddr>,
        reason: BlockedBy,
    },
    #[error("stopped after {max} redirects (at {url}); the target may be a redirect loop")]
    TooManyRedirects { max: usize, url: String },
    #[error("the request did not complete within {0:?}")]
    Timeout(Duration),
    #[error("could not resolve host '{host}': {message}")]
    Resolve { host: String, message: String },
    #[error("request failed: {0}")]
    Request(String),
    /// The HTTP client itself could not be constructed (e.g. TLS initialisation failed).
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// What rule refused a destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockedBy {
    /// The address is in a special-purpose range.
    #[error("{0}")]
    Address(BlockReason),
    /// The host name is one that always points inside (localhost, cloud metadata names).
    #[error("{0}")]
    Name(&'static str),
}

/// ` (1.2.3.4)` when the refused address is not already what the host says.
fn address_note(host: &str, address: &Option<IpAddr>) -> String {
    match address {
        Some(ip) if host.trim_start_matches('[').trim_end_matches(']') != ip.to_string() => {
            format!(" ({ip})")
        }
        _ => String::new(),
    }
}

impl GuardError {
    /// The `ToolError` code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => codes::INVALID_URL,
            Self::Blocked { .. } => codes::BLOCKED_ADDRESS,
            Self::TooManyRedirects { .. } => codes::TOO_MANY_REDIRECTS,
            Self::Timeout(_) => codes::TIMEOUT,
            Self::Resolve { .. } | Self::Request(_) | Self::Client(_) => codes::REQUEST_FAILED,
        }
    }
}

impl From<GuardError> for ToolError {
    fn from(error: GuardError) -> Self {
        ToolError::new(error.code(), error.to_string())
    }
}
