//! Crash and restart: a run survives `kill -9`, resumes from its journal, and never repeats a
//! recorded model call or tool call. Several servers on one PostgreSQL database share work.

use crate::harness::{Server, TestApp};
use agentry_fakellm::Reply;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A side-effect server the agent calls through `http_request`: counts hits per
/// Idempotency-Key.
type Keys = Arc<std::sync::Mutex<Vec<String>>>;

async fn start_counter() -> (String, Arc<AtomicUsize>, Keys) {
    let hits = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let state = (hits.clone(), keys.clone());
    let app = axum::Router::new()
        .route(
            "/effect",
            axum::routing::post(
                |State((hits, keys)): State<(Arc<AtomicUsize>, Keys)>,
                 headers: axum::http::HeaderMap| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    if let Some(k) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
                        keys.lock().unwrap().push(k.to_string());
                    }
                    "charged"
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/effect"), hits, keys)
}

async fn steps_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/runs/{id}")).await.body["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_resumes_without_repeating_recorded_calls() {
    let mut app = TestApp::spawn_with(&[("AGENTRY_HTTP_ALLOW_HOSTS", "[\"127.0.0.1\"]")]).await;
    let (effect_url, hits, keys) = start_counter().await;
    app.create_fake_provider().await;
    app.create_agent("pay", "durable", &["http_request"]).await;
    let args = json!({"url": effect_url, "method": "POST", "body": "charge 10"}).to_string();
    app.fake.push_script(
        "durable",
        vec![
            Reply::tool_call("http_request", args),
            // The model is slow to answer after the side effect: the crash lands here.
            Reply::text("paid").with_delay_ms(4000),
        ],
    );
    let id = app.start_run("pay", json!("pay the invoice")).await;
    // Wait until the tool result is journaled, then kill the server in the slow model call.
    let deadline = Instant::now() + Duration::from_secs(30);
    while steps_of(&app, &id).await.len() < 2 {
        assert!(Instant::now() < deadline, "tool step never committed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.fake.requests().len(),
        2,
        "the second model call is in flight"
    );
    app.server.kill();
    app.server.restart();

    let run = app.wait_run(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "completed", "{run:?}");
    // The side effect happened once; the journaled first model call was never sent again.
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(keys.lock().unwrap().len(), 1);
    let requests = app.fake.requests();
    let first_calls = requests
        .iter()
        .filter(|r| {
            !r.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["role"] == "tool")
        })
        .count();
    assert_eq!(first_calls, 1, "the journaled model call was repeated");
    // Only the call in flight at the crash was sent again.
    assert_eq!(requests.len(), 3);
    let kinds: Vec<String> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["llm", "tool", "llm"]);
    // Readers were told that the interrupted model call restarts.
    let events = app.events(&id, None, 10_000).await;
    assert!(events.iter().any(|e| e.event == "message.reset"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_run_and_a_restart_finishes_it() {
    let mut app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("loop", "tool-loop-3+latency=700", &["calculator"])
        .await;
    let id = app.start_run("loop", json!("go")).await;
    // A reader follows the run: an open event stream must not keep the server from stopping.
    let reader = {
        let url = app.url(&format!("/api/v1/runs/{id}/events"));
        let http = app.http.clone();
        let token = app.token.clone();
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            resp.bytes().await.map(|b| b.len()).unwrap_or(0)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = app.server.terminate();
    let streamed = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the event stream ended with the server")
        .unwrap();
    assert!(streamed > 0);
    assert!(status.success(), "{status:?}");
    app.server.restart();
    let run = app.wait_run(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], "done after 3 tool calls");
    // Each of the four model calls completed exactly once in the journal, with 3 tool steps.
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_run_each_run_exactly_once() {
    let app = TestApp::spawn().await;
    if !app.server.storage.is_postgres() {
        eprintln!("NOTE: AGENTRY_TEST_DATABASE_URL not set: two-server PostgreSQL test skipped");
        return;
    }
    app.create_fake_provider().await;
    app.create_agent("echo", "echo+latency=30", &[]).await;
    let other = crate::harness::TestApp {
        server: Server::start(&app.server.storage, &[]),
        fake: app.fake.clone(),
        http: app.http.clone(),
        token: app.token.clone(),
    };
    let mut ids = Vec::new();
    for i in 0..50 {
        let target = if i % 2 == 0 { &app } else { &other };
        ids.push(
            target
                .start_run("echo", json!(format!("message {i}")))
                .await,
        );
    }
    for id in &ids {
        let run = app.wait_run(id, Duration::from_secs(60)).await;
        assert_eq!(run["status"], "completed");
    }
    let requests = app.fake.requests();
    assert_eq!(
        requests.len(),
        50,
        "every run called the model exactly once"
    );
    let mut inputs: Vec<String> = requests
        .iter()
        .map(|r| {
            r.body["messages"].as_array().unwrap().last().unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    inputs.sort();
    inputs.dedup();
    assert_eq!(inputs.len(), 50);
    // Both servers took part.
    let mut workers = std::collections::HashSet::new();
    for id in &ids {
        let events = app.events(id, None, 10_000).await;
        let started: Vec<_> = events.iter().filter(|e| e.event == "run.started").collect();
        assert_eq!(started.len(), 1, "run {id} started more than once");
        workers.insert(started[0].data["worker"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(workers.len(), 2, "{workers:?}");
}

/// A step whose first model failed (billed) and whose fallback was in flight at a crash resumes:
/// the recorded attempt is neither lost nor written twice, and the ledger continues its
/// numbering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_failover_keeps_the_billed_attempt_once() {
    let mut app = TestApp::spawn_with(&[("AGENTRY_MODEL_MAX_RETRIES", "0")]).await;
    app.create_fake_provider_of_kind("anth", "anthropic").await;
    app.create_fake_provider().await;
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "fo", "name": "fo", "instructions": "x", "model": "anth/flaky",
                   "fallbacks": ["fake/slow"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The primary reports usage in `message_start`, then fails before any text: billed, and
    // the step falls over to the slow fallback, where the crash lands.
    app.fake.push_script(
        "flaky",
        vec![Reply::stream_error(0, "overloaded").with_usage(9, 1)],
    );
    app.fake.push_script(
        "slow",
        vec![
            Reply::text("late").with_delay_ms(4000),
            Reply::text("after restart"),
        ],
    );
    let id = app.start_run("fo", json!("go")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.fake.requests().iter().any(|r| r.model == "slow") {
        assert!(Instant::now() < deadline, "the fallback was never called");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.server.kill();
    app.server.restart();
    let run = app.wait_run(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "completed", "{run}");
    // After the restart the step starts over with the primary, which the fake now answers by
    // echo (its script is used up). Both primary calls are billed, each once, numbered on.
    assert_eq!(run["output"], "You said: go");
    assert_eq!(app.model_calls("flaky").await, 2);
    assert_eq!(
        app.model_calls("slow").await,
        0,
        "the interrupted fallback call was not billed (no usage arrived)"
    );
}
