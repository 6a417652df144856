//! Regression tests named after vulnerabilities found in peer platforms
//! (`shared/research/F-reliability.md` §7.1). Each reproduces the attack against Agentry.

use crate::harness::{ADMIN_EMAIL, SessionClient, TestApp};
use serde_json::json;

/// Langflow CVE-2026-55255: a flow looked up by UUID without an owner check let one user run
/// another's flow with the victim's credentials. Here: another org's run and agent by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langflow_cve_2026_55255_objects_by_id_are_not_reachable_from_another_org() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("victim", "echo", &[]).await;
    let run = app.start_run("victim", json!("secret plans")).await;
    let attacker = app.as_token(&app.other_org_key().await);
    for path in [
        format!("/api/v1/runs/{run}"),
        format!("/api/v1/runs/{run}/events"),
        "/api/v1/agents/victim".to_string(),
        "/api/v1/providers/fake".to_string(),
    ] {
        let r = attacker.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {:?}", r.body);
    }
    let r = attacker
        .post("/api/v1/agents/victim/runs", json!({"input": "x"}))
        .await;
    assert_eq!(r.status, 404);
    let r = attacker
        .post(&format!("/api/v1/runs/{run}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, 404);
    assert!(
        !attacker
            .get("/api/v1/runs")
            .await
            .body
            .to_string()
            .contains(&run)
    );
}

/// Flowise GHSA-f6hc-c5jr-878p: `reset-password` accepted a null or empty token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowise_ghsa_f6hc_null_or_empty_reset_tokens_reset_nothing() {
    let app = TestApp::spawn().await;
    let mut anon = SessionClient::new(&app);
    for token in [json!(null), json!(""), json!([]), json!({}), json!(false)] {
        let r = anon
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": token, "password": "attacker chosen passphrase"}),
            )
            .await;
        assert!(r.status == 400 || r.status == 422, "{token}: {}", r.status);
    }
    // The owner's password still works and the attacker's does not.
    assert_eq!(
        anon.sign_in(ADMIN_EMAIL, "attacker chosen passphrase")
            .await
            .status,
        401
    );
    assert_eq!(
        app.owner_session().await.get("/api/v1/me").await.status,
        200
    );
}

/// Flowise GHSA-c2c9-mfw7-p8hw: an API-key lookup was not scoped by workspace, disclosing
/// another workspace's configuration. Here: a key of workspace 2 against workspace 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowise_ghsa_c2c9_a_workspace_key_cannot_use_another_workspace() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("ws1-agent", "echo", &[]).await;
    let ws1 = app.get("/api/v1/workspaces").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ws2 = app.post("/api/v1/workspaces", json!({"name": "two"})).await;
    let ws2 = ws2.body["id"].as_str().unwrap().to_string();
    let (_, key) = app.create_key("owner", Some(&ws2)).await;
    let k = app.as_token(&key);
    assert_eq!(k.get("/api/v1/agents/ws1-agent").await.status, 404);
    assert!(
        k.get("/api/v1/agents").await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = k
        .send(
            app.http
                .get(app.url("/api/v1/agents"))
                .bearer_auth(&key)
                .header("x-agentry-workspace", &ws1),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // Org-level data (providers, members, keys) is out of its reach entirely.
    assert_eq!(k.get("/api/v1/providers").await.status, 403);
    assert_eq!(k.get("/api/v1/members").await.status, 403);
    assert_eq!(
        k.post(
            "/api/v1/api-keys",
            json!({"name": "escalate", "role": "owner"})
        )
        .await
        .status,
        403
    );
}

/// n8n GHSA-h3jj-5f3v-3685: the retry-execution API checked `read` instead of `execute`.
/// Here: a viewer can read runs but not start, re-run or cancel them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n8n_ghsa_h3jj_starting_and_cancelling_runs_needs_the_execute_permission() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("a", "echo", &[]).await;
    let run = app.start_run("a", json!("hi")).await;
    let (_, viewer) = app.create_key("viewer", None).await;
    let v = app.as_token(&viewer);
    assert_eq!(v.get(&format!("/api/v1/runs/{run}")).await.status, 200);
    let r = v
        .post("/api/v1/agents/a/runs", json!({"input": "again"}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["details"]["action"], "runs:execute");
    assert_eq!(
        v.post(&format!("/api/v1/runs/{run}/cancel"), json!({}))
            .await
            .status,
        403
    );
    let (_, member) = app.create_key("member", None).await;
    assert_eq!(
        app.as_token(&member)
            .post("/api/v1/agents/a/runs", json!({"input": "ok"}))
            .await
            .status,
        202
    );
}

/// Flowise CVE-2024-31621: the auth middleware matched `/api/v1` case-sensitively, so
/// `/API/V1/...` skipped it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowise_cve_2024_31621_uppercase_api_paths_do_not_skip_authentication() {
    let app = TestApp::spawn().await;
    for path in [
        "/API/V1/providers",
        "/Api/V1/api-keys",
        "/api/V1/members",
        "/API/v1/audit-log",
    ] {
        let status = app.raw_status("GET", path, "").await;
        assert!(status == 404 || status == 401, "{path}: {status}");
    }
}

/// Flowise CVE-2026-46440: a plaintext credential compare with no rate limit allowed
/// unlimited guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowise_cve_2026_46440_password_guessing_is_throttled() {
    let app = TestApp::spawn().await;
    let mut attacker = SessionClient::new(&app);
    let mut throttled = false;
    for i in 0..15 {
        let r = attacker
            .sign_in(ADMIN_EMAIL, &format!("guess number {i}"))
            .await;
        if r.status == 429 {
            throttled = true;
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert!(throttled, "15 guesses in a row were all answered");
}

/// browser-use web-ui #168: the stored LLM key was sent to any user-entered base URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_use_168_a_stored_key_is_not_sent_to_a_new_base_url() {
    let app = TestApp::spawn().await;
    let evil = agentry_fakellm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    app.create_fake_provider().await;
    let r = app
        .post(
            "/api/v1/apply",
            json!({"resources": [{"apiVersion": "agentry/v1", "kind": "Provider", "metadata": {"name": "fake"},
                "spec": {"kind": "openai", "base_url": evil.base_url()}}]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["code"], "provider_key_required");
    assert!(evil.requests().is_empty());
}

/// Dify CVE-2024-11822 and #35947: outbound fetches that skipped the SSRF guard. Here every
/// user-set URL goes through it: a provider pointing at cloud metadata is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dify_cve_2024_11822_user_set_urls_cannot_reach_cloud_metadata() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/providers",
            json!({"name": "meta", "kind": "openai", "base_url": "http://169.254.169.254/latest"}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r = app
        .post(
            "/api/v1/sso-providers",
            json!({"slug": "meta", "display_name": "m", "discovery_url": "http://169.254.169.254/",
            "client_id": "x", "client_secret": "x"}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
}

/// Langflow CVE-2026-33017: an `AUTO_LOGIN` superuser token was handed to anyone. Agentry has
/// no unauthenticated session: without credentials every tenant route answers 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langflow_cve_2026_33017_there_is_no_automatic_sign_in() {
    let app = TestApp::spawn().await;
    let mut anon = SessionClient::new(&app);
    for path in [
        "/api/v1/me",
        "/api/v1/agents",
        "/api/v1/org",
        "/api/v1/api-keys",
    ] {
        assert_eq!(anon.get(path).await.status, 401, "{path}");
    }
    let home = anon.get("/ui/agents").await;
    assert_eq!(home.status, 303);
    assert!(anon.cookie.is_none());
}
