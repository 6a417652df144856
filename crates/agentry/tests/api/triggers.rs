//! Triggers end to end: management and validation, schedules firing once per tick across two
//! servers on one database, signed webhooks (tampering, staleness, replays, rotation), and
//! event triggers (including the sweep that repairs a lost firing after a restart).

use crate::harness::{Response, Server, TestApp};
use agentry_triggers::webhook;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn patch(app: &TestApp, path: &str, body: Value) -> Response {
    app.send(
        app.http
            .patch(app.url(path))
            .bearer_auth(&app.token)
            .json(&body),
    )
    .await
}

async fn create_trigger(app: &TestApp, body: Value) -> Value {
    let r = app.post("/api/v1/triggers", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

fn field_of(r: &Response) -> String {
    r.body["error"]["details"]["fields"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn fires(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/triggers/{id}/fires?limit=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

/// Polls until `check` holds (or panics with the server log after `timeout`).
async fn eventually<F, Fut>(app: &TestApp, timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        if Instant::now() > deadline {
            panic!(
                "{what} did not happen\nserver log:\n{}",
                app.server.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn runs_of(app: &TestApp, agent: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/runs?agent={agent}&limit=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_managed_and_validated_with_field_errors() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("nightly", "echo", &[]).await;
    let schedule = |cron: &str, tz: &str| {
        json!({"name": "nightly", "kind": "schedule", "target": {"kind": "agent", "slug": "nightly"},
               "config": {"cron": cron, "timezone": tz}})
    };

    let bad_cron = app
        .post("/api/v1/triggers", schedule("every day at nine", "UTC"))
        .await;
    assert_eq!(bad_cron.status, 422, "{:?}", bad_cron.body);
    assert_eq!(bad_cron.body["error"]["code"], "validation_failed");
    assert_eq!(field_of(&bad_cron), "config.cron");
    let bad_zone = app
        .post(
            "/api/v1/triggers",
            schedule("0 9 * * *", "Mars/Olympus_Mons"),
        )
        .await;
    assert_eq!(bad_zone.status, 422);
    assert_eq!(field_of(&bad_zone), "config.timezone");
    assert!(
        bad_zone.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Mars/Olympus_Mons")
    );
    let mut no_name = schedule("0 9 * * *", "UTC");
    no_name["name"] = json!("  ");
    assert_eq!(
        field_of(&app.post("/api/v1/triggers", no_name).await),
        "name"
    );
    let mut bad_kind = schedule("0 9 * * *", "UTC");
    bad_kind["kind"] = json!("telepathy");
    assert_eq!(
        field_of(&app.post("/api/v1/triggers", bad_kind).await),
        "kind"
    );
    let mut missing = schedule("0 9 * * *", "UTC");
    missing["target"] = json!({"kind": "agent", "slug": "nobody"});
    let r = app.post("/api/v1/triggers", missing).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "agent_not_found");
    let mut wf = schedule("0 9 * * *", "UTC");
    wf["target"] = json!({"kind": "workflow", "slug": "nothing-here"});
    let r = app.post("/api/v1/triggers", wf).await;
    assert_eq!(
        r.body["error"]["code"], "workflow_not_found",
        "{:?}",
        r.body
    );
    let hook_with_input = json!({"name": "h", "kind": "webhook", "target": {"kind": "agent", "slug": "nightly"},
        "input": "fixed"});
    assert_eq!(
        field_of(&app.post("/api/v1/triggers", hook_with_input).await),
        "input"
    );
    let looping = json!({"name": "loop", "kind": "event", "target": {"kind": "agent", "slug": "nightly"},
        "config": {"source_kind": "agent", "source": "nightly", "on": ["completed"]}});
    assert_eq!(
        field_of(&app.post("/api/v1/triggers", looping).await),
        "target"
    );

    // A weekday 09:00 Berlin schedule: five upcoming ticks, each 07:00 or 08:00 UTC.
    let created = create_trigger(&app, schedule("0 9 * * MON-FRI", "Europe/Berlin")).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["config"]["misfire"], "skip",
        "defaults are filled in"
    );
    let upcoming = created["upcoming"].as_array().unwrap();
    assert_eq!(upcoming.len(), 5);
    for t in upcoming {
        let t = t.as_str().unwrap();
        assert!(t.contains("T07:00:00") || t.contains("T08:00:00"), "{t}");
    }
    assert_eq!(created["next_fire_at"], upcoming[0]);
    assert!(created.get("secret").is_none());

    let got = app.get(&format!("/api/v1/triggers/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["name"], "nightly");
    let listed = app.get("/api/v1/triggers").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);

    // Patches: a bad cron names the field and changes nothing; a good one moves the ticks.
    let r = patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"config": {"cron": "61 * * * *"}}),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(field_of(&r), "config.cron");
    let r = patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"config": {"cron": "30 6 * * *", "timezone": "UTC", "misfire": "run_once"}, "input": "Good morning", "name": "morning"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "morning");
    assert_eq!(r.body["input"], "Good morning");
    assert_eq!(r.body["config"]["misfire"], "run_once");
    assert!(
        r.body["upcoming"][0]
            .as_str()
            .unwrap()
            .contains("T06:30:00")
    );
    let r = patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"paused": true}),
    )
    .await;
    assert_eq!(r.body["paused"], true);
    assert_eq!(r.body["next_fire_at"], Value::Null);
    assert_eq!(r.body["upcoming"], json!([]));
    let r = patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"input": null}),
    )
    .await;
    assert_eq!(r.body["input"], Value::Null);
    let r = patch(&app, &format!("/api/v1/triggers/{id}"), json!({"bogus": 1})).await;
    assert_eq!(r.status, 422);

    // Audit entries for each change.
    let audit = app.get("/api/v1/audit-log?action=trigger.*").await;
    assert!(audit.body["data"].as_array().unwrap().len() >= 4);

    assert_eq!(
        app.delete(&format!("/api/v1/triggers/{id}")).await.status,
        204
    );
    let gone = app.get(&format!("/api/v1/triggers/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["error"]["code"], "trigger_not_found");
    assert_eq!(app.get("/api/v1/triggers/not-a-uuid").await.status, 404);
}

/// Every-second schedule on two servers sharing one database: each tick starts exactly one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_each_tick_once_across_two_servers_and_pauses() {
    let app = TestApp::spawn().await;
    let other = TestApp {
        server: Server::start(&app.server.storage, &[]),
        fake: app.fake.clone(),
        http: app.http.clone(),
        token: app.token.clone(),
    };
    app.create_fake_provider().await;
    app.create_agent("ticker", "echo", &[]).await;
    let created = create_trigger(
        &app,
        json!({"name": "every second", "kind": "schedule", "target": {"kind": "agent", "slug": "ticker"},
               "config": {"cron": "* * * * * *", "timezone": "UTC"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    eventually(&app, Duration::from_secs(30), "four ticks", || async {
        fires(&app, &id).await.len() >= 4
    })
    .await;

    // Pause (through the other server): firing stops.
    let r = patch(
        &other,
        &format!("/api/v1/triggers/{id}"),
        json!({"paused": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A pass that read the trigger before the pause may still finish its tick.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paused_count = fires(&app, &id).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        fires(&app, &id).await.len(),
        paused_count,
        "a paused schedule fired"
    );

    // Resume: it fires again, from the next tick (nothing caught up for the paused time).
    let r = patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"paused": false}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body["next_fire_at"].is_string());
    eventually(
        &app,
        Duration::from_secs(30),
        "a tick after resuming",
        || async { fires(&app, &id).await.len() >= paused_count + 2 },
    )
    .await;
    patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"paused": true}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Exactly one run per tick: as many runs as fires, each fire's run distinct, each run's
    // input naming its own tick.
    let fired = fires(&app, &id).await;
    let keys: HashSet<&str> = fired.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), fired.len());
    let run_ids: HashSet<&str> = fired
        .iter()
        .map(|f| f["run_id"].as_str().expect("every tick started its run"))
        .collect();
    assert_eq!(run_ids.len(), fired.len(), "two ticks share a run");
    let runs = runs_of(&app, "ticker").await;
    assert_eq!(
        runs.len(),
        fired.len(),
        "a tick started more than one run (or a run has no fire)"
    );
    let inputs: HashSet<String> = runs.iter().map(|r| r["input"].to_string()).collect();
    assert_eq!(inputs.len(), runs.len(), "two runs for one tick");
    for run in &runs {
        assert!(run_ids.contains(run["id"].as_str().unwrap()));
    }
    // Ticks are whole seconds.
    for key in &keys {
        let tick = chrono::DateTime::parse_from_rfc3339(key).expect("an RFC 3339 tick");
        assert_eq!(tick.timestamp_subsec_nanos(), 0, "{key}");
    }
    drop(other);
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn deliver(
    app: &TestApp,
    trigger: &str,
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> Response {
    let signature = webhook::sign(secret, msg_id, timestamp, body.as_bytes()).unwrap();
    deliver_signed(app, trigger, msg_id, timestamp, &signature, body).await
}

async fn deliver_signed(
    app: &TestApp,
    trigger: &str,
    msg_id: &str,
    timestamp: i64,
    signature: &str,
    body: &str,
) -> Response {
    app.send(
        app.http
            .post(app.url(&format!("/api/v1/hooks/{trigger}")))
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_verify_signatures_dedupe_deliveries_and_rotate_secrets() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("hooked", "echo", &[]).await;
    let created = create_trigger(
        &app,
        json!({"name": "deploys", "kind": "webhook", "target": {"kind": "agent", "slug": "hooked"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["config"]["tolerance_seconds"], 300);
    assert_eq!(
        created["webhook_path"],
        format!("/api/v1/hooks/{id}").as_str()
    );
    let old_secret_id = created["secrets"][0]["id"].as_str().unwrap().to_string();
    // The secret is shown once: never on reads.
    let got = app.get(&format!("/api/v1/triggers/{id}")).await;
    assert!(got.body.get("secret").is_none());
    assert!(!got.body.to_string().contains(&secret));
    assert!(
        !app.get("/api/v1/triggers")
            .await
            .body
            .to_string()
            .contains(&secret)
    );

    let body = r#"{"event":"deploy","sha":"abc123"}"#;
    let now = now_secs();
    let ok = deliver(&app, &id, &secret, "msg_1", now, body).await;
    assert_eq!(ok.status, 202, "{:?}", ok.body);
    assert_eq!(ok.body["duplicate"], false);
    assert_eq!(ok.body["run_kind"], "agent");
    let run_id = ok.body["run_id"].as_str().unwrap().to_string();
    let run = app.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "completed");
    let input: Value = serde_json::from_str(run["input"].as_str().unwrap()).unwrap();
    assert_eq!(input, serde_json::from_str::<Value>(body).unwrap());

    // The sender retries the same message: the same run, no second one.
    let again = deliver(&app, &id, &secret, "msg_1", now, body).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["run_id"], run_id.as_str());
    assert_eq!(runs_of(&app, "hooked").await.len(), 1);

    // Tampered body, stale timestamp, wrong secret, unknown trigger: 401 alike.
    let signature = webhook::sign(&secret, "msg_2", now, body.as_bytes()).unwrap();
    let tampered = deliver_signed(
        &app,
        &id,
        "msg_2",
        now,
        &signature,
        r#"{"event":"deploy","sha":"evil"}"#,
    )
    .await;
    assert_eq!(tampered.status, 401);
    assert_eq!(tampered.body["error"]["code"], "webhook_rejected");
    let stale = deliver(&app, &id, &secret, "msg_3", now - 3600, body).await;
    assert_eq!(stale.status, 401);
    assert!(
        stale.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timestamp")
    );
    let wrong_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let wrong = deliver(&app, &id, wrong_secret, "msg_4", now, body).await;
    assert_eq!(wrong.status, 401);
    let unknown = deliver(
        &app,
        &uuid::Uuid::now_v7().to_string(),
        wrong_secret,
        "msg_4",
        now,
        body,
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(
        unknown.body["error"]["message"], wrong.body["error"]["message"],
        "an unknown trigger must look like a bad signature"
    );
    assert_eq!(
        deliver(&app, "not-a-uuid", wrong_secret, "msg_4", now, body)
            .await
            .status,
        401
    );
    let unsigned = app
        .send(
            app.http
                .post(app.url(&format!("/api/v1/hooks/{id}")))
                .body(body),
        )
        .await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(
        runs_of(&app, "hooked").await.len(),
        1,
        "a rejected delivery ran"
    );

    // Rotation: both secrets verify until the old one is removed.
    let rotated = app
        .post(&format!("/api/v1/triggers/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated.body["secrets"].as_array().unwrap().len(), 2);
    assert_eq!(
        deliver(&app, &id, &secret, "msg_old", now, body)
            .await
            .status,
        202
    );
    assert_eq!(
        deliver(&app, &id, &new_secret, "msg_new", now, body)
            .await
            .status,
        202
    );
    let r = patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"remove_secrets": [old_secret_id]}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(
        deliver(&app, &id, &secret, "msg_old2", now, body)
            .await
            .status,
        401
    );
    assert_eq!(
        deliver(&app, &id, &new_secret, "msg_new2", now, body)
            .await
            .status,
        202
    );
    // The last secret cannot be removed.
    let last = r.body["secrets"][0]["id"].as_str().unwrap().to_string();
    let r = patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"remove_secrets": [last]}),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(field_of(&r), "remove_secrets");

    // A paused trigger refuses verified deliveries with its own code.
    patch(
        &app,
        &format!("/api/v1/triggers/{id}"),
        json!({"paused": true}),
    )
    .await;
    let paused = deliver(&app, &id, &new_secret, "msg_paused", now, body).await;
    assert_eq!(paused.status, 409);
    assert_eq!(paused.body["error"]["code"], "trigger_paused");
    // …but a bad signature still learns nothing.
    assert_eq!(
        deliver(&app, &id, wrong_secret, "msg_paused", now, body)
            .await
            .status,
        401
    );

    // The fires list the delivered message ids; secrets never reach the audit log.
    let keys: HashSet<String> = fires(&app, &id)
        .await
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    let expected: HashSet<String> = ["msg_1", "msg_old", "msg_new", "msg_new2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(keys, expected);
    let audit = app
        .get("/api/v1/audit-log?limit=200")
        .await
        .body
        .to_string();
    assert!(audit.contains("trigger.rotate_secret"));
    assert!(audit.contains("trigger.fire"));
    assert!(!audit.contains(&secret) && !audit.contains(&new_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_run_fires_event_triggers_once_and_the_sweep_repairs_a_lost_fire() {
    let mut app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("source", "echo", &[]).await;
    app.create_agent("follow-up", "echo", &[]).await;
    let created = create_trigger(
        &app,
        json!({"name": "after source", "kind": "event", "target": {"kind": "agent", "slug": "follow-up"},
               "config": {"source_kind": "agent", "source": "source", "on": ["completed"]}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let on_failure = create_trigger(
        &app,
        json!({"name": "when source fails", "kind": "event", "target": {"kind": "agent", "slug": "follow-up"},
               "config": {"source_kind": "agent", "source": "source", "on": ["failed", "cancelled"]}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let source_run = app.start_run("source", json!("ping")).await;
    let ended = app.wait_run(&source_run, Duration::from_secs(30)).await;
    assert_eq!(ended["status"], "completed");
    eventually(
        &app,
        Duration::from_secs(30),
        "the follow-up run",
        || async { !runs_of(&app, "follow-up").await.is_empty() },
    )
    .await;
    let follow = runs_of(&app, "follow-up").await;
    assert_eq!(follow.len(), 1);
    let input: Value = serde_json::from_str(follow[0]["input"].as_str().unwrap()).unwrap();
    assert_eq!(input["run_id"], source_run.as_str());
    assert_eq!(input["status"], "completed");
    assert_eq!(input["output"], ended["output"]);
    let fired = fires(&app, &id).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["key"], source_run.as_str());
    assert_eq!(fired[0]["run_id"], follow[0]["id"]);
    // The follow-up's own end fires nothing: nothing listens to it.
    app.wait_run(follow[0]["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;

    // A lost firing (as if the process died right after the run's end): the fire row is gone.
    // The restarted server's first sweep fires it again, meeting the same run by its key.
    exec_sql(
        &app.server.storage.database_url,
        "DELETE FROM trigger_fires",
    )
    .await;
    assert!(fires(&app, &id).await.is_empty());
    app.server.restart();
    eventually(
        &app,
        Duration::from_secs(30),
        "the sweep's fire",
        || async { fires(&app, &id).await.len() == 1 },
    )
    .await;
    let fired = fires(&app, &id).await;
    assert_eq!(
        fired[0]["run_id"], follow[0]["id"],
        "the sweep started a second run"
    );
    assert_eq!(runs_of(&app, "follow-up").await.len(), 1);
    // The trigger listening for failures never fired for a completed run.
    assert!(fires(&app, &on_failure).await.is_empty());
}

/// Runs one statement straight on the test database (to simulate a lost write).
async fn exec_sql(url: &str, sql: &'static str) {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}
