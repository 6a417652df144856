//! The tenant-isolation suite, generated from the server's own route table (its OpenAPI
//! document): every route × method is replayed as nobody, as a revoked key, as another org, as
//! a key of another workspace, and as lower roles. Foreign objects answer 404, insufficient
//! roles on own objects 403. A route without an entry in `entry` fails the suite.

use crate::harness::TestApp;
use agentry_core::authz::{Action, Level, Role};
use serde_json::{Value, json};

/// Objects of org A the requests point at.
struct Fixtures {
    run_id: String,
    key_id: String,
    invitation_id: String,
    member_id: String,
    workspace2: String,
    task_id: String,
    budget_id: String,
    price_id: String,
    workflow_run_id: String,
    approval_id: String,
    trigger_id: String,
}

/// The workflow every workflow route points at (named like the agent fixture, `iso`).
fn iso_workflow() -> Value {
    json!({"apiVersion": "agentry/v1", "kind": "Workflow", "metadata": {"name": "iso"},
        "spec": {"start": "ask", "nodes": {
            "ask": {"type": "approval", "assignee_role": "member",
                    "next_approved": "done", "next_rejected": "done"},
            "done": {"type": "end"}}}})
}

/// The request body for each route (the suite's entry); `None` = the route is unknown here.
fn entry(method: &str, path: &str) -> Option<Value> {
    let empty = json!({});
    Some(match (method, path) {
        ("post", "/providers") => {
            json!({"name": "iso-p", "kind": "openai", "base_url": "https://api.example.com/v1"})
        }
        ("get", "/providers") | ("get", "/providers/{name}") | ("delete", "/providers/{name}") => {
            empty
        }
        ("post", "/agents") => {
            json!({"slug": "iso2", "name": "x", "instructions": "x", "model": "fake/echo"})
        }
        ("put", "/agents/{slug}") => {
            json!({"slug": "iso", "name": "x", "instructions": "x", "model": "fake/echo"})
        }
        ("get", "/agents") | ("get", "/agents/{slug}") | ("delete", "/agents/{slug}") => empty,
        ("post", "/agents/{slug}/runs") => json!({"input": "hello"}),
        ("get", "/runs") | ("get", "/runs/{id}") | ("post", "/runs/{id}/cancel") => empty,
        ("get", "/runs/{id}/events") | ("get", "/runs/{id}/children") => empty,
        ("post", "/api-keys") => json!({"name": "k", "role": "viewer"}),
        ("get", "/api-keys") | ("delete", "/api-keys/{id}") => empty,
        ("post", "/apply") => json!({"resources": [], "dry_run": true}),
        ("post", "/auth/sign-in") => json!({"email": "nobody@example.com", "password": "x"}),
        ("post", "/auth/mfa") => json!({"code": "000000"}),
        ("post", "/auth/sign-out") => empty,
        ("post", "/auth/password-reset") => json!({"email": "nobody@example.com"}),
        ("post", "/auth/password-reset/confirm") => json!({"token": "rst_x", "password": "x"}),
        ("post", "/auth/invitations/accept") => json!({"token": "inv_x"}),
        ("get", "/auth/sso")
        | ("get", "/auth/sso/{slug}/start")
        | ("get", "/auth/sso/callback") => empty,
        ("get", "/me") | ("delete", "/me") | ("get", "/me/export") => empty,
        ("post", "/me/password") => json!({"current_password": "x", "new_password": "y"}),
        ("post", "/me/totp/setup") => empty,
        ("post", "/me/totp") => json!({"current_password": "x", "secret": "x", "code": "1"}),
        ("post", "/me/totp/disable") => json!({"current_password": "x"}),
        ("get", "/me/sessions") | ("delete", "/me/sessions/{id}") => empty,
        ("post", "/me/sign-out-everywhere") => empty,
        ("post", "/me/org") => json!({"org_id": uuid::Uuid::nil()}),
        ("get", "/org") | ("delete", "/org") | ("post", "/org/export") => empty,
        ("patch", "/org") => json!({"name": "renamed"}),
        ("get", "/org/tasks/{id}") => empty,
        ("get", "/workspaces") | ("delete", "/workspaces/{id}") => empty,
        ("post", "/workspaces") => json!({"name": "w"}),
        ("get", "/members") | ("delete", "/members/{user_id}") => empty,
        ("put", "/members/{user_id}/role") => json!({"role": "viewer"}),
        ("post", "/members/{user_id}/disable")
        | ("post", "/members/{user_id}/enable")
        | ("post", "/members/{user_id}/sign-out")
        | ("post", "/members/{user_id}/password-reset") => empty,
        ("get", "/invitations") | ("delete", "/invitations/{id}") => empty,
        ("post", "/invitations") => json!({"email": "new@example.com", "role": "viewer"}),
        ("get", "/audit-log") | ("get", "/audit-log/export") => empty,
        ("post", "/sso-providers") => json!({"slug": "x", "display_name": "x",
            "discovery_url": "http://169.254.169.254/", "client_id": "x", "client_secret": "x"}),
        ("get", "/sso-providers") | ("delete", "/sso-providers/{id}") => empty,
        ("get", "/costs") | ("get", "/costs/export") => empty,
        ("get", "/provider-health") | ("get", "/guardrails") | ("get", "/routing") => empty,
        ("put", "/routing") => json!({"tiers": {"fast": "fake/echo"}}),
        ("put", "/guardrails") => json!({"output": {"pii": {"default_action": "redact"}}}),
        ("get", "/prices") | ("delete", "/prices/{id}") => empty,
        ("post", "/prices") => json!({"model": "m", "input": "1", "output": "1"}),
        ("get", "/budgets") | ("get", "/budgets/{id}") | ("delete", "/budgets/{id}") => empty,
        ("post", "/budgets") | ("put", "/budgets/{id}") => json!({"name": "b",
            "scope": {"kind": "org"}, "period": "day", "limit_usd": "1"}),
        ("put", "/workflows/{slug}") => iso_workflow(),
        // Another name: a caller allowed to create must not create the fixture's twin.
        ("post", "/workflows") | ("post", "/workflows/validate") => {
            let mut w = iso_workflow();
            w["metadata"]["name"] = json!("iso2");
            w
        }
        ("get", "/workflows")
        | ("get", "/workflows/{slug}")
        | ("delete", "/workflows/{slug}")
        | ("get", "/workflows/{slug}/versions")
        | ("get", "/workflows/{slug}/versions/{version}") => empty,
        ("post", "/workflows/{slug}/runs") => json!({"input": {}}),
        ("get", "/workflow-runs")
        | ("get", "/workflow-runs/{id}")
        | ("get", "/workflow-runs/{id}/events")
        | ("post", "/workflow-runs/{id}/cancel")
        | ("post", "/workflow-runs/{id}/retry") => empty,
        ("post", "/workflow-runs/{id}/rerun") => json!({"from_node": "done"}),
        ("get", "/approvals") | ("get", "/approvals/{id}") => empty,
        ("post", "/approvals/{id}") => json!({"decision": "approve"}),
        ("post", "/triggers") => json!({"name": "t", "kind": "schedule",
            "target": {"kind": "agent", "slug": "iso"}, "config": {"cron": "0 9 * * *"}}),
        ("get", "/triggers")
        | ("get", "/triggers/{id}")
        | ("delete", "/triggers/{id}")
        | ("get", "/triggers/{id}/fires")
        | ("post", "/triggers/{id}/rotate-secret") => empty,
        ("patch", "/triggers/{id}") => json!({"name": "renamed"}),
        // Public: the signature is the authentication (none here: 401).
        ("post", "/hooks/{id}") => empty,
        _ => return None,
    })
}

fn concrete(path: &str, f: &Fixtures) -> String {
    let id = if path.starts_with("/runs/") {
        f.run_id.clone()
    } else if path.starts_with("/api-keys/") {
        f.key_id.clone()
    } else if path.starts_with("/invitations/") {
        f.invitation_id.clone()
    } else if path.starts_with("/workspaces/") {
        f.workspace2.clone()
    } else if path.starts_with("/org/tasks/") {
        f.task_id.clone()
    } else if path.starts_with("/budgets/") {
        f.budget_id.clone()
    } else if path.starts_with("/prices/") {
        f.price_id.clone()
    } else if path.starts_with("/workflow-runs/") {
        f.workflow_run_id.clone()
    } else if path.starts_with("/approvals/") {
        f.approval_id.clone()
    } else if path.starts_with("/triggers/") || path.starts_with("/hooks/") {
        f.trigger_id.clone()
    } else {
        uuid::Uuid::now_v7().to_string()
    };
    path.replace("{slug}", "iso")
        .replace("{name}", "fake")
        .replace("{user_id}", &f.member_id)
        .replace("{version}", "1")
        .replace("{id}", &id)
}

/// One route of the table with the permission its OpenAPI security names.
struct Route {
    method: String,
    path: String,
    /// `None`: public; `Some(None)`: any signed-in person (session only); `Some(Some(a))`: a.
    requires: Option<Option<Action>>,
}

fn routes(doc: &Value) -> Vec<Route> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let requires = match security.first() {
                None => panic!("{method} {path} declares no security"),
                Some(s) if s.as_object().is_some_and(|o| o.is_empty()) => None,
                Some(s) => {
                    if let Some(scopes) = s.get("bearer") {
                        let name = scopes[0].as_str().expect("scope");
                        Some(Some(Action::parse(name).unwrap_or_else(|| {
                            panic!("{method} {path}: unknown permission {name}")
                        })))
                    } else {
                        Some(None)
                    }
                }
            };
            out.push(Route {
                method: method.clone(),
                path: path.clone(),
                requires,
            });
        }
    }
    out
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let url = app.url(&format!("/api/v1{path}"));
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let mut req = app.http.request(m, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method != "get" && method != "delete" {
        req = req.json(body);
    }
    let r = app.send(req).await;
    (r.status, r.body)
}

async fn setup(app: &TestApp) -> Fixtures {
    app.create_fake_provider().await;
    app.create_agent("iso", "echo", &[]).await;
    let run = app
        .post(
            "/api/v1/agents/iso/runs",
            json!({"input": "hi", "wait": true}),
        )
        .await;
    assert_eq!(run.status, 200, "{:?}", run.body);
    let ws2 = app
        .post("/api/v1/workspaces", json!({"name": "second"}))
        .await;
    assert_eq!(ws2.status, 201, "{:?}", ws2.body);
    let (_, member_id) = app
        .add_member(
            "member@example.com",
            "member",
            None,
            "a long member password",
        )
        .await;
    let inv = app
        .post(
            "/api/v1/invitations",
            json!({"email": "pending@example.com", "role": "viewer"}),
        )
        .await;
    let task = app.post("/api/v1/org/export", json!({})).await;
    assert_eq!(task.status, 202, "{:?}", task.body);
    let (key_id, _) = app.create_key("viewer", None).await;
    let budget = app
        .post(
            "/api/v1/budgets",
            json!({"name": "iso-budget", "scope": {"kind": "org"}, "period": "day", "limit_usd": "5"}),
        )
        .await;
    assert_eq!(budget.status, 201, "{:?}", budget.body);
    let price = app
        .post(
            "/api/v1/prices",
            json!({"model": "iso-model", "input": "1", "output": "2"}),
        )
        .await;
    assert_eq!(price.status, 201, "{:?}", price.body);
    let workflow = app.post("/api/v1/workflows", iso_workflow()).await;
    assert_eq!(workflow.status, 201, "{:?}", workflow.body);
    let wf_run = app
        .post("/api/v1/workflows/iso/runs", json!({"input": {}}))
        .await;
    assert_eq!(wf_run.status, 202, "{:?}", wf_run.body);
    let workflow_run_id = wf_run.body["id"]
        .as_str()
        .expect("workflow run")
        .to_string();
    let approval_id = crate::workflows::pending_approvals(app, &workflow_run_id, 1)
        .await
        .remove(0);
    // Decided, so the run ends and its event stream closes (the suite reads every route to
    // its end); the routes still find the run and the approval.
    let decided = app
        .post(
            &format!("/api/v1/approvals/{approval_id}"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(decided.status, 200, "{:?}", decided.body);
    crate::workflows::wait_end(app, &workflow_run_id).await;
    let trigger = app
        .post(
            "/api/v1/triggers",
            json!({"name": "iso-trigger", "kind": "webhook", "target": {"kind": "agent", "slug": "iso"}}),
        )
        .await;
    assert_eq!(trigger.status, 201, "{:?}", trigger.body);
    Fixtures {
        workflow_run_id,
        approval_id,
        trigger_id: trigger.body["id"].as_str().expect("trigger").to_string(),
        budget_id: budget.body["id"].as_str().expect("budget").to_string(),
        price_id: price.body["id"].as_str().expect("price").to_string(),
        run_id: run.body["id"].as_str().expect("run").to_string(),
        key_id,
        invitation_id: inv.body["id"].as_str().expect("inv").to_string(),
        member_id,
        workspace2: ws2.body["id"].as_str().expect("ws").to_string(),
        task_id: task.body["id"].as_str().expect("task").to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_other_tenants_lower_roles_and_revoked_keys() {
    let app = TestApp::spawn().await;
    let f = setup(&app).await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    let table = routes(&doc);
    assert!(table.len() > 40, "the route table looks incomplete");
    let missing: Vec<String> = table
        .iter()
        .filter(|r| entry(&r.method, &r.path).is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without an isolation entry: {missing:?}"
    );

    let other_org = app.other_org_key().await;
    let (_, viewer) = app.create_key("viewer", None).await;
    let (_, member) = app.create_key("member", None).await;
    let (_, ws2_owner) = app.create_key("owner", Some(&f.workspace2)).await;
    let (revoked_id, revoked) = app.create_key("owner", None).await;
    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{revoked_id}"))
            .await
            .status,
        204
    );
    let a_markers = [
        f.run_id.as_str(),
        f.member_id.as_str(),
        f.workspace2.as_str(),
        "member@example.com",
        "iso-budget",
        "iso-model",
        f.workflow_run_id.as_str(),
        f.approval_id.as_str(),
        "iso-trigger",
    ];

    let mut checked = 0;
    for r in &table {
        let body = entry(&r.method, &r.path).expect("entry");
        let path = concrete(&r.path, &f);
        let what = format!("{} {}", r.method, r.path);
        let Some(requires) = r.requires else {
            // Public routes: reachable without credentials; they act on no tenant data.
            let (status, _) = call(&app, None, &r.method, &path, &body).await;
            assert!(
                status < 500 && status != 403,
                "{what}: public route answered {status}"
            );
            continue;
        };
        checked += 1;
        // Nobody and a revoked key: 401.
        for token in [None, Some(revoked.as_str())] {
            let (status, b) = call(&app, token, &r.method, &path, &body).await;
            assert_eq!(status, 401, "{what} as {token:?}: {b}");
        }
        let Some(action) = requires else {
            // A person's own routes: API keys are refused.
            let (status, b) = call(&app, Some(&viewer), &r.method, &path, &body).await;
            assert_eq!(status, 403, "{what} with an API key: {b}");
            continue;
        };
        // Lower roles on A's own objects: 403 exactly when the matrix says so.
        for (token, role) in [(&viewer, Role::Viewer), (&member, Role::Member)] {
            let allowed = action.allowed_for(role);
            if allowed && r.method != "get" {
                continue; // would change A's fixtures; allowed writes are covered elsewhere
            }
            let (status, b) = call(&app, Some(token), &r.method, &path, &body).await;
            if allowed {
                assert!(
                    status < 400,
                    "{what} as {role}: allowed but got {status}: {b}"
                );
            } else {
                assert_eq!(status, 403, "{what} as {role}: {b}");
                assert_eq!(b["error"]["code"], "forbidden", "{what}");
            }
        }
        // A key restricted to workspace 2: no org-level rights; A's default workspace objects
        // do not exist for it.
        let (status, b) = call(&app, Some(&ws2_owner), &r.method, &path, &body).await;
        match action.level() {
            Level::Org => assert_eq!(status, 403, "{what} with a workspace key: {b}"),
            Level::Workspace if r.path.contains('{') => {
                assert_eq!(status, 404, "{what} with another workspace's key: {b}")
            }
            Level::Workspace => {
                assert!(status < 500, "{what}: {status}");
                for m in a_markers.iter().filter(|m| !path.contains(**m)) {
                    assert!(
                        !b.to_string().contains(m),
                        "{what} leaked {m} to another workspace"
                    );
                }
            }
        }
        // Another organization's owner: A's objects are not found, A's data never listed.
        if what == "delete /org" {
            continue; // would delete org B; covered by the org deletion test
        }
        let (status, b) = call(&app, Some(&other_org), &r.method, &path, &body).await;
        if r.path.contains('{') {
            assert_eq!(status, 404, "{what} as another org: {b}");
        } else {
            assert!(status < 500, "{what} as another org: {status} {b}");
        }
        // (An id the caller put in the path may be echoed in the error message.)
        for m in a_markers.iter().filter(|m| !path.contains(**m)) {
            assert!(
                !b.to_string().contains(m),
                "{what} leaked {m} to another org: {b}"
            );
        }
    }
    assert!(checked > 30);

    // A workspace of org A named in the header is "not found" for org B, like a missing one.
    let r = app
        .as_token(&other_org)
        .send(
            app.http
                .get(app.url("/api/v1/agents"))
                .bearer_auth(&other_org)
                .header("x-agentry-workspace", &f.workspace2),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "workspace_not_found");
    // The same body shape as a workspace that does not exist at all.
    let missing = app
        .send(
            app.http
                .get(app.url("/api/v1/agents"))
                .bearer_auth(&other_org)
                .header("x-agentry-workspace", uuid::Uuid::now_v7().to_string()),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body["error"]["code"], r.body["error"]["code"],
        "foreign and missing workspaces must look alike"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_variants_never_reach_a_handler_unauthenticated() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("iso", "echo", &[]).await;
    for path in [
        "/API/V1/agents",
        "/Api/v1/agents",
        "//api/v1/agents",
        "/api//v1/agents",
        "/api/v1//agents",
        "/api/v1/./agents",
        "/api/v1/x/../agents",
        "/api/v1/%2e%2e/v1/agents",
        "/api/v1/x/%2e%2e/agents",
        "/api/v1/agents/",
        "/api/v1/agents/.",
        "/api/v1/agents;x=1",
        "/api/v1/agents%2F",
        "/api/v1/agents/iso%2F..",
        "/api/v1/AGENTS",
        "/api%2Fv1/agents",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let status = app.raw_status(method, path, "").await;
            assert!(
                status == 401 || status == 404 || status == 405 || status == 400,
                "{method} {path} answered {status} without credentials"
            );
        }
    }
    // The API key in a query string is not a credential.
    let status = app
        .raw_status("GET", &format!("/api/v1/agents?api_key={}", app.token), "")
        .await;
    assert_eq!(status, 401);
}
