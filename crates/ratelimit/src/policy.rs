//! What a limit is (`Policy`) and the platform's default set of them (`Policies`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A GCRA quota: at most `limit` requests per `period`, all of which may arrive at once.
///
/// The emission interval is `period / limit` (one request's "cost" in time) and the burst is
/// `limit`, so an idle key can spend its whole quota immediately and then earns one request back
/// every emission interval.
///
/// The `name` is part of the state's identity (and of the `RateLimit` headers): two policies with
/// the same name share state in Redis, so give distinct limits distinct names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    pub name: String,
    pub limit: u32,
    pub period: Duration,
}

/// What a policy's parameters mean when they leave the ordinary range.
pub(crate) enum Shape {
    /// `limit == 0`: nothing is ever allowed.
    DenyAll,
    /// The emission interval is below one microsecond (the Redis script's resolution): treated as
    /// unlimited rather than rounded to a rate the operator did not ask for.
    Unlimited,
    /// The ordinary case, with the emission interval.
    Gcra(Duration),
}

impl Policy {
    pub fn new(name: impl Into<String>, limit: u32, period: Duration) -> Self {
        Self {
            name: name.into(),
            limit,
            period,
        }
    }

    pub fn per_minute(name: impl Into<String>, limit: u32) -> Self {
        Self::new(name, limit, Duration::from_secs(60))
    }

    /// `period / limit`, or `None` when `limit` is zero.
    pub fn emission_interval(&self) -> Option<Duration> {
        self.period.checked_div(self.limit)
    }

    pub(crate) fn shape(&self) -> Shape {
        match self.emission_interval() {
            None => Shape::DenyAll,
            Some(t) if t < Duration::from_micros(1) => Shape::Unlimited,
            Some(t) => Shape::Gcra(t),
        }
    }
}

/// Which bucket family a request is counted in. The HTTP layer picks one per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Every authenticated API request (key: `key:<uuid>` or `user:<uuid>`).
    General,
    /// Starting a run: costly (model calls), so limited separately and tighter.
    RunStart,
    /// Sign-in attempts per (account, client ip) (key: `signin:<email>|<ip>`): slows password guessing
    /// against one account without locking the owner out from elsewhere.
    SignInAccountIp,
    /// Sign-in attempts per client ip (key: `ip:<addr>`): bounds credential stuffing across accounts.
    SignInIp,
}

/// A limit as written in configuration: `{ limit = 600, period_secs = 60 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub limit: u32,
    pub period_secs: u64,
}

/// The configurable limits of each route class. Defaults: general 600/min, run starts 60/min,
/// sign-in 10 per 15 min per (account, ip) and 100 per 15 min per ip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoliciesConfig {
    pub general: LimitConfig,
    pub run_start: LimitConfig,
    pub signin_account_ip: LimitConfig,
    pub signin_ip: LimitConfig,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            general: LimitConfig {
                limit: 600,
                period_secs: 60,
            },
            run_start: LimitConfig {
                limit: 60,
                period_secs: 60,
            },
            signin_account_ip: LimitConfig {
                limit: 10,
                period_secs: 15 * 60,
            },
            signin_ip: LimitConfig {
                limit: 100,
                period_secs: 15 * 60,
            },
        }
    }
}

/// The built policies, one per route class, with fixed names (they appear in the headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    pub general: Policy,
    pub run_start: Policy,
    pub signin_account_ip: Policy,
    pub signin_ip: Policy,
}

impl Policies {
    pub fn from_config(config: &PoliciesConfig) -> Self {
        let build = |name: &str, c: LimitConfig| {
            Policy::new(name, c.limit, Duration::from_secs(c.period_secs))
        };
        Self {
            general: build("general", config.general),
            run_start: build("run-start", config.run_start),
            signin_account_ip: build("signin-account-ip", config.signin_account_ip),
            signin_ip: build("signin-ip", config.signin_ip),
        }
    }

    pub fn get(&self, class: RouteClass) -> &Policy {
        match class {
            RouteClass::General => &self.general,
            RouteClass::RunStart => &self.run_start,
            RouteClass::SignInAccountIp => &self.signin_account_ip,
            RouteClass::SignInIp => &self.signin_ip,
        }
    }
}

impl Default for Policies {
    fn default() -> Self {
        Self::from_config(&PoliciesConfig::default())
    }
}
