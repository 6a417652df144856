//! The outcome of one check and its HTTP headers.

use std::time::Duration;

use crate::Policy;

/// The answer to one `Limiter::check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policy's limit (burst size).
    pub limit: u32,
    /// Requests still allowed right now, after this one.
    pub remaining: u32,
    /// Time until the key is back to a full quota (GCRA: theoretical arrival time − now).
    pub reset_after: Duration,
    /// When refused: time until one request would be allowed.
    pub retry_after: Option<Duration>,
    pub policy_name: String,
    /// The policy's period, reported as the window (`w`) of `RateLimit-Policy`.
    pub window: Duration,
}

impl Decision {
    pub(crate) fn allowed(policy: &Policy, remaining: u32, reset_after: Duration) -> Self {
        Self {
            allowed: true,
            limit: policy.limit,
            remaining,
            reset_after,
            retry_after: None,
            policy_name: policy.name.clone(),
            window: policy.period,
        }
    }

    pub(crate) fn limited(policy: &Policy, retry_after: Duration, reset_after: Duration) -> Self {
        Self {
            allowed: false,
            limit: policy.limit,
            remaining: 0,
            reset_after,
            retry_after: Some(retry_after),
            policy_name: policy.name.clone(),
            window: policy.period,
        }
    }

    /// The response headers for this decision (IETF draft-ietf-httpapi-ratelimit-headers):
    /// `RateLimit-Policy`, `RateLimit`, and `Retry-After` when refused. Values are whole seconds
    /// rounded up, so a client that waits the advertised time is never refused for being early.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let name = &self.policy_name;
        let mut headers = vec![
            (
                "RateLimit-Policy",
                format!(
                    "\"{name}\";q={};w={}",
                    self.limit,
                    ceil_secs(self.window).max(1)
                ),
            ),
            (
                "RateLimit",
                format!(
                    "\"{name}\";r={};t={}",
                    self.remaining,
                    ceil_secs(self.reset_after)
                ),
            ),
        ];
        if let Some(retry) = self.retry_after {
            // Retry-After: 0 would invite an immediate retry that is likely refused again.
            headers.push(("Retry-After", ceil_secs(retry).max(1).to_string()));
        }
        headers
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
