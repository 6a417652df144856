//! Redis backend: the GCRA state lives in Redis so every replica enforces one shared limit.
//!
//! **Fails open.** When Redis errors or does not answer within the timeout the request is
//! allowed: losing request limiting for a moment is better than refusing all traffic because a
//! cache is down. This is right for request limits only. Anything that guards money or quota
//! (run budgets, token budgets) must fail closed and must not be built on this path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::{Decision, Policy, RateLimitError};

/// How to reach Redis and how patient to be with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key (`<prefix><policy>:<key>`); default `agentry:rl:`.
    pub key_prefix: String,
    /// Upper bound for one check, connection included (default 50 ms). Past it the request is
    /// allowed: a limiter that adds more latency than it saves is worse than none.
    pub timeout: Duration,
    /// After a failure, skip Redis (and allow) for this long (default 500 ms), so an outage costs
    /// one timeout per cool-down instead of one per request, and reconnects are paced.
    pub error_cooldown: Duration,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "agentry:rl:".to_owned(),
            timeout: Duration::from_millis(50),
            error_cooldown: Duration::from_millis(500),
        }
    }
}

/// At most one warning per this interval; the rest are counted into the next one.
const WARN_EVERY: Duration = Duration::from_secs(10);
const NEVER: u64 = u64::MAX;

pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    script: Script,
    options: RedisOptions,
    /// Origin of the millisecond timestamps below (atomics cannot hold an `Instant`).
    epoch: Instant,
    skip_until_ms: AtomicU64,
    last_warn_ms: AtomicU64,
    suppressed_warnings: AtomicU64,
    errors: AtomicU64,
}

impl RedisBackend {
    /// Builds the client without connecting: the first check connects. A server whose Redis is
    /// down at start therefore still starts, and limits fail open until Redis is back.
    pub(crate) fn new(options: RedisOptions) -> Result<Self, RateLimitError> {
        // The connection manager spawns a task; say so instead of panicking outside a runtime.
        tokio::runtime::Handle::try_current().map_err(|_| RateLimitError::NoRuntime)?;
        let client = Client::open(options.url.as_str())
            .map_err(|e| RateLimitError::InvalidRedisUrl(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            // One attempt per reconnect; the cool-down above paces the next one.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RateLimitError::RedisSetup(e.to_string()))?;
        Ok(Self {
            conn,
            script: Script::new(include_str!("gcra.lua")),
            options,
            epoch: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
            last_warn_ms: AtomicU64::new(NEVER),
            suppressed_warnings: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub(crate) async fn check(&self, policy: &Policy, emission: Duration, key: &str) -> Decision {
        if self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return fail_open(policy);
        }
        let redis_key = format!("{}{}:{key}", self.options.key_prefix, policy.name);
        // Microseconds: fine enough for any sane limit, and Lua's doubles hold epoch-µs exactly.
        let emission_us = u64::try_from(emission.as_micros()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(redis_key);
        invocation.arg(emission_us).arg(policy.limit);
        // EVALSHA, falling back to EVAL (which caches the script) when Redis answers NOSCRIPT.
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
        match tokio::time::timeout(self.options.timeout, call).await {
            Ok(Ok((allowed, remaining, reset_us, retry_us))) => {
                let reset = micros(reset_us);
                if allowed == 1 {
                    let remaining = u32::try_from(remaining.max(0)).unwrap_or(policy.limit);
                    Decision::allowed(policy, remaining, reset)
                } else {
                    Decision::limited(policy, micros(retry_us), reset)
                }
            }
            Ok(Err(e)) => self.on_error(policy, &e),
            Err(_) => self.on_error(policy, &"timed out"),
        }
    }

    fn on_error(&self, policy: &Policy, error: &dyn std::fmt::Display) -> Decision {
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("agentry_ratelimit_backend_errors_total").increment(1);
        let now = self.now_ms();
        let cooldown = u64::try_from(self.options.error_cooldown.as_millis()).unwrap_or(u64::MAX);
        self.skip_until_ms
            .store(now.saturating_add(cooldown), Ordering::Relaxed);
        self.warn_rate_limited(now, error);
        fail_open(policy)
    }

    /// During an outage every request fails; one log line per `WARN_EVERY` (with the count of
    /// the ones left out) says the same without flooding the log.
    fn warn_rate_limited(&self, now: u64, error: &dyn std::fmt::Display) {
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= duration_ms(WARN_EVERY);
        if due
            && self
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed_warnings.swap(0, Ordering::Relaxed);
            tracing::warn!(
                error = %error,
                suppressed,
                "rate limiter backend (redis) failed; allowing requests (fail open)"
            );
        } else {
            self.suppressed_warnings.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        duration_ms(self.epoch.elapsed())
    }
}

/// The answer when the backend cannot decide: allowed, with the full quota advertised.
fn fail_open(policy: &Policy) -> Decision {
    Decision::allowed(policy, policy.limit, Duration::ZERO)
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
