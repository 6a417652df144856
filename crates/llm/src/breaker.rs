//! Circuit breakers per (provider, model): pure bookkeeping behind one mutex, no I/O and no
//! clock of its own. Every call passes `now`, so tests (and the engine) drive time explicitly.
//!
//! A breaker is `closed` (calls flow; outcomes are counted in a sliding window), `open` (calls
//! are refused until `open_for` has passed) or `half_open` (a few probe calls may go; the first
//! probe to finish decides: success closes, failure re-opens).
//!
//! It opens when, within `window`, at least `min_calls` counted calls were made and the share
//! of failures reached `failure_rate`, or when `consecutive_overloads` overload answers (429,
//! 529) came in a row: a provider that is shedding load should be left alone at once, not
//! after a window fills.
//!
//! Only provider-side failures count (see [`outcome_of`]); a request the provider rejected for
//! its content, an exhausted quota or a context overflow say nothing about the provider's
//! health, so they are [`CallOutcome::Ignored`].

use agentry_core::ErrorCode;
use agentry_core::chat::{ChatResponse, ProviderError};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How many buckets the sliding window is split into; counts expire one bucket at a time.
const WINDOW_BUCKETS: u32 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// The sliding window over which the failure rate is computed.
    pub window: Duration,
    /// Fewer counted calls than this in the window never open the breaker by rate.
    pub min_calls: u32,
    /// Share of failed calls (0.0–1.0) in the window that opens the breaker.
    pub failure_rate: f64,
    /// This many overload answers (429/529) in a row open the breaker; 0 disables the rule.
    pub consecutive_overloads: u32,
    /// How long an open breaker refuses calls before letting a probe through. Also how long
    /// a probe may stay unanswered before another one is allowed (a caller that dropped its
    /// permit must not wedge the breaker half-open).
    pub open_for: Duration,
    /// Concurrent probe calls allowed while half-open (at least 1).
    pub half_open_max_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            min_calls: 10,
            failure_rate: 0.5,
            consecutive_overloads: 3,
            open_for: Duration::from_secs(30),
            half_open_max_probes: 1,
        }
    }
}

/// The state of one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one call ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    /// A provider-side failure; `overload` for 429 and 529 answers.
    Failure {
        overload: bool,
    },
    /// Says nothing about the provider's health (client errors, cancelled calls).
    Ignored,
}

/// Permission to make one call. Hand it back to [`CircuitBreakers::record`] with the outcome.
/// Not `Clone`, so one call cannot be recorded twice.
#[must_use = "record the call's outcome with CircuitBreakers::record"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    provider: String,
    model: String,
    /// The breaker's generation when the permit was issued; outcomes of calls begun before
    /// the breaker last changed state are stale and ignored.
    generation: u64,
    probe: bool,
}

impl Permit {
    pub fn provider(&self) -> &str {
        &self.provider
    }
    pub fn model(&self) -> &str {
        &self.model
    }
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit {state} for this provider and model; retry in {}s", retry_in.as_secs_f64())]
pub struct BreakerOpen {
    /// When a call may be allowed again (a probe, at the earliest).
    pub retry_in: Duration,
    /// `Open`, or `HalfOpen` when the probes are already taken.
    pub state: CircuitState,
}

/// One breaker, as [`CircuitBreakers::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerState {
    pub provider: String,
    pub model: String,
    pub state: CircuitState,
    /// Counted calls and failures in the current window (closed state).
    pub calls: u32,
    pub failures: u32,
    pub consecutive_overloads: u32,
    /// When the breaker last opened, while open or half-open.
    pub opened_at: Option<Instant>,
    /// While open: how long until a probe is allowed.
    pub retry_in: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: Instant,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
struct Breaker {
    state: CircuitState,
    generation: u64,
    buckets: VecDeque<Bucket>,
    consecutive_overloads: u32,
    opened_at: Option<Instant>,
    /// Start times of probes in flight (half-open).
    probes: Vec<Instant>,
}

impl Breaker {
    fn new() -> Self {
        Self {
            state: CircuitState::Closed,
            generation: 0,
            buckets: VecDeque::new(),
            consecutive_overloads: 0,
            opened_at: None,
            probes: Vec::new(),
        }
    }

    fn bucket_width(config: &BreakerConfig) -> Duration {
        (config.window / WINDOW_BUCKETS).max(Duration::from_millis(1))
    }

    fn prune(&mut self, config: &BreakerConfig, now: Instant) {
        let width = Self::bucket_width(config);
        while let Some(oldest) = self.buckets.front() {
            // A bucket expires once all of it lies before the window's start.
            if now.saturating_duration_since(oldest.start) >= config.window + width {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    fn totals(&self) -> (u32, u32) {
        self.buckets.iter().fold((0, 0), |(calls, failures), b| {
            (calls + b.calls, failures + b.failures)
        })
    }

    fn count(&mut self, config: &BreakerConfig, now: Instant, failed: bool) {
        self.prune(config, now);
        let width = Self::bucket_width(config);
        let current = match self.buckets.back_mut() {
            Some(bucket) if now.saturating_duration_since(bucket.start) < width => bucket,
            _ => {
                self.buckets.push_back(Bucket {
                    start: now,
                    calls: 0,
                    failures: 0,
                });
                // Just pushed, so present.
                let Some(bucket) = self.buckets.back_mut() else {
                    return;
                };
                bucket
            }
        };
        current.calls += 1;
        current.failures += u32::from(failed);
    }

    fn transition(&mut self, state: CircuitState, now: Instant) {
        self.state = state;
        self.generation += 1;
        self.probes.clear();
        match state {
            CircuitState::Open => self.opened_at = Some(now),
            CircuitState::Closed => {
                self.opened_at = None;
                self.buckets.clear();
                self.consecutive_overloads = 0;
            }
            CircuitState::HalfOpen => {}
        }
    }

    fn open_until(&self, config: &BreakerConfig) -> Option<Instant> {
        self.opened_at.map(|at| at + config.open_for)
    }

    /// Moves an open breaker whose time is up to half-open, and forgets lost probes.
    fn refresh(&mut self, config: &BreakerConfig, now: Instant) {
        if self.state == CircuitState::Open
            && self.open_until(config).is_some_and(|until| now >= until)
        {
            self.transition(CircuitState::HalfOpen, now);
        }
        if self.state == CircuitState::HalfOpen {
            self.probes
                .retain(|started| now.saturating_duration_since(*started) < config.open_for);
        }
        self.prune(config, now);
    }
}

/// All breakers of a process, keyed by (provider, model).
#[derive(Debug)]
pub struct CircuitBreakers {
    config: BreakerConfig,
    breakers: Mutex<HashMap<(String, String), Breaker>>,
}

impl CircuitBreakers {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            breakers: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// A poisoned lock only means a panic mid-update of plain counters; they stay usable, and
    /// failing every model call because of it would be worse.
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Breaker>> {
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks to make one call to `model` at `provider`.
    pub fn acquire(
        &self,
        provider: &str,
        model: &str,
        now: Instant,
    ) -> Result<Permit, BreakerOpen> {
        let config = &self.config;
        let mut breakers = self.lock();
        let breaker = breakers
            .entry((provider.to_string(), model.to_string()))
            .or_insert_with(Breaker::new);
        breaker.refresh(config, now);
        let probe = match breaker.state {
            CircuitState::Closed => false,
            CircuitState::Open => {
                let retry_in = breaker.open_until(config).map_or(config.open_for, |until| {
                    until.saturating_duration_since(now)
                });
                return Err(BreakerOpen {
                    retry_in,
                    state: CircuitState::Open,
                });
            }
            CircuitState::HalfOpen => {
                if breaker.probes.len() >= config.half_open_max_probes.max(1) as usize {
                    // The earliest a probe slot frees up without an answer.
                    let retry_in = breaker
                        .probes
                        .iter()
                        .map(|started| (*started + config.open_for).saturating_duration_since(now))
                        .min()
                        .unwrap_or(config.open_for);
                    return Err(BreakerOpen {
                        retry_in,
                        state: CircuitState::HalfOpen,
                    });
                }
                breaker.probes.push(now);
                true
            }
        };
        Ok(Permit {
            provider: provider.to_string(),
            model: model.to_string(),
            generation: breaker.generation,
            probe,
        })
    }

    /// Records how the call of `permit` ended.
    pub fn record(&self, permit: Permit, outcome: CallOutcome, now: Instant) {
        let config = &self.config;
        let mut breakers = self.lock();
        let Some(breaker) = breakers.get_mut(&(permit.provider, permit.model)) else {
            return;
        };
        if breaker.generation != permit.generation {
            // The breaker changed state since this call began; its outcome describes the past.
            return;
        }
        if permit.probe {
            match outcome {
                CallOutcome::Success => breaker.transition(CircuitState::Closed, now),
                CallOutcome::Failure { .. } => breaker.transition(CircuitState::Open, now),
                CallOutcome::Ignored => {
                    // Free the slot so the next caller probes instead.
                    if !breaker.probes.is_empty() {
                        breaker.probes.remove(0);
                    }
                }
            }
            return;
        }
        if breaker.state != CircuitState::Closed {
            return;
        }
        match outcome {
            CallOutcome::Ignored => return,
            CallOutcome::Success => {
                breaker.consecutive_overloads = 0;
                breaker.count(config, now, false);
            }
            CallOutcome::Failure { overload } => {
                breaker.consecutive_overloads = if overload {
                    breaker.consecutive_overloads + 1
                } else {
                    0
                };
                breaker.count(config, now, true);
            }
        }
        let (calls, failures) = breaker.totals();
        let by_overload = config.consecutive_overloads > 0
            && breaker.consecutive_overloads >= config.consecutive_overloads;
        let by_rate = calls >= config.min_calls.max(1)
            && f64::from(failures) >= config.failure_rate * f64::from(calls);
        if by_overload || by_rate {
            breaker.transition(CircuitState::Open, now);
        }
    }

    /// Every breaker that has seen a call, sorted by provider and model.
    pub fn snapshot(&self, now: Instant) -> Vec<BreakerState> {
        let config = &self.config;
        let mut breakers = self.lock();
        let mut states: Vec<BreakerState> = breakers
            .iter_mut()
            .map(|((provider, model), breaker)| {
                breaker.refresh(config, now);
                let (calls, failures) = breaker.totals();
                BreakerState {
                    provider: provider.clone(),
                    model: model.clone(),
                    state: breaker.state,
                    calls,
                    failures,
                    consecutive_overloads: breaker.consecutive_overloads,
                    opened_at: breaker.opened_at,
                    retry_in: (breaker.state == CircuitState::Open)
                        .then(|| breaker.open_until(config))
                        .flatten()
                        .map(|until| until.saturating_duration_since(now)),
                }
            })
            .collect();
        states.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        states
    }
}

/// How a model call's result counts for its breaker: provider-side failures (5xx, 529, 429,
/// timeouts, unreachable, invalid answers) count, the caller's own problems (rejected or
/// unauthorised requests, exhausted quota, context overflow, content filter) do not.
pub fn outcome_of(result: &Result<ChatResponse, ProviderError>) -> CallOutcome {
    let error = match result {
        Ok(_) => return CallOutcome::Success,
        Err(error) => error,
    };
    match error.code {
        ErrorCode::ProviderRateLimited => CallOutcome::Failure { overload: true },
        ErrorCode::ProviderUnavailable => CallOutcome::Failure {
            overload: error.status == Some(529),
        },
        ErrorCode::ProviderTimeout | ErrorCode::ProviderBadResponse => {
            CallOutcome::Failure { overload: false }
        }
        _ => CallOutcome::Ignored,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::FinishReason;

    const OVERLOAD: CallOutcome = CallOutcome::Failure { overload: true };
    const FAILURE: CallOutcome = CallOutcome::Failure { overload: false };

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_secs(60),
            min_calls: 4,
            failure_rate: 0.5,
            consecutive_overloads: 3,
            open_for: Duration::from_secs(30),
            half_open_max_probes: 1,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Makes one call at `now` with `outcome`.
    fn call(breakers: &CircuitBreakers, now: Instant, outcome: CallOutcome) {
        let permit = breakers.acquire("openai", "gpt", now).unwrap();
        breakers.record(permit, outcome, now);
    }

    fn state(breakers: &CircuitBreakers, now: Instant) -> BreakerState {
        breakers.snapshot(now).remove(0)
    }

    #[test]
    fn opens_on_failure_rate_once_enough_calls_were_made() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        call(&breakers, t0, FAILURE);
        call(&breakers, t0, FAILURE);
        call(&breakers, t0, FAILURE);
        // Three failures, but below min_calls: still closed.
        assert_eq!(state(&breakers, t0).state, CircuitState::Closed);
        assert_eq!(state(&breakers, t0).failures, 3);
        call(&breakers, t0, CallOutcome::Success);
        // 3 of 4 failed ≥ 50%.
        let open = state(&breakers, t0);
        assert_eq!(open.state, CircuitState::Open);
        assert_eq!(open.opened_at, Some(t0));
        assert_eq!(open.retry_in, Some(secs(30)));
        let refused = breakers
            .acquire("openai", "gpt", t0 + secs(10))
            .unwrap_err();
        assert_eq!(refused.state, CircuitState::Open);
        assert_eq!(refused.retry_in, secs(20));
    }

    #[test]
    fn a_healthy_rate_stays_closed() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        for i in 0..20 {
            let outcome = if i % 3 == 2 {
                FAILURE
            } else {
                CallOutcome::Success
            };
            call(&breakers, t0 + Duration::from_millis(i), outcome);
        }
        let snapshot = state(&breakers, t0 + secs(1));
        assert_eq!(snapshot.state, CircuitState::Closed);
        assert_eq!(snapshot.calls, 20);
        assert_eq!(snapshot.failures, 6);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        for _ in 0..3 {
            call(&breakers, t0, FAILURE);
        }
        // Far past the window: the old failures no longer count.
        let later = t0 + secs(200);
        assert_eq!(state(&breakers, later).calls, 0);
        call(&breakers, later, FAILURE);
        call(&breakers, later, CallOutcome::Success);
        call(&breakers, later, CallOutcome::Success);
        call(&breakers, later, CallOutcome::Success);
        let snapshot = state(&breakers, later);
        assert_eq!(snapshot.state, CircuitState::Closed);
        assert_eq!((snapshot.calls, snapshot.failures), (4, 1));
    }

    #[test]
    fn consecutive_overloads_open_at_once_and_other_outcomes_reset_the_run() {
        let breakers = CircuitBreakers::new(BreakerConfig {
            min_calls: 100,
            ..config()
        });
        let t0 = Instant::now();
        call(&breakers, t0, OVERLOAD);
        call(&breakers, t0, OVERLOAD);
        call(&breakers, t0, CallOutcome::Success);
        call(&breakers, t0, OVERLOAD);
        call(&breakers, t0, OVERLOAD);
        call(&breakers, t0, FAILURE);
        call(&breakers, t0, OVERLOAD);
        // Ignored outcomes neither count nor break the run.
        call(&breakers, t0, CallOutcome::Ignored);
        call(&breakers, t0, OVERLOAD);
        let snapshot = state(&breakers, t0);
        assert_eq!(snapshot.state, CircuitState::Closed);
        assert_eq!(snapshot.consecutive_overloads, 2);
        call(&breakers, t0, OVERLOAD);
        assert_eq!(state(&breakers, t0).state, CircuitState::Open);
    }

    fn opened(breakers: &CircuitBreakers, t0: Instant) {
        for _ in 0..3 {
            call(breakers, t0, OVERLOAD);
        }
        assert_eq!(state(breakers, t0).state, CircuitState::Open);
    }

    #[test]
    fn half_open_probe_success_closes() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        opened(&breakers, t0);
        assert!(breakers.acquire("openai", "gpt", t0 + secs(29)).is_err());
        let probe_at = t0 + secs(30);
        let probe = breakers.acquire("openai", "gpt", probe_at).unwrap();
        assert!(probe.is_probe());
        assert_eq!(state(&breakers, probe_at).state, CircuitState::HalfOpen);
        // Only one probe at a time; the others are told when a slot frees up at the latest.
        let refused = breakers
            .acquire("openai", "gpt", probe_at + secs(1))
            .unwrap_err();
        assert_eq!(refused.state, CircuitState::HalfOpen);
        assert_eq!(refused.retry_in, secs(29));
        breakers.record(probe, CallOutcome::Success, probe_at + secs(2));
        let closed = state(&breakers, probe_at + secs(2));
        assert_eq!(closed.state, CircuitState::Closed);
        assert_eq!((closed.calls, closed.failures), (0, 0));
        assert_eq!(closed.opened_at, None);
        let permit = breakers
            .acquire("openai", "gpt", probe_at + secs(3))
            .unwrap();
        assert!(!permit.is_probe());
    }

    #[test]
    fn half_open_probe_failure_reopens_for_another_period() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        opened(&breakers, t0);
        let probe_at = t0 + secs(31);
        let probe = breakers.acquire("openai", "gpt", probe_at).unwrap();
        breakers.record(probe, FAILURE, probe_at + secs(1));
        let reopened = state(&breakers, probe_at + secs(1));
        assert_eq!(reopened.state, CircuitState::Open);
        assert_eq!(reopened.opened_at, Some(probe_at + secs(1)));
        let refused = breakers
            .acquire("openai", "gpt", probe_at + secs(11))
            .unwrap_err();
        assert_eq!(refused.retry_in, secs(20));
        assert!(
            breakers
                .acquire("openai", "gpt", probe_at + secs(31))
                .is_ok()
        );
    }

    #[test]
    fn ignored_or_lost_probes_free_the_slot() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        opened(&breakers, t0);
        let at = t0 + secs(30);
        let probe = breakers.acquire("openai", "gpt", at).unwrap();
        breakers.record(probe, CallOutcome::Ignored, at);
        assert_eq!(state(&breakers, at).state, CircuitState::HalfOpen);
        // A probe whose caller never reports back blocks others only for `open_for`.
        let _lost = breakers.acquire("openai", "gpt", at).unwrap();
        assert!(breakers.acquire("openai", "gpt", at + secs(29)).is_err());
        let next = breakers.acquire("openai", "gpt", at + secs(30)).unwrap();
        assert!(next.is_probe());
    }

    #[test]
    fn several_probes_when_configured() {
        let breakers = CircuitBreakers::new(BreakerConfig {
            half_open_max_probes: 2,
            ..config()
        });
        let t0 = Instant::now();
        opened(&breakers, t0);
        let at = t0 + secs(30);
        let first = breakers.acquire("openai", "gpt", at).unwrap();
        let second = breakers.acquire("openai", "gpt", at).unwrap();
        assert!(breakers.acquire("openai", "gpt", at).is_err());
        breakers.record(first, CallOutcome::Success, at);
        // The breaker closed; the second probe's late failure is stale.
        breakers.record(second, FAILURE, at);
        assert_eq!(state(&breakers, at).state, CircuitState::Closed);
    }

    #[test]
    fn late_results_from_before_a_transition_are_ignored() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        let slow = breakers.acquire("openai", "gpt", t0).unwrap();
        opened(&breakers, t0);
        // The slow call's success must not close the breaker it predates.
        breakers.record(slow, CallOutcome::Success, t0 + secs(1));
        assert_eq!(state(&breakers, t0 + secs(1)).state, CircuitState::Open);
    }

    #[test]
    fn breakers_are_independent_per_provider_and_model() {
        let breakers = CircuitBreakers::new(config());
        let t0 = Instant::now();
        opened(&breakers, t0);
        assert!(breakers.acquire("openai", "gpt", t0).is_err());
        assert!(breakers.acquire("openai", "gpt-mini", t0).is_ok());
        assert!(breakers.acquire("azure", "gpt", t0).is_ok());
        let snapshot = breakers.snapshot(t0);
        let keys: Vec<(&str, &str, CircuitState)> = snapshot
            .iter()
            .map(|s| (s.provider.as_str(), s.model.as_str(), s.state))
            .collect();
        assert_eq!(
            keys,
            [
                ("azure", "gpt", CircuitState::Closed),
                ("openai", "gpt", CircuitState::Open),
                ("openai", "gpt-mini", CircuitState::Closed),
            ]
        );
        // The snapshot reports an expired open breaker as half-open.
        assert_eq!(state(&breakers, t0).state, CircuitState::Closed);
        let later = breakers.snapshot(t0 + secs(30));
        assert_eq!(later[1].state, CircuitState::HalfOpen);
    }

    fn error(code: ErrorCode, status: Option<u16>) -> Result<ChatResponse, ProviderError> {
        let mut error = ProviderError::new(code, "x");
        error.status = status;
        Err(error)
    }

    #[test]
    fn outcomes_count_provider_failures_only() {
        let ok = Ok(ChatResponse {
            model: "m".into(),
            content: Some("hi".into()),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: None,
        });
        assert_eq!(outcome_of(&ok), CallOutcome::Success);
        use ErrorCode::*;
        let cases = [
            (ProviderRateLimited, Some(429), OVERLOAD),
            (ProviderUnavailable, Some(529), OVERLOAD),
            (ProviderUnavailable, Some(503), FAILURE),
            (ProviderUnavailable, Some(500), FAILURE),
            (ProviderUnavailable, None, FAILURE),
            (ProviderTimeout, None, FAILURE),
            (ProviderTimeout, Some(408), FAILURE),
            (ProviderBadResponse, Some(200), FAILURE),
            (ProviderRejected, Some(400), CallOutcome::Ignored),
            (ProviderRejected, Some(404), CallOutcome::Ignored),
            (ProviderRejected, Some(422), CallOutcome::Ignored),
            (ProviderAuthFailed, Some(401), CallOutcome::Ignored),
            (ProviderAuthFailed, Some(403), CallOutcome::Ignored),
            (ProviderQuotaExhausted, Some(429), CallOutcome::Ignored),
            (ProviderContextOverflow, Some(400), CallOutcome::Ignored),
            (ProviderContentFiltered, Some(200), CallOutcome::Ignored),
            (ProviderCircuitOpen, None, CallOutcome::Ignored),
        ];
        for (code, status, expected) in cases {
            assert_eq!(
                outcome_of(&error(code, status)),
                expected,
                "{code} {status:?}"
            );
        }
    }

    #[test]
    fn open_error_reads_well() {
        let open = BreakerOpen {
            retry_in: Duration::from_millis(1500),
            state: CircuitState::Open,
        };
        assert_eq!(
            open.to_string(),
            "circuit open for this provider and model; retry in 1.5s"
        );
    }
}
