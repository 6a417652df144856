//! The audit log (every change recorded with who, where and what; read-only; exports safe for
//! spreadsheets) and GDPR: a person's export and erasure, an org's export and deletion.

use crate::harness::{SessionClient, TestApp};
use serde_json::{Value, json};
use std::time::Duration;

async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/audit-log{query}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_recorded_with_actor_origin_and_masked_secrets() {
    let app = TestApp::spawn().await;
    let ua = "=HYPERLINK(\"http://x\",\"y\")";
    let r = app
        .send(
            app.http
                .post(app.url("/api/v1/providers"))
                .bearer_auth(&app.token)
                .header("user-agent", ua)
                .header("x-request-id", "req-audit-1")
                .json(&json!({"name": "fake", "kind": "openai", "base_url": app.fake.base_url(), "api_key": "sk-audit-secret-1"})),
        )
        .await;
    assert_eq!(r.status, 201);
    app.create_agent("a1", "echo", &[]).await;
    app.put(
        "/api/v1/agents/a1",
        json!({"slug": "a1", "name": "renamed", "instructions": "x", "model": "fake/echo"}),
    )
    .await;
    let run = app
        .post("/api/v1/agents/a1/runs", json!({"input": "hi"}))
        .await;
    let (key_id, _) = app.create_key("viewer", None).await;
    app.delete(&format!("/api/v1/api-keys/{key_id}")).await;
    app.delete("/api/v1/agents/a1").await;

    let all = entries(&app, "?limit=200").await;
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in [
        "provider.create",
        "agent.create",
        "agent.update",
        "run.start",
        "api_key.create",
        "api_key.revoke",
        "agent.delete",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let provider = all
        .iter()
        .find(|e| e["action"] == "provider.create")
        .unwrap();
    assert_eq!(provider["actor_type"], "api_key");
    assert_eq!(provider["request_id"], "req-audit-1");
    assert_eq!(provider["user_agent"], ua);
    assert_eq!(provider["ip"], "127.0.0.1");
    assert!(!provider.to_string().contains("sk-audit-secret-1"));
    let update = all.iter().find(|e| e["action"] == "agent.update").unwrap();
    assert_eq!(update["before"]["name"], "a1");
    assert_eq!(update["after"]["name"], "renamed");
    let started = all.iter().find(|e| e["action"] == "run.start").unwrap();
    assert_eq!(started["target_id"], run.body["id"]);

    // Filters and a cursor.
    let agent_only = entries(&app, "?action=agent.*").await;
    assert!(
        agent_only.len() >= 3
            && agent_only
                .iter()
                .all(|e| e["action"].as_str().unwrap().starts_with("agent."))
    );
    // `_` in a prefix is literal, not a LIKE wildcard.
    let keys = entries(&app, "?action=api_key.*").await;
    let key_actions: Vec<&str> = keys.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(key_actions, vec!["api_key.revoke", "api_key.create"]);
    let page1 = app.get("/api/v1/audit-log?limit=2").await;
    let cursor = page1.body["next_cursor"].as_str().unwrap().to_string();
    let page2 = app
        .get(&format!("/api/v1/audit-log?limit=2&cursor={cursor}"))
        .await;
    let ids1: Vec<&Value> = page1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    for e in page2.body["data"].as_array().unwrap() {
        assert!(!ids1.contains(&&e["id"]), "pages overlap");
    }

    // The CSV export cannot smuggle a formula into a spreadsheet.
    let csv = app
        .http
        .get(app.url("/api/v1/audit-log/export?format=csv"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    assert!(text.contains("\"'=HYPERLINK("), "{text}");
    assert!(!text.contains(",\"=HYPERLINK"));
    assert!(!text.contains("sk-audit-secret-1"));

    // No route changes or deletes entries.
    let doc = app.get("/api/v1/openapi.json").await.body;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/audit-log") {
            let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
            assert_eq!(methods, vec!["get"], "{path}");
        }
    }
    for method in ["DELETE", "PUT", "PATCH", "POST"] {
        let status = app
            .raw_status(
                method,
                "/api/v1/audit-log",
                &format!("Authorization: Bearer {}\r\n", app.token),
            )
            .await;
        assert_eq!(status, 405, "{method} /audit-log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_can_export_and_erase_their_data() {
    let app = TestApp::spawn().await;
    let (mut m, id) = app
        .add_member("gdpr@example.com", "member", None, "a fine passphrase 2")
        .await;
    app.create_fake_provider().await;
    m.post(
        "/api/v1/agents",
        json!({"slug": "g", "name": "g", "instructions": "x", "model": "fake/echo"}),
    )
    .await;
    let export = m.get("/api/v1/me/export").await;
    assert_eq!(export.status, 200);
    assert_eq!(export.body["user"]["email"], "gdpr@example.com");
    assert_eq!(export.body["memberships"][0]["role"], "member");
    assert!(!export.body["sessions"].as_array().unwrap().is_empty());
    assert!(
        export.body["audit_log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "agent.create")
    );
    let text = export.body.to_string();
    assert!(!text.contains("argon2"), "no password hash in the export");
    // API keys cannot use the personal routes.
    assert_eq!(app.get("/api/v1/me/export").await.status, 403);

    assert_eq!(m.delete("/api/v1/me").await.status, 204);
    assert_eq!(m.get("/api/v1/me").await.status, 401);
    let mut again = SessionClient::new(&app);
    assert_eq!(
        again
            .sign_in("gdpr@example.com", "a fine passphrase 2")
            .await
            .status,
        401
    );
    // The audit log keeps the actor's id, not their email or address.
    let log = app
        .get("/api/v1/audit-log?limit=200")
        .await
        .body
        .to_string();
    assert!(!log.contains("gdpr@example.com"), "{log}");
    let mine = app.get(&format!("/api/v1/audit-log?actor_id={id}")).await;
    let rows = mine.body["data"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|e| {
        e["actor_label"]
            .as_str()
            .unwrap()
            .starts_with("erased user")
            && e["ip"].is_null()
    }));
    // The last owner cannot erase themselves.
    let mut owner = app.owner_session().await;
    let r = owner.delete("/api/v1/me").await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["code"], "last_owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_exports_and_deletes_the_organization_as_jobs() {
    let app = TestApp::spawn().await;
    let other = app.as_token(&app.other_org_key().await);
    other.post("/api/v1/providers", json!({"name": "p", "kind": "openai", "base_url": "https://api.example.com/v1", "api_key": "sk-org-b"}))
        .await;
    other
        .post(
            "/api/v1/agents",
            json!({"slug": "b", "name": "b", "instructions": "x", "model": "p/m"}),
        )
        .await;
    let task = other.post("/api/v1/org/export", json!({})).await;
    assert_eq!(task.status, 202);
    let id = task.body["id"].as_str().unwrap().to_string();
    let mut done = Value::Null;
    for _ in 0..100 {
        done = other.get(&format!("/api/v1/org/tasks/{id}")).await.body;
        if done["status"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["agents"][0]["spec"]["slug"], "b");
    assert!(!done.to_string().contains("sk-org-b"));
    // Org A cannot see B's task.
    assert_eq!(
        app.get(&format!("/api/v1/org/tasks/{id}")).await.status,
        404
    );
    // An admin key may not delete; the owner may.
    let admin = other
        .post("/api/v1/api-keys", json!({"name": "a", "role": "admin"}))
        .await;
    let admin = other.as_token(admin.body["key"].as_str().unwrap());
    assert_eq!(admin.delete("/api/v1/org").await.status, 403);
    let del = other.delete("/api/v1/org").await;
    assert_eq!(del.status, 202, "{:?}", del.body);
    let mut gone = false;
    for _ in 0..100 {
        if other.get("/api/v1/agents").await.status == 401 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the deleted org's keys still work");
    // Org A is untouched.
    assert_eq!(app.get("/api/v1/org").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_past_the_configured_retention_are_swept() {
    let mut app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let _ = app.server.terminate();
    let db = agentry_store::Db::connect(&app.server.storage.database_url, 1)
        .await
        .unwrap();
    let old = agentry_store::audit::AuditRow {
        id: uuid::Uuid::now_v7(),
        org_id: agentry_store::orgs::DEFAULT_ORG.0,
        workspace_id: None,
        actor_type: "system".into(),
        actor_id: None,
        actor_label: "system".into(),
        action: "test.old".into(),
        target_type: "test".into(),
        target_id: None,
        before: None,
        after: None,
        ip: None,
        user_agent: None,
        request_id: None,
        at: chrono::Utc::now() - chrono::Duration::days(3),
    };
    agentry_store::audit::append(&db, &old).await.unwrap();
    db.close().await;
    let server = crate::harness::Server::start(
        &app.server.storage,
        &[("AGENTRY_AUDIT_RETENTION_DAYS", "2")],
    );
    let app = TestApp {
        server,
        ..app.as_token(&app.token)
    };
    let mut swept = false;
    for _ in 0..50 {
        let all = entries(&app, "?limit=200").await;
        if all.iter().all(|e| e["action"] != "test.old") {
            assert!(
                all.iter().any(|e| e["action"] == "provider.create"),
                "recent entries stay"
            );
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swept, "the old entry outlived the retention");
}
