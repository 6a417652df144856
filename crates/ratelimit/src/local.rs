//! In-process backend: one governor keyed GCRA limiter per policy.
//!
//! Exact for one process only; replicas behind a load balancer each enforce the full limit. Use
//! the Redis backend when more than one replica serves traffic.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::{Decision, Policy};

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Every this many checks of one policy, forget the keys whose state has fully replenished.
///
/// governor keeps one entry per key it has ever seen; with keys like `ip:<addr>` that set is
/// attacker-controlled and would grow without bound. `retain_recent` drops exactly the entries
/// indistinguishable from a fresh key, so it changes no decision. It walks the whole map, hence
/// amortised over many checks instead of per request (one check in 8192 pays O(keys)).
const PRUNE_EVERY: u64 = 8192;

struct PolicyLimiter {
    limit: u32,
    period: Duration,
    emission: Duration,
    limiter: KeyedLimiter,
    checks: AtomicU64,
}

/// Limiters by policy name; the `Vec` holds one per distinct quota seen under that name (in
/// practice one), so a reconfigured quota gets fresh state instead of inheriting the old one.
#[derive(Default)]
pub(crate) struct LocalBackend {
    policies: RwLock<HashMap<String, Vec<Arc<PolicyLimiter>>>>,
}

impl LocalBackend {
    pub(crate) fn check(&self, policy: &Policy, emission: Duration, key: &str) -> Decision {
        let Some(entry) = self.limiter_for(policy, emission) else {
            // Unreachable for a policy that passed `Policy::shape` (limit ≥ 1, interval > 0);
            // allowing is the fail-open answer for request limits.
            return Decision::allowed(policy, policy.limit, Duration::ZERO);
        };
        if entry.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            entry.limiter.retain_recent();
        }
        match entry.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // The snapshot hides the arrival time; (limit − remaining) intervals is the time
                // to a full quota, rounded up to the next emission.
                let used = entry.limit.saturating_sub(remaining);
                Decision::allowed(policy, remaining, entry.emission.saturating_mul(used))
            }
            Err(not_until) => {
                let retry = not_until.wait_time_from(entry.limiter.clock().now());
                // Refused means the bucket holds a full burst minus one emission beyond `retry`.
                let reset = retry + entry.period.saturating_sub(entry.emission);
                Decision::limited(policy, retry, reset)
            }
        }
    }

    fn limiter_for(&self, policy: &Policy, emission: Duration) -> Option<Arc<PolicyLimiter>> {
        let matches =
            |e: &&Arc<PolicyLimiter>| e.limit == policy.limit && e.period == policy.period;
        {
            let map = self.policies.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = map.get(&policy.name).and_then(|v| v.iter().find(matches)) {
                return Some(Arc::clone(found));
            }
        }
        let mut map = self
            .policies
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let list = map.entry(policy.name.clone()).or_default();
        if let Some(found) = list.iter().find(matches) {
            return Some(Arc::clone(found));
        }
        let quota = Quota::with_period(emission)?.allow_burst(NonZeroU32::new(policy.limit)?);
        let entry = Arc::new(PolicyLimiter {
            limit: policy.limit,
            period: policy.period,
            emission,
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            checks: AtomicU64::new(0),
        });
        list.push(Arc::clone(&entry));
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_keys_are_forgotten() {
        let backend = LocalBackend::default();
        // 1000 per 10 ms: a key is back to fresh 10 µs after its only request.
        let policy = Policy::new("fast", 1000, Duration::from_millis(10));
        let emission = policy.emission_interval().unwrap();
        for i in 0..PRUNE_EVERY - 1 {
            backend.check(&policy, emission, &format!("ip:{i}"));
        }
        let entry = backend.limiter_for(&policy, emission).unwrap();
        assert!(entry.limiter.len() > 1000, "keys are tracked until pruned");
        std::thread::sleep(Duration::from_millis(20));
        // This check is number PRUNE_EVERY: it prunes before counting itself.
        backend.check(&policy, emission, "ip:last");
        assert_eq!(entry.limiter.len(), 1, "only the key just seen remains");
    }
}
