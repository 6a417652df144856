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
        figment = figment.merge(Env::prefixed("AGENTRY_").split("__").ignore(&[
            "ADMIN_TOKEN",
            "MASTER_KEY",
            "TOKEN",
            "URL",
            "CONFIG",
            "LOG",
            "TEST_DATABASE_URL",
        ]));
        Ok(figment.extract()?)
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("agentry.db").display()))
    }
}
