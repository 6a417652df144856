//! The `agentry` binary: one command line for running the platform (`serve`, `migrate`), for
//! driving it (`apply`, `run`, `runs`), for trying it offline (`dev fake-llm`) and for measuring
//! it (`bench`).
//!
//! Output rules: data goes to stdout, everything else (progress, logs, hints) to stderr.

// The command line is the one place where printing is the job (libraries must not print).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod admin_cmd;
mod apply_cmd;
mod bench;
mod bench_workflows;
mod client;
mod config;
mod logging;
mod run_cmd;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "agentry",
    version,
    about = "A self-hosted AI agent platform in one binary"
)]
struct Cli {
    /// Configuration file (default: ./agentry.toml when present).
    #[arg(long, global = true, env = "AGENTRY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API, dashboard and workers.
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate(serve::MigrateArgs),
    /// Create or update providers and agents from YAML files (prints a plan).
    Apply(apply_cmd::ApplyArgs),
    /// Run an agent and stream its answer to stdout (tool activity to stderr).
    Run(run_cmd::RunArgs),
    /// List or show runs.
    Runs {
        #[command(subcommand)]
        command: run_cmd::RunsCommand,
    },
    /// Developer tools.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Measure platform overhead and throughput against the fake model server.
    Bench(bench::BenchArgs),
    /// Operator commands: accounts, organizations, master-key rotation.
    Admin {
        #[command(subcommand)]
        command: admin_cmd::AdminCommand,
    },
}

#[derive(Subcommand)]
enum DevCommand {
    /// Start the scripted OpenAI-compatible model server (no API key needed).
    FakeLlm {
        #[arg(long, default_value_t = 7701)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
}

fn main() -> ExitCode {
    // One process-wide TLS crypto provider, before any client or pool exists.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(cli.config, args).await,
            Command::Migrate(args) => serve::migrate(cli.config, args).await,
            Command::Apply(args) => apply_cmd::apply(args).await,
            Command::Run(args) => run_cmd::run(args).await,
            Command::Runs { command } => run_cmd::runs(command).await,
            Command::Dev {
                command: DevCommand::FakeLlm { port, host },
            } => fake_llm(&host, port).await,
            Command::Bench(args) => bench::bench(args).await,
            Command::Admin { command } => admin_cmd::admin(cli.config, command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn fake_llm(host: &str, port: u16) -> anyhow::Result<ExitCode> {
    logging::init(false);
    let addr: std::net::SocketAddr = format!("{host}:{port}").parse()?;
    let handle = agentry_fakellm::start(addr).await?;
    eprintln!("fake model server listening on {}", handle.base_url());
    eprintln!(
        "hint: register it with  curl -X POST $AGENTRY_URL/api/v1/providers -H \"Authorization: Bearer $AGENTRY_TOKEN\" -H 'Content-Type: application/json' -d '{{\"name\":\"fake\",\"kind\":\"openai\",\"base_url\":\"{}\"}}'",
        handle.base_url()
    );
    eprintln!(
        "hint: models: any name echoes; 'tool-loop-3' calls the calculator 3 times; add '+latency=200' to slow it down"
    );
    serve::shutdown_signal().await;
    Ok(ExitCode::SUCCESS)
}
