//! Request rate limits (in-process and shared through Redis by two server processes), failing
//! open when Redis is down, and the per-organization cap on runs in progress.

use crate::harness::{ADMIN_TOKEN, Server, Storage, TestApp};
use serde_json::json;

fn redis_up() -> bool {
    std::net::TcpStream::connect("127.0.0.1:6379").is_ok()
}

async fn count_ok(
    http: &reqwest::Client,
    urls: &[String],
    n: usize,
) -> (usize, Vec<reqwest::Response>) {
    let mut ok = 0;
    let mut limited = Vec::new();
    for i in 0..n {
        let r = http
            .get(&urls[i % urls.len()])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            429 => limited.push(r),
            s => panic!("unexpected status {s}"),
        }
    }
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_answer_429_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::spawn_with(&[("AGENTRY_RATE_LIMITS__GENERAL__LIMIT", "20")]).await;
    let (ok, limited) = count_ok(&app.http, &[app.url("/api/v1/agents")], 30).await;
    assert_eq!(ok, 20);
    let r = &limited[0];
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    assert!(
        r.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains("q=20")
    );
    assert!(r.headers()["ratelimit"].to_str().unwrap().contains("r=0"));
    // Limits are per key: another key is unaffected.
    let (_, other) = {
        let db = agentry_store::Db::connect(&app.server.storage.database_url, 1)
            .await
            .unwrap();
        let key =
            crate::harness::insert_key(&db, agentry_store::orgs::default_scope(), "viewer", true)
                .await;
        db.close().await;
        ((), key)
    };
    let r = app.as_token(&other).get("/api/v1/agents").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_two_servers_sharing_redis() {
    if !redis_up() {
        assert!(
            std::env::var_os("AGENTRY_TEST_REQUIRE_REDIS").is_none(),
            "Redis is required (AGENTRY_TEST_REQUIRE_REDIS) but not running on 127.0.0.1:6379"
        );
        eprintln!("SKIPPED: Redis is not running on 127.0.0.1:6379 (.ci/run starts it)");
        return;
    }
    // Each test database has its own admin key id, so runs never share a Redis key.
    let env = [
        ("AGENTRY_REDIS_URL", "redis://127.0.0.1:6379"),
        ("AGENTRY_RATE_LIMITS__GENERAL__LIMIT", "100"),
        ("AGENTRY_RATE_LIMITS__GENERAL__PERIOD_SECS", "600"),
    ];
    let storage = Storage::new().await;
    let a = Server::start(&storage, &env);
    let b = Server::start(&storage, &env);
    let http = reqwest::Client::new();
    let urls = [
        format!("{}/api/v1/agents", a.url),
        format!("{}/api/v1/agents", b.url),
    ];
    let (ok, limited) = count_ok(&http, &urls, 160).await;
    // GCRA in Redis is exact up to the requests refilled while the test runs (≈ 1 per 6 s).
    assert!(
        (95..=105).contains(&ok),
        "{ok} of 160 allowed with a shared limit of 100"
    );
    assert!(!limited.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_open_for_request_limits() {
    let app = TestApp::spawn_with(&[
        ("AGENTRY_REDIS_URL", "redis://127.0.0.1:1"),
        ("AGENTRY_RATE_LIMITS__GENERAL__LIMIT", "5"),
    ])
    .await;
    let (ok, _) = count_ok(&app.http, &[app.url("/api/v1/agents")], 12).await;
    assert_eq!(ok, 12, "requests must pass while Redis is unreachable");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("agentry_ratelimit_backend_errors_total"),
        "the failure is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_cannot_exceed_its_cap_of_runs_in_progress() {
    let app = TestApp::spawn_with(&[("AGENTRY_ORG_MAX_ACTIVE_RUNS", "2")]).await;
    app.create_fake_provider().await;
    app.create_agent("slow", "echo+latency=3000", &[]).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = app
            .post("/api/v1/agents/slow/runs", json!({"input": "hi"}))
            .await;
        statuses.push((
            r.status,
            r.body.clone(),
            r.headers.get("retry-after").is_some(),
        ));
    }
    assert_eq!(statuses[0].0, 202);
    assert_eq!(statuses[1].0, 202);
    assert_eq!(statuses[2].0, 429, "{:?}", statuses[2].1);
    assert_eq!(statuses[2].1["error"]["code"], "concurrency_limited");
    assert!(statuses[2].2, "429 carries Retry-After");
}
