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

    let db = open_database(&config).await?;
    orgs::ensure_default(&db).await?;
    let secrets = Secrets::load(
        std::env::var("AGENTRY_MASTER_KEY").ok().as_deref(),
        &config.data_dir,
    )?;
    let tools = ToolRegistry::try_builtin(ToolsConfig {
        http: GuardConfig {
            allow_hosts: config.http_allow_hosts.clone(),
            ..GuardConfig::default()
        },
        ..ToolsConfig::default()
    })?;
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
        ..EngineConfig::default()
    };
    let platform = Platform::new(PlatformParts {
        db: db.clone(),
        secrets,
        tools,
        config: engine,
        http: agentry_llm::http_client(timeouts.connect),
    });
    let admin_token = api_keys::bootstrap_admin(
        &platform,
        std::env::var("AGENTRY_ADMIN_TOKEN").ok().as_deref(),
    )
    .await?;

    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    let workers = platform
        .config
        .run_workers
        .then(|| platform.start_workers());
    let app = agentry_http::router(AppState {
        platform: platform.clone(),
        metrics: agentry_http::install_metrics(),
    });
    tracing::info!(
        %addr,
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        database = if db.pg_pool().is_some() { "postgres" } else { "sqlite" },
        "agentry ready"
    );
    eprintln!("Agentry is listening on http://{addr}");
    if let Some(token) = admin_token {
        eprintln!();
        eprintln!("Admin API token (shown once; store it now):");
        eprintln!("    {token}");
        eprintln!("hint: export AGENTRY_URL=http://{addr} AGENTRY_TOKEN={token}");
        eprintln!();
    }
    let stopping = platform.clone();
    axum::serve(listener, app)
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
