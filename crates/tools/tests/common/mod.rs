//! A local axum server with the endpoints the HTTP tests need, on 127.0.0.1:0.

#![allow(dead_code)] // Each test binary uses a different subset.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

pub const BIG_BODY_BYTES: usize = 300 * 1024;

pub async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/big", get(|| async { "a".repeat(BIG_BODY_BYTES) }))
        .route("/echo", post(echo))
        .route(
            "/method",
            any(|method: Method| async move { method.to_string() }),
        )
        .route("/headers", get(headers))
        .route("/slow", get(slow))
        .route(
            "/redirect-hello",
            get(|| async { redirect(StatusCode::FOUND, "/hello") }),
        )
        .route(
            "/to-metadata",
            get(|| async { redirect(StatusCode::FOUND, "http://169.254.169.254/latest") }),
        )
        .route(
            "/loop",
            get(|| async { redirect(StatusCode::FOUND, "/loop") }),
        )
        .route(
            "/see-other",
            post(|| async { redirect(StatusCode::SEE_OTHER, "/method") }),
        )
        .route(
            "/temporary",
            post(|| async { redirect(StatusCode::TEMPORARY_REDIRECT, "/echo") }),
        )
        .route(
            "/to-file",
            get(|| async { redirect(StatusCode::FOUND, "file:///etc/passwd") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn redirect(status: StatusCode, location: &'static str) -> impl IntoResponse {
    (status, [(header::LOCATION, location)])
}

async fn echo(headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    axum::Json(json!({
        "idempotency_key": key,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn headers(headers: HeaderMap) -> impl IntoResponse {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
        .collect();
    axum::Json(serde_json::Value::Object(map))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "finally"
}
