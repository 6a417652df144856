//! Request rate limiting for the HTTP layer.
//!
//! After authentication the HTTP layer calls [`Limiter::check`] once per request with the route
//! class's [`Policy`] and a key (`key:<uuid>`, `user:<uuid>`, `ip:<addr>`,
//! `signin:<email>|<ip>`), and answers 429 with [`Decision::headers`] when refused.
//!
//! The algorithm is GCRA (a token bucket stored as one timestamp): burst = limit, then one
//! request per `period / limit`. Two backends: in-process ([`Limiter::in_process`], governor) for
//! a single replica, and Redis ([`Limiter::redis`], one Lua script) so that replicas share one
//! limit. The Redis backend fails open; see [`RedisOptions`].
//!
//! Metrics: `agentry_ratelimit_decisions_total{policy, outcome="allowed|limited"}` and
//! `agentry_ratelimit_backend_errors_total`.

mod decision;
mod error;
mod local;
mod policy;
mod redis_backend;

use std::sync::Arc;
use std::time::Duration;

pub use decision::Decision;
pub use error::RateLimitError;
pub use policy::{LimitConfig, Policies, PoliciesConfig, Policy, RouteClass};
pub use redis_backend::RedisOptions;

use local::LocalBackend;
use policy::Shape;
use redis_backend::RedisBackend;

/// The limiter. Cheap to clone (one `Arc`); clones share state.
#[derive(Clone)]
pub struct Limiter {
    backend: Arc<Backend>,
}

enum Backend {
    Local(LocalBackend),
    Redis(RedisBackend),
}

impl Limiter {
    /// State in this process only: exact for one replica, per-replica with several.
    pub fn in_process() -> Self {
        Self {
            backend: Arc::new(Backend::Local(LocalBackend::default())),
        }
    }

    /// State in Redis, shared by every replica, with default options (50 ms timeout).
    ///
    /// Does not connect: a bad URL is an error, an unreachable Redis is not (the server must
    /// start while Redis is down; checks fail open until it is back). Needs a Tokio runtime.
    pub fn redis(url: &str) -> Result<Self, RateLimitError> {
        Self::redis_with(RedisOptions::new(url))
    }

    pub fn redis_with(options: RedisOptions) -> Result<Self, RateLimitError> {
        Ok(Self {
            backend: Arc::new(Backend::Redis(RedisBackend::new(options)?)),
        })
    }

    /// Counts one request against `key` under `policy`. Never fails: a backend failure allows
    /// the request (fail open) and is counted in `agentry_ratelimit_backend_errors_total`.
    pub async fn check(&self, policy: &Policy, key: &str) -> Decision {
        let decision = match policy.shape() {
            Shape::DenyAll => {
                let wait = policy.period.max(Duration::from_secs(1));
                Decision::limited(policy, wait, wait)
            }
            Shape::Unlimited => Decision::allowed(policy, policy.limit, Duration::ZERO),
            Shape::Gcra(emission) => match &*self.backend {
                Backend::Local(local) => local.check(policy, emission, key),
                Backend::Redis(redis) => redis.check(policy, emission, key).await,
            },
        };
        let outcome = if decision.allowed {
            "allowed"
        } else {
            "limited"
        };
        metrics::counter!(
            "agentry_ratelimit_decisions_total",
            "policy" => policy.name.clone(),
            "outcome" => outcome,
        )
        .increment(1);
        decision
    }

    /// Backend failures since this limiter was built (always 0 in process). For tests and
    /// diagnostics; alert on the metric.
    pub fn backend_errors(&self) -> u64 {
        match &*self.backend {
            Backend::Local(_) => 0,
            Backend::Redis(redis) => redis.errors(),
        }
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &*self.backend {
            Backend::Local(_) => "in-process",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("Limiter")
            .field("backend", &backend)
            .finish()
    }
}
