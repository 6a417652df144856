//! `agentry bench --workflows`: what the workflow engine adds, measured through a real
//! `agentry serve` (a child process of this binary) over HTTP.
//!
//! 1. Per-node overhead: a linear workflow of 1,000 `transform` nodes (jq `.x + 1`), every node
//!    journaled; the time between consecutive node commits, p50 and p95, over several runs.
//! 2. Fan-out: 100 runs started at once, each with 10 parallel branches (3 nodes each).
//! 3. Recovery: runs in flight when the server is SIGKILLed; the time from the restart to the
//!    server being ready and to the first node committed after it (the previous holder's
//!    lease must expire first, so that is measured with a 5 s lease). A graceful SIGTERM
//!    hands leases back on the way down, so there is nothing to wait for.

use crate::bench::{Api, TOKEN, percentile, rss_kib, spawn_server};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const LEASE_SECONDS: &str = "5";

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        Ok(r.json().await?)
    }

    async fn create_workflow(&self, definition: Value) -> anyhow::Result<()> {
        self.post("/workflows", definition).await.map(|_| ())
    }

    async fn start(&self, slug: &str, input: Value) -> anyhow::Result<String> {
        let run = self
            .post(&format!("/workflows/{slug}/runs"), json!({"input": input}))
            .await?;
        run["id"]
            .as_str()
            .map(str::to_owned)
            .context("a run without an id")
    }

    async fn wait_end(&self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let run = self.get(&format!("/workflow-runs/{id}")).await?;
            match run["status"].as_str() {
                Some("completed") => return Ok(run),
                Some("failed" | "cancelled") => bail!("run {id} ended {}", run),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!("run {id} did not finish in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `nodes` nodes in all: `nodes - 1` transforms, then the end.
fn chain(name: &str, nodes: usize) -> Value {
    let transforms = nodes - 1;
    let mut map = serde_json::Map::new();
    for i in 0..transforms {
        let next = if i + 1 == transforms {
            "done".to_string()
        } else {
            format!("n{}", i + 1)
        };
        map.insert(
            format!("n{i}"),
            json!({"type": "transform", "jq": ".x + 1", "into": "x", "next": next}),
        );
    }
    map.insert(
        "done".into(),
        json!({"type": "end", "output": {"x": "{{ x }}"}}),
    );
    json!({"apiVersion": "agentry/v1", "kind": "Workflow", "metadata": {"name": name},
           "spec": {"start": "n0", "limits": {"max_steps": 5000}, "nodes": map}})
}

fn fan(name: &str, branches: usize) -> Value {
    let mut map = serde_json::Map::new();
    let names: Vec<String> = (0..branches).map(|b| format!("b{b}a")).collect();
    map.insert(
        "init".into(),
        json!({"type": "transform", "jq": "0", "into": "x", "next": "split"}),
    );
    map.insert(
        "split".into(),
        json!({"type": "parallel", "branches": names, "join": "join", "into": "parts"}),
    );
    for b in 0..branches {
        map.insert(format!("b{b}a"), json!({"type": "transform", "jq": ".x + 1", "into": format!("v{b}"), "next": format!("b{b}b")}));
        map.insert(format!("b{b}b"), json!({"type": "transform", "jq": format!(".v{b} * 2"), "into": format!("w{b}"), "next": format!("b{b}c")}));
        map.insert(format!("b{b}c"), json!({"type": "transform", "template": "branch {{ x }}", "into": format!("s{b}"), "next": "join"}));
    }
    map.insert(
        "join".into(),
        json!({"type": "transform", "jq": ".parts | length", "into": "n", "next": "done"}),
    );
    map.insert(
        "done".into(),
        json!({"type": "end", "output": {"n": "{{ n }}"}}),
    );
    json!({"apiVersion": "agentry/v1", "kind": "Workflow", "metadata": {"name": name},
           "spec": {"start": "init", "nodes": map}})
}

fn ended_at(node: &Value) -> Option<DateTime<Utc>> {
    node["ended_at"].as_str()?.parse().ok()
}

/// Gaps between consecutive node commits of a run (the per-node cost, commit included).
fn node_gaps(run: &Value) -> Vec<Duration> {
    let times: Vec<DateTime<Utc>> = run["nodes"]
        .as_array()
        .map(|n| n.iter().filter_map(ended_at).collect())
        .unwrap_or_default();
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).to_std().unwrap_or_default())
        .collect()
}

fn run_span(run: &Value) -> Option<Duration> {
    let created: DateTime<Utc> = run["created_at"].as_str()?.parse().ok()?;
    let ended: DateTime<Utc> = run["ended_at"].as_str()?.parse().ok()?;
    (ended - created).to_std().ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn bench(database_url: Option<String>) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("agentry-wf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database_url =
        database_url.unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    let backend = if database_url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut server = spawn_server(
        &dir,
        &database_url,
        &[("AGENTRY_LEASE_SECONDS", LEASE_SECONDS)],
    )
    .await?;
    let mut out = format!(
        "## agentry bench --workflows — {backend}, {} cores\n\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // 1. Per-node overhead on a 1,000-node chain.
    server.api.create_workflow(chain("chain", 1000)).await?;
    let warm = server.api.start("chain", json!({"x": 0})).await?;
    server.api.wait_end(&warm, Duration::from_secs(300)).await?;
    let mut gaps = Vec::new();
    let mut per_run = Vec::new();
    for _ in 0..5 {
        let id = server.api.start("chain", json!({"x": 0})).await?;
        let run = server.api.wait_end(&id, Duration::from_secs(300)).await?;
        if run["output"]["x"] != 999 {
            bail!("the chain computed {}", run["output"]);
        }
        gaps.extend(node_gaps(&run));
        if let Some(span) = run_span(&run) {
            per_run.push(span);
        }
    }
    gaps.sort();
    per_run.sort();
    out.push_str(&format!(
        "**1,000-node chain** (999 `transform` nodes and the end, 5 runs, every node journaled): per node p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms; whole run p50 {:.0} ms ({:.3} ms/node).\n\n",
        ms(percentile(&gaps, 0.50)),
        ms(percentile(&gaps, 0.95)),
        ms(percentile(&gaps, 0.99)),
        ms(percentile(&per_run, 0.50)),
        ms(percentile(&per_run, 0.50)) / 1000.0,
    ));

    // 2. 100 concurrent runs × 10 parallel branches.
    server.api.create_workflow(fan("fan", 10)).await?;
    let warm = server.api.start("fan", json!({})).await?;
    server.api.wait_end(&warm, Duration::from_secs(60)).await?;
    let t = Instant::now();
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let api = Api {
            http: server.api.http.clone(),
            url: server.api.url.clone(),
        };
        starts.spawn(async move { api.start("fan", json!({})).await });
    }
    let mut ids = Vec::new();
    while let Some(id) = starts.join_next().await {
        ids.push(id??);
    }
    let mut spans = Vec::new();
    for id in &ids {
        let run = server.api.wait_end(id, Duration::from_secs(300)).await?;
        if run["output"]["n"] != 10 {
            bail!("a fan run computed {}", run["output"]);
        }
        if let Some(s) = run_span(&run) {
            spans.push(s);
        }
    }
    let wall = t.elapsed();
    spans.sort();
    let nodes = 100 * (10 * 3 + 4);
    out.push_str(&format!(
        "**100 concurrent runs × 10 parallel branches** ({nodes} node executions): all done in {:.2} s — {:.0} runs/s, {:.0} nodes/s; run latency p50 {:.0} ms, p95 {:.0} ms.\n\n",
        wall.as_secs_f64(),
        100.0 / wall.as_secs_f64(),
        nodes as f64 / wall.as_secs_f64(),
        ms(percentile(&spans, 0.50)),
        ms(percentile(&spans, 0.95)),
    ));
    let peak = rss_kib(server.pid, "VmHWM");
    crate::apply_cmd::print_stdout(&out);
    out.clear();

    // 3. Restart to first resumed node: after SIGKILL, then after SIGTERM.
    {
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(server.api.start("chain", json!({"x": 0})).await?);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.child.kill().await?;
        let t = Instant::now();
        let t0 = Utc::now();
        server = spawn_server(
            &dir,
            &database_url,
            &[("AGENTRY_LEASE_SECONDS", LEASE_SECONDS)],
        )
        .await?;
        let ready = server.ready;
        // The first node commit stamped after the restart began, across the runs.
        let first = loop {
            let mut earliest: Option<DateTime<Utc>> = None;
            for id in &ids {
                let run = server.api.get(&format!("/workflow-runs/{id}")).await?;
                let resumed = run["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(ended_at)
                    .filter(|e| *e > t0)
                    .min();
                if let Some(e) = resumed {
                    earliest = Some(earliest.map_or(e, |x| x.min(e)));
                }
            }
            if let Some(e) = earliest {
                break (e - t0).to_std().unwrap_or_default();
            }
            if t.elapsed() > Duration::from_secs(60) {
                let sample = server
                    .api
                    .get(&format!("/workflow-runs/{}", ids[0]))
                    .await?;
                bail!(
                    "no run resumed within 60 s of the restart (t0 {t0}); a run: status {}, started {}, ended {}, {} nodes, last {}",
                    sample["status"],
                    sample["started_at"],
                    sample["ended_at"],
                    sample["nodes"].as_array().map_or(0, Vec::len),
                    sample["nodes"]
                        .as_array()
                        .and_then(|n| n.last())
                        .map(|n| n["ended_at"].clone())
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        for id in &ids {
            server.api.wait_end(id, Duration::from_secs(600)).await?;
        }
        out.push_str(&format!(
            "**Restart after SIGKILL** (20 runs of the 1,000-node chain in flight, lease {LEASE_SECONDS} s): ready in {:.0} ms; first node committed after the restart at {:.0} ms (the dead holder's lease must expire first); all 20 runs then completed.\n\n",
            ms(ready),
            ms(first),
        ));
    }
    out.push_str(&format!(
        "Peak RSS during the fan-out: {:.1} MB\n",
        peak as f64 / 1024.0
    ));
    let _ = server.child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    crate::apply_cmd::print_stdout(&out);
    Ok(ExitCode::SUCCESS)
}
