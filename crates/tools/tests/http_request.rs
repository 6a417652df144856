//! `http_request` and `GuardedHttpClient` against a real local server (allow-listed as
//! `127.0.0.1`): size cap, idempotency key, redirects, timeouts.

mod common;

use agentry_core::clock::system_clock;
use agentry_core::tool::{Tool, ToolContext};
use agentry_tools::{
    GuardConfig, GuardedHttpClient, GuardedRequest, HttpRequestTool, ToolRegistry, ToolsConfig,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn ctx() -> ToolContext {
    ToolContext {
        idempotency_key: "run-42-step-3-call-0".into(),
    }
}

fn allow_local() -> GuardConfig {
    GuardConfig {
        allow_hosts: vec!["127.0.0.1".into()],
        ..GuardConfig::default()
    }
}

fn tool(config: GuardConfig) -> HttpRequestTool {
    HttpRequestTool::new(Arc::new(
        GuardedHttpClient::new(config).expect("client builds"),
    ))
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[tokio::test]
async fn get_returns_status_headers_and_body() {
    let addr = common::serve().await;
    let out = tool(allow_local())
        .call(json!({"url": url(addr, "/hello")}), &ctx())
        .await
        .expect("allowed");
    assert_eq!(
        out,
        json!({
            "status": 200,
            "headers": {"content-type": "text/plain; charset=utf-8", "content-length": "5"},
            "body": "hello",
            "truncated": false
        })
    );
}

#[tokio::test]
async fn body_over_the_default_cap_is_truncated() {
    let addr = common::serve().await;
    let out = tool(allow_local())
        .call(json!({"url": url(addr, "/big")}), &ctx())
        .await
        .expect("allowed");
    assert_eq!(out["truncated"], json!(true));
    assert_eq!(
        out["body"].as_str().map(str::len),
        Some(agentry_tools::guard::DEFAULT_MAX_RESPONSE_BYTES)
    );
    assert_eq!(
        out["headers"]["content-length"],
        json!(common::BIG_BODY_BYTES.to_string())
    );
}

#[tokio::test]
async fn cap_is_configurable() {
    let addr = common::serve().await;
    let client = GuardedHttpClient::new(GuardConfig {
        max_response_bytes: 1000,
        ..allow_local()
    })
    .expect("client builds");
    let response = client
        .send(GuardedRequest::get(url(addr, "/big")))
        .await
        .expect("allowed");
    assert!(response.truncated);
    assert_eq!(response.body.len(), 1000);
    let response = client
        .send(GuardedRequest::get(url(addr, "/hello")))
        .await
        .expect("allowed");
    assert!(!response.truncated);
}

#[tokio::test]
async fn post_sends_the_calls_idempotency_key() {
    let addr = common::serve().await;
    let out = tool(allow_local())
        .call(
            json!({"url": url(addr, "/echo"), "method": "POST", "body": "payload"}),
            &ctx(),
        )
        .await
        .expect("allowed");
    let echoed: Value =
        serde_json::from_str(out["body"].as_str().unwrap_or_default()).expect("echo returns JSON");
    assert_eq!(
        echoed,
        json!({"idempotency_key": "run-42-step-3-call-0", "body": "payload"})
    );
}

#[tokio::test]
async fn a_caller_supplied_idempotency_key_wins() {
    let addr = common::serve().await;
    let out = tool(allow_local())
        .call(
            json!({
                "url": url(addr, "/echo"),
                "method": "POST",
                "headers": {"Idempotency-Key": "caller-key"},
                "body": "{}"
            }),
            &ctx(),
        )
        .await
        .expect("allowed");
    let echoed: Value =
        serde_json::from_str(out["body"].as_str().unwrap_or_default()).expect("echo returns JSON");
    assert_eq!(echoed["idempotency_key"], json!("caller-key"));
}

#[tokio::test]
async fn redirects_are_followed() {
    let addr = common::serve().await;
    let client = GuardedHttpClient::new(allow_local()).expect("client builds");
    let response = client
        .send(GuardedRequest::get(url(addr, "/redirect-hello")))
        .await
        .expect("allowed");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.url.path(), "/hello");

    // 303 turns POST into GET; 307 keeps POST, its body and the idempotency key.
    let response = client
        .send(GuardedRequest::post(url(addr, "/see-other"), "x"))
        .await
        .expect("allowed");
    assert_eq!(response.body, b"GET");
    let out = tool(allow_local())
        .call(
            json!({"url": url(addr, "/temporary"), "method": "POST", "body": "kept"}),
            &ctx(),
        )
        .await
        .expect("allowed");
    let echoed: Value =
        serde_json::from_str(out["body"].as_str().unwrap_or_default()).expect("echo returns JSON");
    assert_eq!(
        echoed,
        json!({"idempotency_key": "run-42-step-3-call-0", "body": "kept"})
    );
}

#[tokio::test]
async fn redirect_to_metadata_is_refused_at_the_hop() {
    let addr = common::serve().await;
    let err = tool(allow_local())
        .call(json!({"url": url(addr, "/to-metadata")}), &ctx())
        .await
        .expect_err("metadata hop");
    assert_eq!(err.code, "blocked_address");
    assert!(err.message.contains("169.254.169.254"), "{}", err.message);
}

#[tokio::test]
async fn redirect_to_another_scheme_is_refused() {
    let addr = common::serve().await;
    let err = tool(allow_local())
        .call(json!({"url": url(addr, "/to-file")}), &ctx())
        .await
        .expect_err("file hop");
    assert_eq!(err.code, "invalid_url");
}

#[tokio::test]
async fn redirect_loop_is_too_many_redirects() {
    let addr = common::serve().await;
    let err = tool(allow_local())
        .call(json!({"url": url(addr, "/loop")}), &ctx())
        .await
        .expect_err("loop");
    assert_eq!(err.code, "too_many_redirects");
    assert!(err.message.contains('5'), "{}", err.message);
}

#[tokio::test]
async fn the_local_server_is_refused_unless_allow_listed() {
    let addr = common::serve().await;
    let err = tool(GuardConfig::default())
        .call(json!({"url": url(addr, "/hello")}), &ctx())
        .await
        .expect_err("loopback");
    assert_eq!(err.code, "blocked_address");
    assert!(err.message.contains("loopback"), "{}", err.message);
    assert!(err.message.contains("allow-list"), "{}", err.message);
}

#[tokio::test]
async fn slow_servers_time_out() {
    let addr = common::serve().await;
    let config = GuardConfig {
        timeout: Duration::from_millis(300),
        ..allow_local()
    };
    let err = tool(config)
        .call(json!({"url": url(addr, "/slow")}), &ctx())
        .await
        .expect_err("slow");
    assert_eq!(err.code, "timeout");
}

#[tokio::test]
async fn refused_connections_are_request_failures() {
    // Bind and drop to find a port nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let err = tool(allow_local())
        .call(json!({"url": format!("http://127.0.0.1:{port}/")}), &ctx())
        .await
        .expect_err("nothing listening");
    assert_eq!(err.code, "request_failed");
}

#[tokio::test]
async fn argument_rules() {
    let addr = common::serve().await;
    let tool = tool(allow_local());
    for args in [
        json!({"url": url(addr, "/hello"), "headers": {"Host": "example.com"}}),
        json!({"url": url(addr, "/hello"), "headers": {"transfer-encoding": "chunked"}}),
        json!({"url": url(addr, "/hello"), "body": "GET with a body"}),
        json!({"url": url(addr, "/hello"), "method": "DELETE"}),
    ] {
        let err = tool.call(args.clone(), &ctx()).await.expect_err("refused");
        assert_eq!(err.code, "invalid_arguments", "{args}");
    }
    // Ordinary headers reach the server.
    let out = tool
        .call(
            json!({"url": url(addr, "/headers"), "headers": {"X-Custom": "yes"}}),
            &ctx(),
        )
        .await
        .expect("allowed");
    let seen: Value = serde_json::from_str(out["body"].as_str().unwrap_or_default())
        .expect("headers returns JSON");
    assert_eq!(seen["x-custom"], json!("yes"));
    assert_eq!(seen["host"], json!(addr.to_string()));
}

#[tokio::test]
async fn through_the_registry() {
    let addr = common::serve().await;
    let registry = ToolRegistry::builtin(ToolsConfig {
        http: allow_local(),
        clock: system_clock(),
    });
    let raw = json!({"url": url(addr, "/hello")}).to_string();
    let out = registry
        .invoke("http_request", &raw, &ctx())
        .await
        .expect("allowed");
    assert_eq!(out["body"], json!("hello"));
    let err = registry
        .invoke(
            "http_request",
            r#"{"url": "http://169.254.169.254/latest"}"#,
            &ctx(),
        )
        .await
        .expect_err("metadata");
    assert_eq!(err.code, "blocked_address");
}
