//! Money: the cost ledger against the provider's reported usage, reports and exports, price
//! overrides, budgets that block concurrent runs with at most one call of overshoot, threshold
//! webhooks signed the Standard Webhooks way.

use crate::harness::TestApp;
use agentry_fakellm::Reply;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

/// Exact USD strings → pico-USD, for sums.
fn pico(usd: &str) -> i128 {
    let (whole, frac) = usd.split_once('.').unwrap_or((usd, ""));
    let mut f = frac.to_string();
    while f.len() < 12 {
        f.push('0');
    }
    whole.parse::<i128>().unwrap() * 1_000_000_000_000 + f.parse::<i128>().unwrap()
}

/// (input, output) tokens the provider reported for a run's model calls, from its steps.
fn run_tokens(run: &Value) -> (i64, i64) {
    let steps = run["steps"].as_array().expect("steps");
    steps
        .iter()
        .filter(|s| s["kind"] == "llm")
        .fold((0, 0), |(i, o), s| {
            (
                i + s["input_tokens"].as_i64().unwrap(),
                o + s["output_tokens"].as_i64().unwrap(),
            )
        })
}

async fn run_to_end(app: &TestApp, slug: &str, body: Value) -> Value {
    let r = app.post(&format!("/api/v1/agents/{slug}/runs"), body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    app.wait_run(&id, WAIT).await;
    app.get(&format!("/api/v1/runs/{id}")).await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_equals_reported_usage_and_reports_group_it() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    // USD per million tokens: 2 in, 8 out. The catalogue knows nothing of the fake's models.
    let r = app
        .post(
            "/api/v1/prices",
            json!({"provider": "fake", "model": "priced", "input": "2", "output": 8}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["input"], "2");
    assert_eq!(r.body["output"], "8");
    for bad in [
        json!({"model": "m", "input": "-1", "output": "1"}),
        json!({"model": "m", "input": "0.0000001", "output": "1"}),
        json!({"model": "", "input": "1", "output": "1"}),
    ] {
        let r = app.post("/api/v1/prices", bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "validation_failed");
    }
    app.create_agent("paid", "priced", &["calculator"]).await;
    app.create_agent("free", "unpriced", &[]).await;

    let a = run_to_end(
        &app,
        "paid",
        json!({"input": "what is 6*7?", "end_user": "cust-1"}),
    )
    .await;
    let b = run_to_end(&app, "paid", json!({"input": "hello there"})).await;
    let c = run_to_end(&app, "free", json!({"input": "no price for me"})).await;
    for run in [&a, &b, &c] {
        assert_eq!(run["status"], "completed", "{run}");
    }
    let (ai, ao) = run_tokens(&a);
    let (bi, bo) = run_tokens(&b);
    let (ci, co) = run_tokens(&c);
    assert!(ai > 0 && ao > 0 && ci > 0);

    let r = app.get("/api/v1/costs?group_by=agent").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let lines = r.body["data"].as_array().unwrap();
    let line = |label: &str| {
        lines
            .iter()
            .find(|l| l["label"] == label)
            .unwrap_or_else(|| panic!("no line for {label}: {lines:?}"))
            .clone()
    };
    let paid = line("paid");
    assert_eq!(paid["calls"], 3, "two model calls for 6*7, one for hello");
    assert_eq!(paid["input_tokens"], ai + bi);
    assert_eq!(paid["output_tokens"], ao + bo);
    assert_eq!(paid["unpriced_calls"], 0);
    let expected = i128::from(ai + bi) * 2_000_000 + i128::from(ao + bo) * 8_000_000;
    assert_eq!(pico(paid["cost_usd"].as_str().unwrap()), expected);
    let free = line("free");
    assert_eq!(free["calls"], 1);
    assert_eq!(free["unpriced_calls"], 1);
    assert_eq!(free["input_tokens"], ci);
    assert_eq!(free["output_tokens"], co);
    assert_eq!(free["cost_usd"], "0");
    assert_eq!(r.body["total"]["calls"], 4);
    assert_eq!(
        pico(r.body["total"]["cost_usd"].as_str().unwrap()),
        expected
    );

    // The unknown price is visible in the trace, not guessed.
    let events = app.events(c["id"].as_str().unwrap(), None, 100).await;
    let completed = events
        .iter()
        .find(|e| e.event == "llm.completed")
        .expect("llm.completed");
    assert_eq!(completed.data["cost_usd"], Value::Null);
    assert!(
        completed.data["warning"]
            .as_str()
            .unwrap()
            .contains("fake/unpriced")
    );
    let events = app.events(b["id"].as_str().unwrap(), None, 100).await;
    let completed = events.iter().find(|e| e.event == "llm.completed").unwrap();
    assert_eq!(completed.data["price_source"], "org_provider");

    // Other groupings see the same totals.
    for group in ["model", "day", "api_key", "end_user", "workspace", "user"] {
        let r = app.get(&format!("/api/v1/costs?group_by={group}")).await;
        assert_eq!(r.status, 200, "{group}: {:?}", r.body);
        let calls: i64 = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["calls"].as_i64().unwrap())
            .sum();
        assert_eq!(calls, 4, "{group}");
    }
    let r = app.get("/api/v1/costs?group_by=end_user").await;
    let cust = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "cust-1")
        .expect("end user line")
        .clone();
    assert_eq!(cust["input_tokens"], ai);
    let r = app.get("/api/v1/costs?group_by=model").await;
    assert!(
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "priced" && l["provider"] == "fake")
    );
    let r = app.get("/api/v1/costs?group_by=api_key").await;
    assert!(
        r.body["data"][0]["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("admin")),
        "runs are attributed to the key: {:?}",
        r.body
    );

    // The CSV export carries the same numbers.
    let resp = app
        .http
        .get(app.url("/api/v1/costs/export?group_by=agent"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    let mut rows = csv.lines();
    assert!(rows.next().unwrap().starts_with("group_by,key,label"));
    let paid_row = csv
        .lines()
        .find(|l| l.contains(",\"paid\","))
        .expect("paid row");
    assert!(
        paid_row.ends_with(&format!("\"{}\"", paid["cost_usd"].as_str().unwrap())),
        "{paid_row}"
    );

    // A range before the runs is empty; bad parameters are clear errors.
    let r = app
        .get("/api/v1/costs?group_by=day&from=2020-01-01&to=2020-01-31")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"], json!([]));
    for q in [
        "group_by=colour",
        "from=yesterday",
        "from=2026-02-01&to=2026-01-01",
    ] {
        let r = app.get(&format!("/api/v1/costs?{q}")).await;
        assert_eq!(r.status, 422, "{q}: {:?}", r.body);
    }
}

/// Receives HTTP requests on loopback and answers 200; returns (headers, body) of each.
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(str::to_string)
                            })
                            .map(|v| v.trim().parse().unwrap_or(0))
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = buf[end + 4..end + 4 + len].to_vec();
                            let _ = tx.send((head, body));
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {name} header in {head}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_stops_fifty_concurrent_runs_with_at_most_one_call_of_overshoot() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let r = app
        .post(
            "/api/v1/prices",
            json!({"model": "metered", "input": "100", "output": "100"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // A bounded answer keeps each call's reservation small.
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "m", "name": "m", "instructions": "Be brief.", "model": "fake/metered", "max_tokens": 20}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let agent_id = r.body["id"].as_str().unwrap().to_string();
    let (hook_url, mut hooks) = webhook_receiver().await;
    // Each call reports 30 + 10 tokens at 100 USD per million: 0.004 USD. The limit holds ten.
    let r = app
        .post(
            "/api/v1/budgets",
            json!({"name": "agent m daily", "scope": {"kind": "agent", "id": agent_id},
                   "period": "day", "timezone": "Europe/Berlin", "limit_usd": "0.04",
                   "thresholds": [{"percent": 50, "action": "notify"}, {"percent": 100, "action": "block"}],
                   "notify_url": hook_url}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let budget_id = r.body["id"].as_str().unwrap().to_string();
    let secret = r.body["notify_secret"]
        .as_str()
        .expect("secret shown once")
        .to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(r.body["limit"], "0.04");
    let got = app.get(&format!("/api/v1/budgets/{budget_id}")).await;
    assert_eq!(got.status, 200);
    assert!(
        got.body.get("notify_secret").is_none(),
        "the secret is shown once"
    );

    app.fake.push_script(
        "metered",
        (0..60)
            .map(|_| Reply::text("ok").with_usage(30, 10))
            .collect(),
    );
    let mut ids = Vec::new();
    let starts: Vec<_> = (0..50)
        .map(|i| {
            let app = &app;
            async move {
                let r = app
                    .post(
                        "/api/v1/agents/m/runs",
                        json!({"input": format!("task {i}")}),
                    )
                    .await;
                assert_eq!(r.status, 202, "{:?}", r.body);
                r.body["id"].as_str().unwrap().to_string()
            }
        })
        .collect();
    for id in futures_util::future::join_all(starts).await {
        ids.push(id);
    }
    let mut completed = 0;
    let mut blocked = Vec::new();
    for id in &ids {
        let run = app.wait_run(id, WAIT).await;
        match run["status"].as_str() {
            Some("completed") => completed += 1,
            Some("failed") => {
                assert_eq!(run["error"]["code"], "budget_exceeded", "{run}");
                blocked.push(id.clone());
            }
            other => panic!("unexpected status {other:?}: {run}"),
        }
    }
    let per_call: i128 = (30 + 10) * 100_000_000;
    let limit: i128 = 40_000_000_000;
    let r = app.get("/api/v1/costs?group_by=agent").await;
    let line = &r.body["data"][0];
    let spent = pico(line["cost_usd"].as_str().unwrap());
    assert_eq!(
        line["calls"], completed,
        "one billed call per completed run"
    );
    assert_eq!(
        spent,
        per_call * completed as i128,
        "the ledger is the reported usage"
    );
    // Reservations are for a call's maximum cost, so a call can be refused while others are in
    // flight that end up cheaper: the budget is nearly, not always exactly, used up.
    assert!(spent * 2 >= limit, "most of the budget was usable: {spent}");
    assert!(
        spent <= limit + per_call,
        "overshoot beyond one call: spent {spent}, limit {limit}"
    );
    assert_eq!(completed + blocked.len(), 50);
    assert!(!blocked.is_empty());
    assert_eq!(
        app.fake.requests().len(),
        completed,
        "blocked runs never reached the provider"
    );

    // The block is in the run's trace.
    let events = app.events(&blocked[0], None, 100).await;
    let block = events
        .iter()
        .find(|e| e.event == "budget.blocked")
        .expect("budget.blocked event");
    assert_eq!(block.data["budget_id"], budget_id.as_str());
    assert_eq!(block.data["limit"], "0.04");

    // The budget shows what was spent; nothing stays reserved; both thresholds were recorded.
    let b = app.get(&format!("/api/v1/budgets/{budget_id}")).await.body;
    assert_eq!(pico(b["current_period"]["spent"].as_str().unwrap()), spent);
    assert_eq!(b["current_period"]["reserved"], "0");
    let alerts = b["alerts"].as_array().unwrap();
    let mut thresholds: Vec<i64> = alerts
        .iter()
        .map(|a| a["threshold_percent"].as_i64().unwrap())
        .collect();
    thresholds.sort();
    // 50% was passed; 100% exactly when the spend reached the limit.
    let expected: Vec<i64> = if spent >= limit {
        vec![50, 100]
    } else {
        vec![50]
    };
    assert_eq!(thresholds, expected, "{alerts:?}");

    // Each threshold was announced once, signed with the budget's secret.
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let (head, body) = tokio::time::timeout(WAIT, hooks.recv())
            .await
            .expect("webhook delivered")
            .expect("receiver open");
        let id = header(&head, "webhook-id");
        let ts = header(&head, "webhook-timestamp");
        let sig = header(&head, "webhook-signature");
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&body);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(sig, expected, "signature");
        let payload: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(payload["type"], "budget.threshold");
        assert_eq!(payload["data"]["budget_id"], budget_id.as_str());
        seen.push(payload["data"]["threshold_percent"].as_i64().unwrap());
    }
    seen.sort();
    assert_eq!(seen, expected);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), hooks.recv())
            .await
            .is_err(),
        "no threshold is announced twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_budgets_per_end_user_and_budget_validation() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("t", "tokens", &[]).await;
    let r = app
        .post(
            "/api/v1/budgets",
            json!({"name": "per customer", "scope": {"kind": "end_user", "id": "cust-9"},
                   "period": "month", "limit_tokens": 100}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["unit"], "tokens");
    assert_eq!(r.body["limit"], 100);
    assert_eq!(
        r.body["thresholds"],
        json!([{"percent": 100, "action": "block"}])
    );
    app.fake.push_script(
        "tokens",
        (0..5)
            .map(|_| Reply::text("ok").with_usage(50, 10))
            .collect(),
    );
    let body = |input: &str| json!({"input": input, "end_user": "cust-9"});
    let first = run_to_end(&app, "t", body("one")).await;
    let second = run_to_end(&app, "t", body("two")).await;
    assert_eq!(first["status"], "completed");
    assert_eq!(second["status"], "completed", "60 < 100 tokens: allowed");
    let third = run_to_end(&app, "t", body("three")).await;
    assert_eq!(third["status"], "failed");
    assert_eq!(third["error"]["code"], "budget_exceeded");
    assert!(
        third["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per customer")
    );
    // Another end user is not limited by this budget.
    let other = run_to_end(&app, "t", json!({"input": "x", "end_user": "cust-10"})).await;
    assert_eq!(other["status"], "completed");

    for (bad, field) in [
        (
            json!({"name": "x", "scope": {"kind": "org"}, "period": "year", "limit_usd": "1"}),
            "period",
        ),
        (
            json!({"name": "x", "scope": {"kind": "org"}, "period": "day", "limit_usd": "-1"}),
            "limit_usd",
        ),
        (
            json!({"name": "x", "scope": {"kind": "org"}, "period": "day"}),
            "limit_usd",
        ),
        (
            json!({"name": "x", "scope": {"kind": "org"}, "period": "day", "limit_usd": "1", "timezone": "Mars/Base"}),
            "timezone",
        ),
        (
            json!({"name": "x", "scope": {"kind": "agent", "id": "00000000-0000-0000-0000-000000000001"}, "period": "day", "limit_usd": "1"}),
            "scope.id",
        ),
        (
            json!({"name": "x", "scope": {"kind": "team"}, "period": "day", "limit_usd": "1"}),
            "scope.kind",
        ),
        (
            json!({"name": "x", "scope": {"kind": "org"}, "period": "day", "limit_usd": "1", "notify_url": "http://169.254.169.254/latest"}),
            "notify_url",
        ),
        (
            json!({"name": "x", "scope": {"kind": "org"}, "period": "day", "limit_usd": "1", "thresholds": [{"percent": 0, "action": "block"}]}),
            "thresholds[0].percent",
        ),
    ] {
        let r = app.post("/api/v1/budgets", bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {:?}", r.body);
        let fields: Vec<&str> = r.body["error"]["details"]["fields"]
            .as_array()
            .map(|f| f.iter().filter_map(|x| x["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{bad}: {:?}", r.body);
    }
    let r = app
        .post(
            "/api/v1/budgets",
            json!({"name": "x", "scope": {"kind": "org"}, "period": "day", "limit_usd": "1", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, 422, "unknown fields are refused: {:?}", r.body);

    // Update keeps the spend; delete removes the budget and lifts the block.
    let list = app.get("/api/v1/budgets").await;
    let id = list.body["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list.body["data"][0]["current_period"]["spent"], 120);
    let r = app
        .put(
            &format!("/api/v1/budgets/{id}"),
            json!({"name": "per customer", "scope": {"kind": "end_user", "id": "cust-9"},
                   "period": "month", "limit_tokens": 1000}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["current_period"]["spent"], 120);
    let again = run_to_end(&app, "t", body("four")).await;
    assert_eq!(again["status"], "completed", "the raised limit allows it");
    let r = app.delete(&format!("/api/v1/budgets/{id}")).await;
    assert_eq!(r.status, 204);
    let r = app.get(&format!("/api/v1/budgets/{id}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "budget_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_cache_tokens_are_asked_for_recorded_and_priced_by_kind() {
    let app = TestApp::spawn().await;
    app.create_fake_provider_of_kind("anth", "anthropic").await;
    let r = app
        .post(
            "/api/v1/prices",
            json!({"provider": "anth", "model": "cachey", "input": "3", "output": "15",
                   "cache_read": "0.3", "cache_write": "3.75"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "c", "name": "c", "instructions": "A long, stable system prompt.",
                   "model": "anth/cachey", "prompt_cache": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // 100 uncached input tokens, 50 written to the cache, 200 read from it, 10 output.
    app.fake.push_script(
        "cachey",
        vec![
            Reply::text("cached")
                .with_usage(100, 10)
                .with_cache_usage(50, 200),
        ],
    );
    let run = run_to_end(&app, "c", json!({"input": "hello"})).await;
    assert_eq!(run["status"], "completed", "{run}");
    let request = &app.fake.requests()[0];
    assert_eq!(
        request.body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    let costs = app.get("/api/v1/costs?group_by=model").await.body;
    let line = &costs["data"][0];
    assert_eq!(
        line["input_tokens"], 350,
        "every prompt token, cached or not"
    );
    assert_eq!(line["cache_read_tokens"], 200);
    assert_eq!(line["cache_write_tokens"], 50);
    assert_eq!(line["output_tokens"], 10);
    let expected: i128 = 100 * 3_000_000 + 200 * 300_000 + 50 * 3_750_000 + 10 * 15_000_000;
    assert_eq!(pico(line["cost_usd"].as_str().unwrap()), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_are_emailed_when_mail_is_configured() {
    let mail = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(&[("AGENTRY_MAIL_DIR", mail.path().to_str().unwrap())]).await;
    app.create_fake_provider().await;
    app.create_agent("e", "mailed", &[]).await;
    let r = app
        .post(
            "/api/v1/budgets",
            json!({"name": "team tokens", "scope": {"kind": "org"}, "period": "week",
                   "limit_tokens": 100, "thresholds": [{"percent": 50, "action": "notify"}],
                   "notify_email": "finance@example.com"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    app.fake.push_script(
        "mailed",
        vec![
            Reply::text("ok").with_usage(40, 20),
            Reply::text("ok").with_usage(40, 20),
        ],
    );
    // 60 tokens: over 50%, announced once; a second run keeps it announced (no block at all).
    for input in ["one", "two"] {
        let run = run_to_end(&app, "e", json!({"input": input})).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    let deadline = std::time::Instant::now() + WAIT;
    let delivered = loop {
        let b = app.get(&format!("/api/v1/budgets/{id}")).await.body;
        if b["alerts"][0]["delivery"] == "delivered" {
            break b;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(delivered["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(delivered["current_period"]["spent"], 120);
    let mails: Vec<String> = std::fs::read_dir(mail.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 1, "one threshold, one email");
    assert!(mails[0].contains("finance@example.com"));
    assert!(mails[0].contains("team tokens"));
}
