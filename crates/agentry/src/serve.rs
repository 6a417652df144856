//! `agentry serve` and `agentry migrate`.

use crate::config::Config;
use crate::logging;
use agentry_engine::secrets::Secrets;
use agentry_engine::service::api_keys;
use agentry_engine::{EngineConfig, Platform, PlatformParts};
use agentry_http::AppState;
use agentry_store::{Db, orgs};
use agentry_tools::{GuardConfig, ToolRegistry, ToolsConfig};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ServeArgs {
    /// Data directory (SQLite database, master key).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:7700 (port 0 picks a free port).
    #[arg(long)]
    bind: Option<String>,
}

#[derive(Args)]
pub struct MigrateArgs {
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

async fn open_database(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let url = config.database_url();
    Db::connect(&url, config.database_max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                agentry_store::redact_url(&url)
            )
        })
}

pub async fn migrate(config_file: Option<PathBuf>, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(config_file.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    logging::init(config.log_format == "json");
    let db = open_database(&config).await?;
    orgs::ensure_default(&db).await?;
    db.close().await;
    eprintln!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

pub async fn serve(config_file: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut config = Config::load(config_file.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    logging::init(config.log_format == "json");

    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    let (platform, db) = open_platform(&config, &addr.to_string()).await?;
    let boot = api_keys::bootstrap_admin(
        &platform,
        std::env::var("AGENTRY_ADMIN_TOKEN").ok().as_deref(),
        &config.admin_email,
        std::env::var("AGENTRY_ADMIN_PASSWORD").ok().as_deref(),
    )
    .await?;
    let limiter = match &config.redis_url {
        Some(url) => agentry_ratelimit::Limiter::redis(url)
            .with_context(|| format!("AGENTRY_REDIS_URL {}", agentry_store::redact_url(url)))?,
        None => agentry_ratelimit::Limiter::in_process(),
    };
    let workers = platform
        .config
        .run_workers
        .then(|| platform.start_workers());
    let app = agentry_http::router(AppState {
        limiter,
        policies: std::sync::Arc::new(agentry_ratelimit::Policies::from_config(
            &config.rate_limits,
        )),
        trusted_origins: std::sync::Arc::new(config.trusted_origins.clone()),
        ..AppState::new(platform.clone(), agentry_http::install_metrics())
    });
    tracing::info!(
        %addr,
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        database = if db.pg_pool().is_some() { "postgres" } else { "sqlite" },
        "agentry ready"
    );
    eprintln!("Agentry is listening on http://{addr}");
    if let Some((email, password)) = &boot.account {
        eprintln!();
        eprintln!("Owner account for the dashboard: {email}");
        if let Some(password) = password {
            eprintln!("    password (shown once; change it after signing in): {password}");
        }
    }
    if let Some(token) = &boot.api_key {
        eprintln!();
        eprintln!("Admin API token (shown once; store it now):");
        eprintln!("    {token}");
        eprintln!("hint: export AGENTRY_URL=http://{addr} AGENTRY_TOKEN={token}");
        eprintln!();
    }
    let stopping = platform.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing or releasing runs in flight");
        // Ends event streams and waiting requests, so open connections let go.
        stopping.begin_shutdown();
    })
    .await?;
    if let Some(workers) = workers {
        workers.shutdown(&platform).await;
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Opens the database (migrating it) and assembles the platform, as `serve` and the admin
/// commands need it. `bind` is the address used for links when no public URL is configured.
pub async fn open_platform(
    config: &Config,
    bind: &str,
) -> anyhow::Result<(std::sync::Arc<Platform>, Db)> {
    let db = open_database(config).await?;
    orgs::ensure_default(&db).await?;
    let secrets = load_secrets(config)?;
    let egress = GuardConfig {
        allow_hosts: config.http_allow_hosts.clone(),
        ..GuardConfig::default()
    };
    let tools = ToolRegistry::try_builtin(ToolsConfig {
        http: egress.clone(),
        ..ToolsConfig::default()
    })?;
    let model_resolver =
        agentry_tools::guard::GuardedHttpClient::new(egress.clone())?.dns_resolver();
    let timeouts = agentry_llm::Timeouts {
        connect: Duration::from_secs(config.model_connect_timeout_seconds),
        first_token: Duration::from_secs(config.model_first_token_timeout_seconds),
        idle: Duration::from_secs(config.model_idle_timeout_seconds),
        total: Duration::from_secs(config.model_total_timeout_seconds),
    };
    let engine = EngineConfig {
        worker_concurrency: config.worker_concurrency.max(1),
        run_workers: config.worker_concurrency > 0,
        lease: Duration::from_secs(config.lease_seconds.max(2)),
        thread_window: config.thread_window,
        instance_providers: config.providers.clone(),
        model_retry: agentry_llm::RetryPolicy {
            max_retries: config.model_max_retries,
            ..Default::default()
        },
        model_timeouts: timeouts.clone(),
        identity: config.identity(bind),
        redis_url: config.redis_url.clone(),
        ..EngineConfig::default()
    };
    let data_dir = config.data_dir.clone();
    let file_mode = std::env::var("AGENTRY_MASTER_KEY").is_err();
    let platform = Platform::new(PlatformParts {
        db: db.clone(),
        secrets,
        reload_keys: file_mode.then(|| -> agentry_engine::vault::ReloadKeys {
            Box::new(move || Secrets::load(None, None, &data_dir))
        }),
        egress,
        sso_allow_http: config.sso_allow_http,
        mailer: mailer(config)?,
        tools,
        config: engine,
        http: agentry_llm::http_client(timeouts.connect, Some(model_resolver)),
    })?;
    Ok((platform, db))
}

/// The master key (and, during a rotation, the previous ones) from the environment or the data
/// directory.
pub fn load_secrets(config: &Config) -> anyhow::Result<Secrets> {
    Ok(Secrets::load(
        std::env::var("AGENTRY_MASTER_KEY").ok().as_deref(),
        std::env::var("AGENTRY_MASTER_KEY_PREVIOUS").ok().as_deref(),
        &config.data_dir,
    )?)
}

fn mailer(config: &Config) -> anyhow::Result<Option<agentry_engine::mailer::Mailer>> {
    use agentry_engine::mailer::Mailer;
    Ok(match (&config.smtp_url, &config.mail_dir) {
        (Some(url), _) => Some(Mailer::smtp(url, &config.mail_from)?),
        (None, Some(dir)) => Some(Mailer::files(dir.clone(), &config.mail_from)?),
        (None, None) => None,
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
