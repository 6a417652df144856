//! Secrets: envelope encryption with master-key rotation, keys bound to their base URL, a
//! canary secret that never shows up anywhere, and the SSRF corpus against every outbound URL a
//! user can set (provider base URLs, OIDC discovery).

use crate::harness::{MASTER_KEY, Server, TestApp};
use agentry_fakellm::Reply;
use serde_json::json;
use std::time::Duration;

const CANARY: &str = "sk-canary-7f3a9d2e1b8c4f60a5e3d7b9c1f2e4a6";

/// Every Authorization header the fake model server saw.
fn seen_keys(app: &TestApp) -> Vec<String> {
    app.fake
        .requests()
        .iter()
        .filter_map(|r| r.authorization.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_secret_never_appears_in_responses_logs_or_exports() {
    let app = TestApp::spawn().await;
    let mut seen = String::new();
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "fake", "kind": "openai", "base_url": app.fake.base_url(), "api_key": CANARY}),
        )
        .await;
    assert_eq!(r.status, 201);
    seen.push_str(&r.body.to_string());
    app.create_agent("c", "echo", &[]).await;
    let run = app
        .post(
            "/api/v1/agents/c/runs",
            json!({"input": "hello", "wait": true}),
        )
        .await;
    assert_eq!(run.body["status"], "completed", "{:?}", run.body);
    assert!(
        seen_keys(&app)
            .iter()
            .any(|k| k == &format!("Bearer {CANARY}")),
        "the key does reach its provider"
    );
    // Apply with the same key, list, get, audit log (JSON + CSV), org export, run trace.
    let apply = app
        .post(
            "/api/v1/apply",
            json!({"resources": [{"apiVersion": "agentry/v1", "kind": "Provider", "metadata": {"name": "fake2"},
                "spec": {"kind": "openai", "base_url": app.fake.base_url(), "api_key": CANARY}}]}),
        )
        .await;
    assert_eq!(apply.status, 200, "{:?}", apply.body);
    for path in [
        "/api/v1/providers",
        "/api/v1/providers/fake",
        "/api/v1/audit-log",
        "/api/v1/audit-log/export?format=json",
        "/api/v1/audit-log/export?format=csv",
        &format!("/api/v1/runs/{}", run.body["id"].as_str().unwrap()),
        &format!("/api/v1/runs/{}/events", run.body["id"].as_str().unwrap()),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        seen.push_str(&r.body.to_string());
    }
    let task = app.post("/api/v1/org/export", json!({})).await;
    let id = task.body["id"].as_str().unwrap().to_string();
    let mut export = serde_json::Value::Null;
    for _ in 0..100 {
        export = app.get(&format!("/api/v1/org/tasks/{id}")).await.body;
        if export["status"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(export["status"], "succeeded", "{export}");
    assert_eq!(export["result"]["providers"][0]["api_key_set"], true);
    seen.push_str(&export.to_string());
    // A bad provider request echoes no secret either.
    let bad = app
        .post("/api/v1/providers", json!({"name": "fake", "kind": "openai", "base_url": app.fake.base_url(), "api_key": CANARY}))
        .await;
    assert_eq!(bad.status, 409);
    seen.push_str(&bad.body.to_string());
    assert!(!seen.contains(CANARY), "the canary leaked into a response");
    assert!(
        !app.server.log_text().contains(CANARY),
        "the canary leaked into the logs"
    );
    // At rest it is ciphertext.
    let db = agentry_store::Db::connect(&app.server.storage.database_url, 1)
        .await
        .unwrap();
    let rows = agentry_store::providers::list(&db, agentry_store::orgs::default_scope().org())
        .await
        .unwrap();
    for row in rows {
        let stored = row.api_key_encrypted.unwrap();
        assert!(stored.starts_with("v2:") && !stored.contains(CANARY));
    }
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_key_is_never_sent_to_a_changed_base_url() {
    let app = TestApp::spawn().await;
    let evil = agentry_fakellm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    app.create_fake_provider().await;
    app.create_agent("b", "echo", &[]).await;
    // Pointing the provider elsewhere without entering the key again is refused.
    let r = app
        .post(
            "/api/v1/apply",
            json!({"resources": [{"apiVersion": "agentry/v1", "kind": "Provider", "metadata": {"name": "fake"},
                "spec": {"kind": "openai", "base_url": evil.base_url()}}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "provider_key_required");
    // Even if the row is changed behind the API's back, the key does not decrypt for the new URL.
    let db = agentry_store::Db::connect(&app.server.storage.database_url, 1)
        .await
        .unwrap();
    let scope = agentry_store::orgs::default_scope().org();
    let mut row = agentry_store::providers::get(&db, scope, "fake")
        .await
        .unwrap()
        .unwrap();
    row.base_url = evil.base_url();
    agentry_store::providers::update(&db, scope, &row)
        .await
        .unwrap();
    db.close().await;
    let run = app
        .post(
            "/api/v1/agents/b/runs",
            json!({"input": "hello", "wait": true}),
        )
        .await;
    assert_eq!(run.body["status"], "failed", "{:?}", run.body);
    assert!(
        evil.requests().iter().all(|r| r.authorization.is_none()),
        "the key reached a URL it was not entered for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_keeps_every_secret_readable() {
    let mut app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("r", "echo", &[]).await;
    let _ = app.server.terminate();
    let new_key = "0202020202020202020202020202020202020202020202020202020202020202";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args([
            "admin",
            "rotate-master-key",
            "--new-key",
            new_key,
            "--data-dir",
        ])
        .arg(&app.server.storage.data_dir)
        .env("AGENTRY_DATABASE_URL", &app.server.storage.database_url)
        .env("AGENTRY_MASTER_KEY", MASTER_KEY)
        .env_remove("AGENTRY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("re-wrapped 1 data keys"));
    // The old key alone can no longer open the org's data key…
    {
        let old_only = Server::start(&app.server.storage, &[]);
        let app_old = TestApp {
            server: old_only,
            ..app.as_token(&app.token)
        };
        let run = app_old
            .post(
                "/api/v1/agents/r/runs",
                json!({"input": "hi", "wait": true}),
            )
            .await;
        assert_eq!(run.body["status"], "failed", "{:?}", run.body);
    }
    // …the new one opens everything, and the provider gets the same key as before.
    let fresh = Server::start(&app.server.storage, &[("AGENTRY_MASTER_KEY", new_key)]);
    let app_new = TestApp {
        server: fresh,
        ..app.as_token(&app.token)
    };
    app_new
        .fake
        .push_script("echo", vec![Reply::text("rotated")]);
    let run = app_new
        .post(
            "/api/v1/agents/r/runs",
            json!({"input": "hi", "wait": true}),
        )
        .await;
    assert_eq!(run.body["status"], "completed", "{:?}", run.body);
    assert!(
        seen_keys(&app_new)
            .iter()
            .any(|k| k == "Bearer sk-fake-provider-key")
    );
}

/// Loopback, private, link-local, metadata and encoded forms of them (F-reliability §7.2 C).
const SSRF_CORPUS: &[&str] = &[
    "http://127.0.0.1/v1",
    "http://127.1/v1",
    "http://2130706433/v1",
    "http://0177.0.0.1/v1",
    "http://0x7f000001/v1",
    "http://0.0.0.0/v1",
    "http://[::1]/v1",
    "http://[::ffff:127.0.0.1]/v1",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/v1",
    "http://[2002:a9fe:a9fe::]/v1",
    "http://[64:ff9b::a9fe:a9fe]/v1",
    "http://10.0.0.1/v1",
    "http://172.16.0.1/v1",
    "http://192.168.1.1/v1",
    "http://100.64.0.1/v1",
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00:ec2::254]/v1",
    "http://metadata.google.internal/v1",
    "http://100.100.100.200/v1",
    "http://[fe80::1]/v1",
    "http://[fc00::1]/v1",
    "http://224.0.0.1/v1",
    "http://evil@127.0.0.1/v1",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://127.0.0.1/",
    "dict://127.0.0.1:11211/",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_base_urls_and_sso_discovery_refuse_the_ssrf_corpus() {
    // No allow-list here: nothing private is reachable.
    let app = TestApp::spawn_with(&[("AGENTRY_HTTP_ALLOW_HOSTS", "[]")]).await;
    for (i, url) in SSRF_CORPUS.iter().enumerate() {
        let r = app
            .post(
                "/api/v1/providers",
                json!({"name": format!("p{i}"), "kind": "openai", "base_url": url, "api_key": "sk-x"}),
            )
            .await;
        assert_eq!(
            r.status, 422,
            "provider base_url {url} was accepted: {:?}",
            r.body
        );
        let r = app
            .post(
                "/api/v1/sso-providers",
                json!({"slug": format!("s{i}"), "display_name": "x", "discovery_url": url,
                    "client_id": "x", "client_secret": "x"}),
            )
            .await;
        assert_eq!(
            r.status, 422,
            "discovery_url {url} was accepted: {:?}",
            r.body
        );
    }
    // The fake model server on loopback is refused too, at creation…
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "loop", "kind": "openai", "base_url": app.fake.base_url()}),
        )
        .await;
    assert_eq!(r.status, 422);
    // …and a name that resolves to loopback is refused when connecting (DNS is checked).
    let r = app
        .post("/api/v1/providers", json!({"name": "named", "kind": "openai", "base_url": format!("http://localhost.:{}/v1", app.fake.base_url().rsplit(':').next().unwrap().trim_end_matches("/v1"))}))
        .await;
    if r.status == 201 {
        app.create_agent_with_model("n", "named/echo").await;
        let run = app
            .post(
                "/api/v1/agents/n/runs",
                json!({"input": "hi", "wait": true}),
            )
            .await;
        assert_eq!(run.body["status"], "failed", "{:?}", run.body);
    } else {
        assert_eq!(r.status, 422);
    }
    assert!(app.fake.requests().is_empty(), "a request reached loopback");
}
