//! Engine settings. The binary fills these from `agentry.toml`, `AGENTRY_*` variables and flags.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A provider every organization of this instance can use, declared in `agentry.toml`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct InstanceProvider {
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    pub base_url: String,
    /// The name of an environment variable that holds the key (keys never live in the file).
    #[serde(default)]
    pub api_key_env: Option<String>,
}

fn default_kind() -> String {
    "openai".into()
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Runs one process executes at once.
    pub worker_concurrency: usize,
    /// How long a claimed job stays ours without a heartbeat.
    pub lease: Duration,
    /// How often idle workers look for due jobs and expired leases, besides wake-ups.
    pub poll_interval: Duration,
    /// Earlier messages of a thread a run sees, at most.
    pub thread_window: usize,
    /// How long an in-flight run may take to finish on shutdown before its lease is released.
    pub shutdown_grace: Duration,
    pub instance_providers: Vec<InstanceProvider>,
    /// Provider call timeouts and retries.
    pub model_timeouts: agentry_llm::Timeouts,
    pub model_retry: agentry_llm::RetryPolicy,
    /// Whether this process executes runs (an API-only replica sets false).
    pub run_workers: bool,
    pub identity: IdentityConfig,
    /// Redis shared by the replicas (`AGENTRY_REDIS_URL`): the response cache lives there when
    /// set, in the process otherwise.
    pub redis_url: Option<String>,
}

/// Sessions, links, limits and retention of the identity layer.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Where people reach this instance (`https://agentry.example.com`); links in emails and
    /// OIDC redirect URIs are built from it. `https` turns on `Secure` `__Host-` cookies.
    pub public_url: String,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, however active.
    pub session_absolute: Duration,
    pub invitation_ttl: Duration,
    /// Password reset links live at most 30 minutes.
    pub reset_ttl: Duration,
    /// Runs (queued or running) an organization may have at once; 0 = unlimited.
    pub org_max_active_runs: i64,
    /// Audit entries older than this are deleted; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
}

impl IdentityConfig {
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// An absolute link to `path` (which starts with `/`) on this instance.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }

    /// How long a reset link lives: the configured time, never more than 30 minutes.
    pub fn reset_link_ttl(&self) -> Duration {
        self.reset_ttl.min(Duration::from_secs(30 * 60))
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            session_idle: Duration::from_secs(8 * 3600),
            session_absolute: Duration::from_secs(7 * 24 * 3600),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            reset_ttl: Duration::from_secs(30 * 60),
            org_max_active_runs: 1000,
            audit_retention: None,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_concurrency: 64,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            thread_window: 50,
            shutdown_grace: Duration::from_secs(10),
            instance_providers: Vec::new(),
            model_timeouts: agentry_llm::Timeouts::default(),
            model_retry: agentry_llm::RetryPolicy::default(),
            run_workers: true,
            identity: IdentityConfig::default(),
            redis_url: None,
        }
    }
}
