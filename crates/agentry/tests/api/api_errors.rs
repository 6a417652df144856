//! Bad input gets a clear JSON error with a stable code and loses nothing.

use crate::harness::TestApp;
use serde_json::{Value, json};

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body:?}");
    assert!(
        !body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{body:?}"
    );
    assert!(
        !body["error"]["request_id"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_is_required_everywhere() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/agents",
        "/api/v1/runs",
        "/api/v1/providers",
        "/api/v1/api-keys",
    ] {
        let r = app.send(app.http.get(app.url(path))).await;
        assert_eq!(r.status, 401, "{path}");
        assert_error(&r.body, "unauthorized");
        let r = app
            .send(
                app.http
                    .get(app.url(path))
                    .bearer_auth("agt_not_a_real_key"),
            )
            .await;
        assert_eq!(r.status, 401, "{path}");
    }
    // Path variants never reach a handler.
    for path in [
        "/API/V1/agents",
        "//api/v1/agents",
        "/api/v1/agents/",
        "/api/v1/%2e%2e/agents",
    ] {
        let r = app.send(app.http.get(app.url(path))).await;
        assert!(r.status == 404 || r.status == 401, "{path}: {}", r.status);
        assert_ne!(r.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_precise_errors() {
    let app = TestApp::spawn().await;
    let raw = |body: &'static str| {
        app.send(
            app.http
                .post(app.url("/api/v1/agents"))
                .bearer_auth(&app.token)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    let r = raw("{not json").await;
    assert_eq!(r.status, 400);
    assert_error(&r.body, "invalid_json");

    let r = raw(r#"{"slug": 5, "name": "x", "model": "a/b"}"#).await;
    assert_eq!(r.status, 422);
    assert_error(&r.body, "validation_failed");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("slug")
    );

    let r = raw(r#"{"slug": "a", "name": "x", "model": "a/b", "colour": "red"}"#).await;
    assert_eq!(r.status, 422);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );

    let r = app
        .send(
            app.http
                .post(app.url("/api/v1/agents"))
                .bearer_auth(&app.token)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_error(&r.body, "unsupported_media_type");

    let big = format!("{{\"slug\": \"{}\"}}", "x".repeat(1024 * 1024 + 100));
    let r = app
        .send(
            app.http
                .post(app.url("/api/v1/agents"))
                .bearer_auth(&app.token)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_error(&r.body, "payload_too_large");

    let r = app.get("/api/v1/nothing-here").await;
    assert_eq!(r.status, 404);
    assert_error(&r.body, "route_not_found");
    let r = app
        .send(
            app.http
                .patch(app.url("/api/v1/agents"))
                .bearer_auth(&app.token),
        )
        .await;
    assert_eq!(r.status, 405);
    assert_error(&r.body, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_validation_names_what_exists() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "a", "name": "A", "model": "nope/m"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_error(&r.body, "unknown_provider");
    app.create_fake_provider().await;
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "a", "name": "A", "model": "fake/m", "tools": ["calculator", "shell"]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_error(&r.body, "unknown_tool");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("shell")
            && message.contains("calculator")
            && message.contains("current_time"),
        "{message}"
    );
    assert_eq!(r.body["error"]["details"]["unknown"], json!(["shell"]));

    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "Bad Slug!", "name": "", "model": "not a model", "max_steps": 0}),
        )
        .await;
    assert_eq!(r.status, 422);
    let fields: Vec<&str> = r.body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["slug", "name", "model", "max_steps"]);

    app.create_agent("a", "m", &[]).await;
    let r = app
        .post(
            "/api/v1/agents",
            json!({"slug": "a", "name": "A", "model": "fake/m"}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_error(&r.body, "agent_exists");

    let r = app.get("/api/v1/agents/missing").await;
    assert_eq!(r.status, 404);
    assert_error(&r.body, "agent_not_found");
    let r = app
        .post("/api/v1/agents/missing/runs", json!({"input": "x"}))
        .await;
    assert_eq!(r.status, 404);
    let r = app.get("/api/v1/runs/not-a-uuid").await;
    assert_eq!(r.status, 404);
    assert_error(&r.body, "run_not_found");
    let r = app
        .post("/api/v1/agents/a/runs", json!({"input": ""}))
        .await;
    assert_eq!(r.status, 422);
    let r = app.post("/api/v1/agents/a/runs", json!({"input": 5})).await;
    assert_eq!(r.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_keys_are_never_returned_and_other_orgs_see_nothing() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let r = app.get("/api/v1/providers/fake").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["api_key"], "********");
    let listing = app.get("/api/v1/providers").await;
    assert!(!listing.body.to_string().contains("sk-fake-provider-key"));
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "fake", "kind": "openai", "base_url": "http://x/v1"}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_error(&r.body, "provider_exists");
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "p2", "kind": "anthropic-ish", "base_url": "ftp://x"}),
        )
        .await;
    assert_eq!(r.status, 422);

    app.create_agent("mine", "echo", &[]).await;
    let run_id = app.start_run("mine", json!("hello")).await;
    app.wait_run(&run_id, std::time::Duration::from_secs(30))
        .await;

    let other = app.as_token(&app.other_org_key().await);
    for path in [
        "/api/v1/agents/mine".to_string(),
        format!("/api/v1/runs/{run_id}"),
        format!("/api/v1/runs/{run_id}/events"),
        "/api/v1/providers/fake".to_string(),
    ] {
        let r = other.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {:?}", r.body);
    }
    let r = other
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, 404);
    let r = other
        .post("/api/v1/agents/mine/runs", json!({"input": "x"}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(other.get("/api/v1/runs").await.body["data"], json!([]));
    assert_eq!(other.get("/api/v1/agents").await.body["data"], json!([]));
    // The other org can use the same names without conflict.
    let r = other
        .post(
            "/api/v1/providers",
            json!({"name": "fake", "kind": "openai", "base_url": app.fake.base_url()}),
        )
        .await;
    assert_eq!(r.status, 201);
    // The provider key never reaches the logs either.
    assert!(!app.server.log_text().contains("sk-fake-provider-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_and_revocation_is_immediate() {
    let app = TestApp::spawn().await;
    let r = app.post("/api/v1/api-keys", json!({"name": "ci"})).await;
    assert_eq!(r.status, 201);
    let key = r.body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("agt_") && key.len() >= 36);
    let id = r.body["id"].as_str().unwrap().to_string();
    let listed = app.get("/api/v1/api-keys").await;
    assert!(!listed.body.to_string().contains(&key));
    let with_key = app.as_token(&key);
    assert_eq!(with_key.get("/api/v1/agents").await.status, 200);
    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}")).await.status,
        204
    );
    assert_eq!(with_key.get("/api/v1/agents").await.status, 401);
}
