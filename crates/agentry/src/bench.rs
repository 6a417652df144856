//! `agentry bench`: starts the fake model server (in this process) and a real `agentry serve`
//! (a child process of this same binary), then measures what the platform adds.
//!
//! Workload: an agent with the `calculator` tool whose model asks for the tool three times and
//! then answers: 4 model calls and 3 tool calls per run, every step journaled. Runs are started
//! with `wait: true`, so a run's latency is from the POST to its end.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const TOKEN: &str = "agt_bench_admin_token_0123456789abcdef0123456789abcdef";

#[derive(Args)]
pub struct BenchArgs {
    /// Database for the server under test (default: a fresh SQLite file in a temp dir).
    #[arg(long)]
    database_url: Option<String>,
    /// Concurrency levels (clients with a run in flight each).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Model latencies to test, in milliseconds per model call.
    #[arg(long, value_delimiter = ',', default_value = "0,50")]
    latency_ms: Vec<u64>,
    /// Runs per measurement (at least 10 per client).
    #[arg(long, default_value_t = 300)]
    runs: usize,
    /// Price the fake model and put an org budget (notify at 50%, block at 100%, never reached)
    /// in front of every call: measures the ledger, reservation and settlement path.
    #[arg(long)]
    with_budget: bool,
    /// Measure workflows instead of agent runs: per-node overhead of a 1,000-node transform
    /// chain, 100 concurrent runs of 10 parallel branches, and restart to first resumed node.
    #[arg(long)]
    workflows: bool,
}

struct Measurement {
    latency_ms: u64,
    concurrency: usize,
    runs: usize,
    runs_per_second: f64,
    p50: Duration,
    p95: Duration,
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(false);
    if args.workflows {
        return crate::bench_workflows::bench(args.database_url.clone()).await;
    }
    let fake = agentry_fakellm::start("127.0.0.1:0".parse()?).await?;
    let dir = std::env::temp_dir().join(format!("agentry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    let backend = if database_url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };

    let Spawned {
        mut child,
        api,
        pid,
        ready,
    } = spawn_server(&dir, &database_url, &[]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(pid, "VmRSS");

    api.post(
        "/providers",
        json!({"name": "fake", "kind": "openai", "base_url": fake.base_url()}),
    )
    .await?;
    if args.with_budget {
        api.post(
            "/prices",
            json!({"provider": "fake", "model": "tool-loop-3", "input": "1", "output": "2"}),
        )
        .await?;
        api.post(
            "/budgets",
            json!({"name": "bench", "scope": {"kind": "org"}, "period": "day", "limit_usd": "100000",
                   "thresholds": [{"percent": 50, "action": "notify"}, {"percent": 100, "action": "block"}]}),
        )
        .await?;
    }
    let mut results = Vec::new();
    for &latency in &args.latency_ms {
        let slug = format!("bench-{latency}");
        let model = if latency == 0 {
            "fake/tool-loop-3".to_string()
        } else {
            format!("fake/tool-loop-3+latency={latency}")
        };
        api.post(
            "/agents",
            json!({"slug": slug, "name": slug, "instructions": "Use the calculator.", "model": model, "tools": ["calculator"]}),
        )
        .await?;
        // Warm up connections, caches and prepared statements.
        run_batch(&api, &slug, 4, 20).await?;
        for &c in &args.concurrency {
            let runs = args.runs.max(c * 10);
            let (elapsed, mut latencies) = run_batch(&api, &slug, c, runs).await?;
            latencies.sort();
            results.push(Measurement {
                latency_ms: latency,
                concurrency: c,
                runs,
                runs_per_second: runs as f64 / elapsed.as_secs_f64(),
                p50: percentile(&latencies, 0.50),
                p95: percentile(&latencies, 0.95),
            });
        }
    }
    let peak_rss = rss_kib(pid, "VmHWM");
    let _ = child.kill().await;
    fake.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let mut out = String::new();
    out.push_str(&format!(
        "## agentry bench — {backend}, {} cores{}\n\nWorkload: 4 model calls + 3 calculator calls per run, every step journaled; runs started with `wait: true`.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if args.with_budget {
            ", priced model and an org budget on every call"
        } else {
            ""
        }
    ));
    out.push_str("| model latency | concurrency | runs | runs/s | run p50 | run p95 | overhead per model call p50 / p95 | efficiency vs ideal |\n|---|---|---|---|---|---|---|---|\n");
    for m in &results {
        let model_time = Duration::from_millis(4 * m.latency_ms);
        let per_call = |d: Duration| d.saturating_sub(model_time).as_secs_f64() * 1000.0 / 4.0;
        let efficiency = if m.latency_ms > 0 {
            let ideal = m.concurrency as f64 / (4.0 * m.latency_ms as f64 / 1000.0);
            format!(
                "{:.0}% of {:.0} runs/s",
                100.0 * m.runs_per_second / ideal,
                ideal
            )
        } else {
            "—".to_string()
        };
        out.push_str(&format!(
            "| {} ms | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.3} / {:.3} ms | {} |\n",
            m.latency_ms,
            m.concurrency,
            m.runs,
            m.runs_per_second,
            m.p50.as_secs_f64() * 1000.0,
            m.p95.as_secs_f64() * 1000.0,
            per_call(m.p50),
            per_call(m.p95),
            efficiency
        ));
    }
    out.push_str(&format!(
        "\nStart to ready: {:.0} ms · idle RSS: {:.1} MB · peak RSS: {:.1} MB\n",
        ready.as_secs_f64() * 1000.0,
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    ));
    crate::apply_cmd::print_stdout(&out);
    Ok(ExitCode::SUCCESS)
}

/// A server this benchmark started (killed when dropped).
pub(crate) struct Spawned {
    pub(crate) child: tokio::process::Child,
    pub(crate) api: Api,
    pub(crate) pid: u32,
    /// From spawning to `/readyz` answering 200.
    pub(crate) ready: Duration,
}

/// Starts `agentry serve` (this binary) on a free port and waits until it is ready.
pub(crate) async fn spawn_server(
    dir: &std::path::Path,
    database_url: &str,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Spawned> {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("AGENTRY_DATABASE_URL", database_url)
        .env("AGENTRY_ADMIN_TOKEN", TOKEN)
        .env("AGENTRY_LOG", "warn")
        .env("AGENTRY_WORKER_CONCURRENCY", "128")
        // The fake model listens on loopback, and the load exceeds the default request limits.
        .env("AGENTRY_HTTP_ALLOW_HOSTS", "[\"127.0.0.1\"]")
        .env("AGENTRY_RATE_LIMITS__RUN_START__LIMIT", "1000000")
        .env("AGENTRY_RATE_LIMITS__GENERAL__LIMIT", "1000000")
        .env_remove("AGENTRY_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().context("starting agentry serve")?;
    let pid = child.id().unwrap_or(0);
    let url = read_listen_url(&mut child).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the server did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Spawned {
        child,
        api: Api { http, url },
        pid,
        ready: started.elapsed(),
    })
}

pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
}

impl Api {
    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {body}");
        }
        Ok(body)
    }
}

/// Runs `total` runs with `concurrency` clients; returns wall time and per-run latencies.
async fn run_batch(
    api: &Api,
    slug: &str,
    concurrency: usize,
    total: usize,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let http = api.http.clone();
        let url = format!("{}/api/v1/agents/{slug}/runs", api.url);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"input": "go", "wait": true}))
                    .send()
                    .await?;
                let body: Value = r.json().await?;
                if body["status"] != "completed" {
                    bail!("a run did not complete: {body}");
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((started.elapsed(), all))
}

pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) async fn read_listen_url(child: &mut tokio::process::Child) -> anyhow::Result<String> {
    use tokio::io::AsyncBufReadExt;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("Agentry is listening on ") {
                let url = url.trim().to_string();
                // Keep draining stderr so the server never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(url);
            }
        }
        bail!("the server exited before listening")
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .context("the server did not start in 30 s")?
}

/// A memory figure of a process from /proc (Linux), in KiB; 0 elsewhere.
pub(crate) fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
