//! The quickstart path and the agent loop's behaviour, end to end.

use crate::harness::TestApp;
use agentry_fakellm::Reply;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calculator_agent_answers_with_a_traced_tool_call() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("calc", "echo", &["calculator"]).await;

    let r = app
        .post(
            "/api/v1/agents/calc/runs",
            json!({"input": "what is 6*7?", "wait": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let run = r.body;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], "The answer is {\"result\":42}.");
    assert_eq!(run["agent"], "calc");
    assert_eq!(run["agent_version"], 1);
    let steps = run["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["llm", "tool", "llm"]);
    assert_eq!(steps[1]["name"], "calculator");
    assert_eq!(steps[1]["arguments"]["expression"], "6*7");
    assert_eq!(steps[1]["result"]["result"], 42);
    assert_eq!(steps[0]["finish_reason"], "tool_calls");
    let step_tokens: u64 = steps
        .iter()
        .filter(|s| s["kind"] == "llm")
        .map(|s| s["input_tokens"].as_u64().unwrap() + s["output_tokens"].as_u64().unwrap())
        .sum();
    let run_tokens = run["usage"]["input_tokens"].as_u64().unwrap()
        + run["usage"]["output_tokens"].as_u64().unwrap();
    assert!(run_tokens > 0);
    assert_eq!(
        step_tokens, run_tokens,
        "run usage is the sum of its model calls"
    );
    for s in steps {
        assert!(s["duration_ms"].as_i64().unwrap() >= 0);
    }
    // The provider got the key we registered, the tools, and the system instructions.
    let requests = app.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer sk-fake-provider-key")
    );
    assert_eq!(
        requests[0].body["tools"][0]["function"]["name"],
        "calculator"
    );
    assert_eq!(requests[0].body["messages"][0]["role"], "system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_record_the_agent_version_they_used() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("v", "echo", &[]).await;
    let first = app.start_run("v", json!("one")).await;
    app.wait_run(&first, WAIT).await;
    let r = app
        .put(
            "/api/v1/agents/v",
            json!({"slug": "v", "name": "V2", "instructions": "new", "model": "fake/echo"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["version"], 2);
    let second = app.start_run("v", json!("two")).await;
    let run2 = app.wait_run(&second, WAIT).await;
    let run1 = app.get(&format!("/api/v1/runs/{first}")).await.body;
    assert_eq!(run1["agent_version"], 1);
    assert_eq!(run2["agent_version"], 2);
    assert_eq!(run2["output"], "You said: two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tool_arguments_and_unknown_tools_become_errors_the_model_sees() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("calc", "scripted", &["calculator"]).await;
    app.fake.push_script(
        "scripted",
        vec![
            Reply::tool_calls(vec![
                ("calculator", "{\"expression\": "),
                ("rm_rf", "{}"),
                ("calculator", "{\"expr\": \"1+1\"}"),
            ]),
            Reply::text("recovered"),
        ],
    );
    let id = app.start_run("calc", json!("go")).await;
    let run = app.wait_run(&id, WAIT).await;
    assert_eq!(run["status"], "completed", "{run:?}");
    assert_eq!(run["output"], "recovered");
    let tools: Vec<_> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "tool")
        .collect();
    assert_eq!(tools.len(), 3);
    assert_eq!(tools[0]["error"]["code"], "invalid_arguments");
    assert_eq!(tools[1]["error"]["code"], "unknown_tool");
    assert_eq!(tools[2]["error"]["code"], "invalid_arguments");
    // The second model call saw the three errors as tool results.
    let second = &app.fake.requests()[1].body;
    let tool_msgs: Vec<_> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_msgs.len(), 3);
    assert!(
        tool_msgs[1]["content"]
            .as_str()
            .unwrap()
            .contains("unknown_tool")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_retry_then_fail_the_run_with_a_recorded_reason() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("a", "flaky", &[]).await;
    // 429 with Retry-After 0, then an answer: the run completes after exactly 2 requests.
    app.fake.push_script(
        "flaky",
        vec![
            Reply::error(429).with_header("retry-after", "0"),
            Reply::text("after the rate limit"),
        ],
    );
    let id = app.start_run("a", json!("hi")).await;
    let run = app.wait_run(&id, WAIT).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], "after the rate limit");
    assert_eq!(app.fake.requests().len(), 2);

    // A provider that refuses the key: one request, then a failed run with the code.
    app.fake.clear();
    app.create_agent("b", "locked", &[]).await;
    app.fake.push_script("locked", vec![Reply::error(401)]);
    let id = app.start_run("b", json!("hi")).await;
    let run = app.wait_run(&id, WAIT).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "provider_auth_failed");
    assert_eq!(app.fake.requests().len(), 1);
    let msg = run["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("sk-fake-provider-key"), "{msg}");

    // A dead provider fails the run, not the server.
    app.fake.clear();
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "dead", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "d", "name": "d", "instructions": "", "model": "dead/m"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = app.start_run("d", json!("hi")).await;
    let run = app.wait_run(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "provider_unavailable");
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_steps_stops_a_looping_agent() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "loop", "name": "loop", "instructions": "", "model": "fake/tool-loop-9", "tools": ["calculator"], "max_steps": 2}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = app.start_run("loop", json!("go")).await;
    let run = app.wait_run(&id, WAIT).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "max_steps_exceeded");
    assert_eq!(app.fake.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_carry_earlier_turns() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("chat", "echo", &["calculator"]).await;
    let r = app
        .post(
            "/api/v1/agents/chat/runs",
            json!({"input": "what is 2+3?", "thread_id": "t-1", "wait": true}),
        )
        .await;
    assert_eq!(r.body["status"], "completed");
    let r = app
        .post(
            "/api/v1/agents/chat/runs",
            json!({"input": "thanks", "thread_id": "t-1", "wait": true}),
        )
        .await;
    assert_eq!(r.body["output"], "You said: thanks");
    let last = app.fake.requests().last().unwrap().body.clone();
    let contents: Vec<String> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(contents.iter().any(|c| c == "what is 2+3?"), "{contents:?}");
    assert!(contents.iter().any(|c| c.contains("The answer is")));
    assert!(
        last["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "tool")
    );
    // Another thread sees none of it.
    let r = app
        .post(
            "/api/v1/agents/chat/runs",
            json!({"input": "fresh", "thread_id": "t-2", "wait": true}),
        )
        .await;
    assert_eq!(r.body["status"], "completed");
    let last = app.fake.requests().last().unwrap().body.clone();
    assert_eq!(last["messages"].as_array().unwrap().len(), 2);
    // Runs can be listed by thread.
    let r = app.get("/api/v1/runs?thread_id=t-1").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_same_run() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("a", "echo", &[]).await;
    let send = |input: &'static str| {
        app.send(
            app.http
                .post(app.url("/api/v1/agents/a/runs"))
                .bearer_auth(&app.token)
                .header("Idempotency-Key", "order-17")
                .json(&json!({"input": input})),
        )
    };
    let first = send("hello").await;
    let second = send("hello").await;
    assert_eq!(first.status, 202);
    assert_eq!(first.body["id"], second.body["id"]);
    let other = send("different body").await;
    assert_eq!(other.status, 409);
    assert_eq!(other.body["error"]["code"], "idempotency_key_reused");
    let runs = app.get("/api/v1/runs?agent=a").await;
    assert_eq!(runs.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_slow_run_and_lists_paginate() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("slow", "tool-loop-3+latency=400", &["calculator"])
        .await;
    let id = app.start_run("slow", json!("go")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let run = app.wait_run(&id, WAIT).await;
    assert_eq!(run["status"], "cancelled");
    let again = app
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"]["code"], "run_not_cancellable");

    app.create_agent("fast", "echo", &[]).await;
    for i in 0..5 {
        app.start_run("fast", json!(format!("m{i}"))).await;
    }
    let page1 = app.get("/api/v1/runs?agent=fast&limit=3").await;
    assert_eq!(page1.body["data"].as_array().unwrap().len(), 3);
    let cursor = page1.body["next_cursor"].as_str().unwrap().to_string();
    let page2 = app
        .get(&format!("/api/v1/runs?agent=fast&limit=3&cursor={cursor}"))
        .await;
    assert_eq!(page2.body["data"].as_array().unwrap().len(), 2);
    let ids: std::collections::HashSet<_> = page1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2.body["data"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
}

/// Agents on the Anthropic and Gemini wire formats run end to end like OpenAI-compatible ones:
/// tool calls, usage, and the key in each provider's own header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_gemini_providers_run_agents_with_tools() {
    let app = TestApp::spawn().await;
    let root = app.fake.base_url().trim_end_matches("/v1").to_string();
    for (kind, key) in [("anthropic", "sk-ant-test"), ("gemini", "gemini-test-key")] {
        let r = app
            .post(
                "/api/v1/providers",
                json!({"name": kind, "kind": kind, "base_url": root, "api_key": key}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        app.create_agent_with_model(&format!("{kind}-calc"), &format!("{kind}/echo"))
            .await;
        let r = app
            .put(
                &format!("/api/v1/agents/{kind}-calc"),
                json!({"slug": format!("{kind}-calc"), "name": "c", "instructions": "Use the calculator.",
                    "model": format!("{kind}/echo"), "tools": ["calculator"]}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let run = app
            .post(
                &format!("/api/v1/agents/{kind}-calc/runs"),
                json!({"input": "what is 6*7?", "wait": true}),
            )
            .await;
        assert_eq!(run.body["status"], "completed", "{kind}: {:?}", run.body);
        assert!(
            run.body["output"].as_str().unwrap().contains("42"),
            "{kind}: {:?}",
            run.body
        );
        let steps = run.body["steps"].as_array().unwrap();
        assert!(
            steps
                .iter()
                .any(|s| s["kind"] == "tool" && s["name"] == "calculator"),
            "{kind}"
        );
        assert!(run.body["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(
            app.fake
                .requests()
                .iter()
                .any(|r| r.api_key.as_deref() == Some(key)),
            "{kind}: the key travels in the provider's own header"
        );
    }
}
