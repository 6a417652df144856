//! Fallback chains, context-window fallback, circuit breakers and the response cache, driven
//! through the real server against the fake provider.

use crate::harness::TestApp;
use agentry_fakellm::{Failure, Reply};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn agent(app: &TestApp, body: Value) {
    let r = app.post("/api/v1/agents", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

async fn run(app: &TestApp, slug: &str, input: &str) -> (Value, Vec<crate::harness::Sse>) {
    let id = app.start_run(slug, json!(input)).await;
    let run = app.wait_run(&id, WAIT).await;
    let events = app.events(&id, None, 500).await;
    (run, events)
}

fn requests_to(app: &TestApp, model: &str) -> usize {
    app.fake
        .requests()
        .iter()
        .filter(|r| r.model == model)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_falls_over_before_the_first_token_and_never_after() {
    let app = TestApp::spawn_with(&[("AGENTRY_MODEL_MAX_RETRIES", "1")]).await;
    app.create_fake_provider().await;
    agent(
        &app,
        json!({"slug": "fo", "name": "fo", "instructions": "x", "model": "fake/down",
               "fallbacks": ["fake/backup"]}),
    )
    .await;
    // 503 twice: the call's one retry is spent, then the chain moves on.
    app.fake
        .push_script("down", vec![Reply::error(503), Reply::error(503)]);
    app.fake
        .push_script("backup", vec![Reply::text("from the backup")]);
    let (r, events) = run(&app, "fo", "hello").await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["output"], "from the backup");
    assert_eq!(requests_to(&app, "down"), 2, "one call, one retry");
    assert_eq!(requests_to(&app, "backup"), 1);
    let failed = events
        .iter()
        .find(|e| e.event == "llm.failed")
        .expect("llm.failed");
    assert_eq!(failed.data["code"], "provider_unavailable");
    assert_eq!(failed.data["attempts"], 2);
    let failover = events
        .iter()
        .find(|e| e.event == "model.failover")
        .expect("model.failover");
    assert_eq!(failover.data["from"], "fake/down");
    assert_eq!(failover.data["to"], "fake/backup");
    let completed = events.iter().find(|e| e.event == "llm.completed").unwrap();
    assert_eq!(completed.data["provider"], "fake");
    assert_eq!(completed.data["model"], "backup");

    // Text already reached the client: the step fails, nothing is repeated by another model.
    // (On the Anthropic wire, whose `message_start` reports usage before the stream breaks.)
    app.create_fake_provider_of_kind("anth", "anthropic").await;
    agent(
        &app,
        json!({"slug": "half", "name": "half", "instructions": "x", "model": "anth/halfway",
               "fallbacks": ["fake/backup"]}),
    )
    .await;
    app.fake.clear();
    app.fake.push_script(
        "halfway",
        vec![Reply::stream_error(2, "overloaded").with_usage(12, 3)],
    );
    app.fake
        .push_script("backup", vec![Reply::text("must not be used")]);
    let (r, events) = run(&app, "half", "hello again").await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "provider_bad_response");
    assert_eq!(requests_to(&app, "halfway"), 1, "never retried after text");
    assert_eq!(requests_to(&app, "backup"), 0);
    assert!(events.iter().all(|e| e.event != "model.failover"));
    assert_eq!(
        events.last().map(|e| e.event.as_str()),
        Some("run.failed"),
        "the stream ends with a terminal event"
    );
    let text: String = events
        .iter()
        .filter(|e| e.event == "message.delta")
        .map(|e| e.data["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(!text.is_empty(), "some text was streamed before the error");
    assert!(!text.contains("must not be used"));
    // The partial call was billed: its reported usage is in the ledger.
    let halfway = app
        .cost_line("model", "halfway")
        .await
        .expect("the failed call's usage is recorded");
    // What `message_start` reported before the break (output 1, as Anthropic sends it); the
    // final count never arrived.
    assert_eq!(halfway["input_tokens"], 12);
    assert_eq!(halfway["output_tokens"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_overflow_moves_to_the_larger_model_once() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    agent(
        &app,
        json!({"slug": "ctx", "name": "ctx", "instructions": "x", "model": "fake/small",
               "context_fallback": "fake/large"}),
    )
    .await;
    app.fake
        .push_script("small", vec![Reply::failure(Failure::ContextOverflow)]);
    app.fake
        .push_script("large", vec![Reply::text("read it all")]);
    let (r, events) = run(&app, "ctx", "a very long document").await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["output"], "read it all");
    assert_eq!(
        requests_to(&app, "small"),
        1,
        "an overflow is never retried"
    );
    let failover = events
        .iter()
        .find(|e| e.event == "model.failover")
        .expect("failover");
    assert_eq!(failover.data["code"], "provider_context_overflow");
    assert_eq!(failover.data["to"], "fake/large");

    // Without a larger model the run fails with the overflow, clearly.
    agent(
        &app,
        json!({"slug": "ctx2", "name": "ctx2", "instructions": "x", "model": "fake/small2"}),
    )
    .await;
    app.fake
        .push_script("small2", vec![Reply::failure(Failure::ContextOverflow)]);
    let (r, _) = run(&app, "ctx2", "too long").await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["code"], "provider_context_overflow");
    // Quota exhaustion is not retried either.
    agent(
        &app,
        json!({"slug": "q", "name": "q", "instructions": "x", "model": "fake/broke"}),
    )
    .await;
    app.fake
        .push_script("broke", vec![Reply::failure(Failure::QuotaExhausted)]);
    let (r, _) = run(&app, "q", "hi").await;
    assert_eq!(r["error"]["code"], "provider_quota_exhausted");
    assert_eq!(requests_to(&app, "broke"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_overloads_open_the_circuit_and_calls_skip_the_model() {
    let app = TestApp::spawn_with(&[("AGENTRY_MODEL_MAX_RETRIES", "0")]).await;
    app.create_fake_provider().await;
    agent(
        &app,
        json!({"slug": "cb", "name": "cb", "instructions": "x", "model": "fake/flaky",
               "fallbacks": ["fake/steady"]}),
    )
    .await;
    app.fake
        .push_script("flaky", (0..10).map(|_| Reply::error(529)).collect());
    for i in 0..5 {
        let (r, _) = run(&app, "cb", &format!("q{i}")).await;
        assert_eq!(r["status"], "completed", "the fallback answers: {r}");
    }
    assert_eq!(
        requests_to(&app, "flaky"),
        3,
        "three consecutive overloads open the circuit; later runs skip the model"
    );
    assert_eq!(requests_to(&app, "steady"), 5);
    let (_, events) = run(&app, "cb", "q5").await;
    let failover = events
        .iter()
        .find(|e| e.event == "model.failover")
        .expect("failover");
    assert_eq!(failover.data["code"], "provider_circuit_open");

    // The breaker is visible to operators: in /metrics and in the providers' health.
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
        metrics
            .lines()
            .any(|l| l.starts_with("agentry_circuit_state")
                && l.contains("model=\"flaky\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );
    let health = app.get("/api/v1/provider-health").await;
    assert_eq!(health.status, 200, "{:?}", health.body);
    let flaky = health.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["model"] == "flaky")
        .expect("flaky's breaker")
        .clone();
    assert_eq!(flaky["provider"], "fake");
    assert_eq!(flaky["state"], "open");
    assert!(flaky["retry_in_seconds"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_cache_answers_repeats_at_zero_cost_within_one_org() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    agent(
        &app,
        json!({"slug": "c", "name": "c", "instructions": "x", "model": "fake/cached",
               "cache": {"ttl_seconds": 600}}),
    )
    .await;
    let r = app
        .post(
            "/api/v1/prices",
            json!({"model": "cached", "input": "1", "output": "1"}),
        )
        .await;
    assert_eq!(r.status, 201);
    app.fake.push_script(
        "cached",
        vec![
            Reply::text("first answer").with_usage(10, 5),
            Reply::text("second answer").with_usage(10, 5),
        ],
    );
    let (first, _) = run(&app, "c", "same question").await;
    let (second, events) = run(&app, "c", "  same question ").await;
    assert_eq!(first["output"], "first answer");
    assert_eq!(second["output"], "first answer", "answered from the cache");
    assert_eq!(requests_to(&app, "cached"), 1);
    assert!(events.iter().any(|e| e.event == "llm.cache_hit"));
    let completed = events.iter().find(|e| e.event == "llm.completed").unwrap();
    assert_eq!(completed.data["cost_usd"], "0");
    let (third, _) = run(&app, "c", "another question").await;
    assert_eq!(third["output"], "second answer");

    // Another org asking the same question of the same model is never served this org's answer.
    let other = app.as_token(&app.other_org_key().await);
    other.create_fake_provider().await;
    agent(
        &other,
        json!({"slug": "c", "name": "c", "instructions": "x", "model": "fake/cached",
               "cache": {"ttl_seconds": 600}}),
    )
    .await;
    app.fake
        .push_script("cached", vec![Reply::text("org b's own answer")]);
    let (theirs, _) = run(&other, "c", "same question").await;
    assert_eq!(theirs["output"], "org b's own answer");
    assert_eq!(requests_to(&app, "cached"), 3);

    let costs = app.get("/api/v1/costs?group_by=agent").await.body;
    let line = &costs["data"][0];
    assert_eq!(line["calls"], 3);
    assert_eq!(line["cache_hits"], 1);
    assert_eq!(line["input_tokens"], 20, "a hit bills no tokens");
    assert_eq!(line["cost_usd"], "0.00003");

    // Agents without the cache always ask the provider.
    agent(
        &app,
        json!({"slug": "nc", "name": "nc", "instructions": "x", "model": "fake/echo"}),
    )
    .await;
    run(&app, "nc", "repeat").await;
    run(&app, "nc", "repeat").await;
    assert_eq!(requests_to(&app, "echo"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_miss_the_output_schema_are_repaired_a_bounded_number_of_times() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let schema = json!({"type": "object", "required": ["city", "temp_c"],
        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}}});
    agent(
        &app,
        json!({"slug": "so", "name": "so", "instructions": "x", "model": "fake/structured",
               "output_schema": schema, "max_repair_turns": 1}),
    )
    .await;
    app.fake.push_script(
        "structured",
        vec![
            Reply::text("It is cold in Oslo."),
            Reply::text("```json\n{\"city\": \"Oslo\", \"temp_c\": 3}\n```"),
        ],
    );
    let (r, events) = run(&app, "so", "weather in Oslo?").await;
    assert_eq!(r["status"], "completed", "{r}");
    let answer: Value = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
    assert_eq!(answer, json!({"city": "Oslo", "temp_c": 3}));
    let requests = app.fake.requests();
    assert_eq!(requests.len(), 2);
    // The provider's native structured output was asked for.
    assert_eq!(requests[0].body["response_format"]["type"], "json_schema");
    assert_eq!(
        requests[0].body["response_format"]["json_schema"]["schema"],
        schema
    );
    // The repair turn told the model what was wrong.
    let last = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "user");
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .contains("does not match the required JSON Schema")
    );
    let repair = events
        .iter()
        .find(|e| e.event == "output.repair")
        .expect("output.repair");
    assert_eq!(repair.data["attempt"], 1);
    let full = app
        .get(&format!("/api/v1/runs/{}", r["id"].as_str().unwrap()))
        .await
        .body;
    let kinds: Vec<&str> = full["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["llm", "feedback", "llm"]);

    // Out of repair turns: the run fails and says why.
    app.fake.push_script(
        "structured",
        vec![
            Reply::text("{\"city\": \"Oslo\"}"),
            Reply::text("{\"city\": 7, \"temp_c\": \"warm\"}"),
        ],
    );
    let (r, _) = run(&app, "so", "again").await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "output_schema_mismatch");
    assert!(r["error"]["message"].as_str().unwrap().contains("/city"));

    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "bad", "name": "b", "instructions": "x", "model": "fake/echo",
                   "output_schema": {"type": "no-such-type"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.body["error"]["details"]["fields"][0]["field"],
        "output_schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_can_be_registered_from_presets() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "groq", "preset": "groq", "api_key": "gsk_test"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["kind"], "openai");
    assert_eq!(r.body["base_url"], "https://api.groq.com/openai/v1");
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "claude", "preset": "anthropic", "api_key": "sk-ant"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["kind"], "anthropic");
    // An explicit base URL wins over the preset's (e.g. a proxy).
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "proxy", "preset": "openai", "base_url": "https://llm-proxy.example.com/v1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["base_url"], "https://llm-proxy.example.com/v1");
    for (body, field) in [
        (json!({"name": "x", "preset": "no-such-service"}), "preset"),
        (
            json!({"name": "y", "base_url": "https://a.example.com"}),
            "kind",
        ),
    ] {
        let r = app.post("/api/v1/providers", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["details"]["fields"][0]["field"], field);
    }
}

/// With `AGENTRY_REDIS_URL`, the response cache is shared by the replicas of an installation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_response_cache_through_redis() {
    use crate::harness::{ADMIN_TOKEN, Server, Storage};
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        assert!(
            std::env::var_os("AGENTRY_TEST_REQUIRE_REDIS").is_none(),
            "Redis is required (AGENTRY_TEST_REQUIRE_REDIS) but not running on 127.0.0.1:6379"
        );
        eprintln!("SKIPPED: Redis is not running on 127.0.0.1:6379 (.ci/run starts it)");
        return;
    }
    let fake = agentry_fakellm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let storage = Storage::new().await;
    let env = [("AGENTRY_REDIS_URL", "redis://127.0.0.1:6379")];
    let a = Server::start(&storage, &env);
    let b = Server::start(&storage, &env);
    let http = reqwest::Client::new();
    let post = |base: &str, path: &str, body: Value| {
        http.post(format!("{base}/api/v1{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let r = post(
        &a.url,
        "/providers",
        json!({"name": "fake", "kind": "openai", "base_url": fake.base_url()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = post(
        &a.url,
        "/agents",
        json!({"slug": "c", "name": "c", "instructions": "x", "model": "fake/shared",
               "cache": {"ttl_seconds": 600}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // A question unique to this test run: Redis outlives test databases.
    let question = format!("question {}", uuid::Uuid::new_v4());
    fake.push_script("shared", vec![agentry_fakellm::Reply::text("from A")]);
    let mut outputs = Vec::new();
    for server in [&a, &b] {
        let r = post(
            &server.url,
            "/agents/c/runs",
            json!({"input": question, "wait": true}),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let run: Value = r.json().await.unwrap();
        assert_eq!(run["status"], "completed", "{run}");
        outputs.push(run["output"].clone());
    }
    assert_eq!(outputs, [json!("from A"), json!("from A")]);
    assert_eq!(
        fake.requests().len(),
        1,
        "the second replica answered from Redis"
    );
}
