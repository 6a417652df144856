//! Health, readiness, metrics, the OpenAPI document and the error-code table.

use crate::harness::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let r = app.send(app.http.get(app.url("/healthz"))).await;
    assert_eq!(r.status, 200);
    let r = app.send(app.http.get(app.url("/readyz"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["checks"]["database"], true);
    assert_eq!(r.body["checks"]["workers"], true);
    app.create_fake_provider().await;
    app.create_agent("calc", "echo", &["calculator"]).await;
    let r = app
        .post(
            "/api/v1/agents/calc/runs",
            json!({"input": "what is 2*2?", "wait": true}),
        )
        .await;
    assert_eq!(r.body["status"], "completed");
    let text = app.send(app.http.get(app.url("/metrics"))).await.body;
    let text = text.as_str().unwrap();
    for needle in [
        "agentry_http_requests_total",
        "route=\"/api/v1/agents/{slug}/runs\"",
        "agentry_runs{status=\"completed\"} 1",
        "agentry_model_call_duration_seconds",
        "agentry_model_tokens_total",
        "agentry_tool_calls_total{tool=\"calculator\",outcome=\"ok\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // Request ids come back and appear in the logs.
    let r = app.get("/api/v1/agents").await;
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let logs = app.server.log_text();
    let line = logs
        .lines()
        .find(|l| l.contains(&request_id))
        .expect("a log line with the request id");
    let parsed: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(parsed["request_id"], request_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_every_route_and_matches_the_snapshot() {
    let app = TestApp::spawn().await;
    let r = app
        .send(app.http.get(app.url("/api/v1/openapi.json")))
        .await;
    assert_eq!(r.status, 200);
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/providers", "post"),
        ("/providers", "get"),
        ("/providers/{name}", "get"),
        ("/providers/{name}", "delete"),
        ("/agents", "post"),
        ("/agents", "get"),
        ("/agents/{slug}", "get"),
        ("/agents/{slug}", "put"),
        ("/agents/{slug}", "delete"),
        ("/agents/{slug}/runs", "post"),
        ("/runs", "get"),
        ("/runs/{id}", "get"),
        ("/runs/{id}/cancel", "post"),
        ("/runs/{id}/events", "get"),
        ("/api-keys", "post"),
        ("/api-keys", "get"),
        ("/api-keys/{id}", "delete"),
        ("/apply", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    insta::assert_json_snapshot!("openapi", doc);
}

#[test]
fn every_error_code_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"))
        .expect("docs/errors.md");
    for code in agentry_core::ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
        assert!(
            doc.contains(&row),
            "docs/errors.md lacks the row starting {row}"
        );
    }
}
