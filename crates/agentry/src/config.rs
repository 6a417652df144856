//! Configuration: defaults → `agentry.toml` → `AGENTRY_*` environment (`__` for nesting) → flags.
//! Secrets (admin token, master key, provider keys) come only from the environment.

use agentry_engine::InstanceProvider;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database and the master key live.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub bind: String,
    /// `sqlite://…` or `postgres://…`; default: SQLite in the data dir.
    pub database_url: Option<String>,
    /// Database connections (the read pool on SQLite).
    pub database_max_connections: u32,
    /// Runs executed at once by this process; 0 = this replica only serves the API.
    pub worker_concurrency: usize,
    /// Seconds a claimed run stays ours without a heartbeat.
    pub lease_seconds: u64,
    /// Earlier messages a thread's runs see.
    pub thread_window: usize,
    /// `json` (default) or `text`.
    pub log_format: String,
    /// Hosts (names, IPs or CIDRs) `http_request` may reach although they are private.
    pub http_allow_hosts: Vec<String>,
    /// Provider call limits.
    pub model_connect_timeout_seconds: u64,
    pub model_first_token_timeout_seconds: u64,
    pub model_idle_timeout_seconds: u64,
    pub model_total_timeout_seconds: u64,
    pub model_max_retries: u32,
    /// Instance-wide providers every organization can use.
    pub providers: Vec<InstanceProvider>,
    /// Where people reach this instance; `https://…` turns on `Secure` `__Host-` cookies.
    pub public_url: Option<String>,
    /// Sessions end after this many minutes without a request…
    pub session_idle_minutes: u64,
    /// …and this many hours after sign-in, however active.
    pub session_absolute_hours: u64,
    pub invitation_ttl_hours: u64,
    /// Password reset links live at most 30 minutes.
    pub reset_ttl_minutes: u64,
    /// Runs an organization may have queued or running at once (0 = no cap).
    pub org_max_active_runs: i64,
    /// Audit entries older than this many days are deleted (0 = keep forever).
    pub audit_retention_days: u64,
    /// Request limits per API key / user and route class, and sign-in throttling.
    pub rate_limits: agentry_ratelimit::PoliciesConfig,
    /// `redis://…`: rate limits shared by every replica; without it they are per process.
    pub redis_url: Option<String>,
    /// Origins (besides this instance's own) allowed to send cookie-authenticated requests.
    pub trusted_origins: Vec<String>,
    /// `smtp://user:pass@host:587` (STARTTLS) or `smtps://…:465`, for invitations and resets.
    pub smtp_url: Option<String>,
    /// Write emails as .eml files here instead (development).
    pub mail_dir: Option<PathBuf>,
    pub mail_from: String,
    /// Email of the owner account created on first start.
    pub admin_email: String,
    /// Allow identity providers on plain http (development only).
    pub sso_allow_http: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("agentry-data"),
            bind: "127.0.0.1:7700".into(),
            database_url: None,
            database_max_connections: 16,
            worker_concurrency: 64,
            lease_seconds: 30,
            thread_window: 50,
            log_format: "json".into(),
            http_allow_hosts: Vec::new(),
            model_connect_timeout_seconds: 10,
            model_first_token_timeout_seconds: 120,
            model_idle_timeout_seconds: 60,
            model_total_timeout_seconds: 600,
            model_max_retries: 2,
            providers: Vec::new(),
            public_url: None,
            session_idle_minutes: 8 * 60,
            session_absolute_hours: 7 * 24,
            invitation_ttl_hours: 7 * 24,
            reset_ttl_minutes: 30,
            org_max_active_runs: 1000,
            audit_retention_days: 0,
            rate_limits: agentry_ratelimit::PoliciesConfig::default(),
            redis_url: None,
            trusted_origins: Vec::new(),
            smtp_url: None,
            mail_dir: None,
            mail_from: "Agentry <agentry@localhost.localdomain>".into(),
            admin_email: "admin@localhost.localdomain".into(),
            sso_allow_http: false,
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    anyhow::bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("agentry.toml")),
        }
        // Secrets, client settings and the test suites' own `AGENTRY_TEST_*` switches are not
        // server configuration.
        let env = Env::prefixed("AGENTRY_")
            .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
            .split("__");
        figment = figment.merge(env.ignore(&[
            "ADMIN_TOKEN",
            "ADMIN_PASSWORD",
            "MASTER_KEY",
            "MASTER_KEY_PREVIOUS",
            "NEW_MASTER_KEY",
            "NEW_PASSWORD",
            "TOKEN",
            "URL",
            "CONFIG",
            "LOG",
        ]));
        Ok(figment.extract()?)
    }

    pub fn identity(&self, bind: &str) -> agentry_engine::IdentityConfig {
        use std::time::Duration;
        agentry_engine::IdentityConfig {
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{bind}")),
            session_idle: Duration::from_secs(self.session_idle_minutes.max(1) * 60),
            session_absolute: Duration::from_secs(self.session_absolute_hours.max(1) * 3600),
            invitation_ttl: Duration::from_secs(self.invitation_ttl_hours.max(1) * 3600),
            reset_ttl: Duration::from_secs(self.reset_ttl_minutes.clamp(1, 30) * 60),
            org_max_active_runs: self.org_max_active_runs,
            audit_retention: (self.audit_retention_days > 0)
                .then(|| Duration::from_secs(self.audit_retention_days * 86_400)),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("agentry.db").display()))
    }
}
