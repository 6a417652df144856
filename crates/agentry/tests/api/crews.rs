//! Multi-agent runs: crews (a manager delegating to members through `delegate_to_<member>`
//! tools, or members run in sequence) and networks (a router choosing the member that answers
//! each message). Members run as child runs with their own steps, events and costs.

use crate::harness::TestApp;

type App = TestApp;
use agentry_fakellm::Reply;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

async fn agent(app: &App, slug: &str, extra: Value) {
    let mut body = json!({"slug": slug, "name": slug, "description": format!("the {slug} agent"),
        "instructions": "You are a test agent.", "model": format!("fake/{slug}-m")});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = app.post("/api/v1/agents", body.clone()).await;
    if r.status == 409 {
        let r = app.put(&format!("/api/v1/agents/{slug}"), body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    } else {
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
}

fn delegate(member: &str, task: &str) -> Reply {
    Reply::tool_call(
        format!("delegate_to_{member}"),
        json!({"task": task}).to_string(),
    )
}

async fn run(app: &App, slug: &str, body: Value) -> Value {
    let r = app.post(&format!("/api/v1/agents/{slug}/runs"), body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    app.wait_run(&id, WAIT).await
}

async fn children(app: &App, id: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/runs/{id}/children")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

fn tool_steps(run: &Value) -> Vec<Value> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "tool")
        .cloned()
        .collect()
}

fn calls_of(app: &App, model: &str) -> Vec<Value> {
    app.fake
        .requests()
        .into_iter()
        .filter(|r| r.model == model)
        .map(|r| r.body)
        .collect()
}

async fn cost_calls(app: &App, agent: &str) -> i64 {
    let r = app.get("/api/v1/costs?group_by=agent").await;
    r.body["data"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["label"] == agent).cloned())
        .map_or(0, |l| l["calls"].as_i64().unwrap_or(0))
}

async fn setup() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crews_hierarchical_manager_delegates_to_a_member_child_run() {
    let app = setup().await;
    agent(&app, "researcher", json!({})).await;
    agent(&app, "boss", json!({"crew": {"members": ["researcher"]}})).await;
    app.fake
        .push_script("researcher-m", vec![Reply::text("R: the sky is blue")]);
    app.fake.push_script(
        "boss-m",
        vec![
            delegate("researcher", "why is the sky blue?"),
            Reply::text("final: blue"),
        ],
    );
    let parent = run(&app, "boss", json!({"input": "explain the sky"})).await;
    assert_eq!(parent["status"], "completed", "{parent}");
    assert_eq!(parent["output"], "final: blue");
    let id = parent["id"].as_str().unwrap();

    // The manager was offered the member as a tool and saw the member's answer.
    let boss_calls = calls_of(&app, "boss-m");
    assert_eq!(boss_calls.len(), 2);
    assert!(
        boss_calls[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "delegate_to_researcher")
    );
    let tool_msg = boss_calls[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .unwrap();
    assert!(
        tool_msg["content"]
            .as_str()
            .unwrap()
            .contains("R: the sky is blue")
    );
    // The member got the task as its input.
    let r_calls = calls_of(&app, "researcher-m");
    assert_eq!(r_calls.len(), 1);
    assert!(r_calls[0].to_string().contains("why is the sky blue?"));

    // The step names the child run; the child is a run of its own.
    let steps = tool_steps(&parent);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["result"]["output"], "R: the sky is blue");
    let child_id = steps[0]["child_run_id"].as_str().unwrap().to_string();
    let kids = children(&app, id).await;
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0]["id"], child_id.as_str());
    assert_eq!(kids[0]["agent"], "researcher");
    assert_eq!(kids[0]["parent_agent_run_id"], id);
    assert_eq!(kids[0]["delegation_depth"], 1);
    let child = app.get(&format!("/api/v1/runs/{child_id}")).await.body;
    assert_eq!(child["status"], "completed");
    assert_eq!(child["steps"][0]["kind"], "llm");
    assert_eq!(parent["delegation_depth"], 0);

    // Events name the child; each run carries its own model calls and costs.
    let events = app.events(id, None, 10_000).await;
    let started = events
        .iter()
        .find(|e| e.event == "delegation.started")
        .unwrap();
    assert_eq!(started.data["child_run_id"], child_id.as_str());
    let done = events
        .iter()
        .find(|e| e.event == "delegation.completed")
        .unwrap();
    assert_eq!(done.data["status"], "completed");
    assert_eq!(done.data["member"], "researcher");
    let child_events = app.events(&child_id, None, 10_000).await;
    assert_eq!(
        child_events
            .iter()
            .filter(|e| e.event == "llm.completed")
            .count(),
        1
    );
    assert_eq!(cost_calls(&app, "boss").await, 2);
    assert_eq!(cost_calls(&app, "researcher").await, 1);

    // Tenancy: another org sees neither the children nor the run.
    let other = app.as_token(&app.other_org_key().await);
    let r = other.get(&format!("/api/v1/runs/{id}/children")).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crews_a_delegation_loop_is_cut_with_a_tool_error() {
    let app = setup().await;
    agent(&app, "b", json!({})).await;
    agent(&app, "a", json!({"crew": {"members": ["b"]}})).await;
    // Members are validated: an agent cannot be its own member, nor name a missing one.
    let r = app
        .put(
            "/api/v1/agents/b",
            json!({"slug": "b", "name": "b", "model": "fake/b-m", "crew": {"members": ["b"]}}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r = app
        .put(
            "/api/v1/agents/b",
            json!({"slug": "b", "name": "b", "model": "fake/b-m", "crew": {"members": ["ghost"]}}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    agent(&app, "b", json!({"crew": {"members": ["a"]}})).await;
    app.fake
        .push_script("a-m", vec![delegate("b", "ask a"), Reply::text("a done")]);
    app.fake.push_script(
        "b-m",
        vec![delegate("a", "back to a"), Reply::text("b done")],
    );
    let top = run(&app, "a", json!({"input": "go"})).await;
    assert_eq!(top["status"], "completed", "{top}");
    assert_eq!(top["output"], "a done");
    let kids = children(&app, top["id"].as_str().unwrap()).await;
    assert_eq!(kids.len(), 1);
    let b_id = kids[0]["id"].as_str().unwrap();
    let b_run = app.get(&format!("/api/v1/runs/{b_id}")).await.body;
    assert_eq!(b_run["output"], "b done");
    let steps = tool_steps(&b_run);
    assert_eq!(steps[0]["error"]["code"], "delegation_loop", "{b_run}");
    assert!(
        steps[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a → b → a")
    );
    assert!(children(&app, b_id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crews_depth_and_delegation_limits_are_tool_errors() {
    let app = setup().await;
    agent(&app, "z", json!({})).await;
    agent(
        &app,
        "y",
        json!({"crew": {"members": ["z"], "max_depth": 1}}),
    )
    .await;
    agent(&app, "x", json!({"crew": {"members": ["y"]}})).await;
    app.fake
        .push_script("x-m", vec![delegate("y", "t"), Reply::text("x done")]);
    app.fake
        .push_script("y-m", vec![delegate("z", "t"), Reply::text("y done")]);
    let top = run(&app, "x", json!({"input": "go"})).await;
    assert_eq!(top["status"], "completed", "{top}");
    let y_id = children(&app, top["id"].as_str().unwrap()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let y_run = app.get(&format!("/api/v1/runs/{y_id}")).await.body;
    assert_eq!(
        tool_steps(&y_run)[0]["error"]["code"],
        "delegation_depth_exceeded",
        "{y_run}"
    );
    assert!(calls_of(&app, "z-m").is_empty());

    // Two delegations in one reply, one allowed: the second is refused.
    agent(
        &app,
        "m",
        json!({"crew": {"members": ["z"], "max_delegations": 1}}),
    )
    .await;
    app.fake.push_script("z-m", vec![Reply::text("z answer")]);
    let args = json!({"task": "t"}).to_string();
    app.fake.push_script(
        "m-m",
        vec![
            Reply::tool_calls([("delegate_to_z", args.clone()), ("delegate_to_z", args)]),
            Reply::text("m done"),
        ],
    );
    let m = run(&app, "m", json!({"input": "go"})).await;
    assert_eq!(m["status"], "completed", "{m}");
    let steps = tool_steps(&m);
    assert_eq!(steps[0]["result"]["output"], "z answer", "{m}");
    assert_eq!(steps[1]["error"]["code"], "delegation_limit_exceeded");
    assert_eq!(children(&app, m["id"].as_str().unwrap()).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crews_sigkill_during_a_delegation_starts_exactly_one_child() {
    let mut app = setup().await;
    agent(&app, "slow", json!({})).await;
    agent(&app, "boss", json!({"crew": {"members": ["slow"]}})).await;
    app.fake.push_script(
        "slow-m",
        vec![Reply::text("slow answer").with_delay_ms(4000)],
    );
    app.fake.push_script(
        "boss-m",
        vec![delegate("slow", "take your time"), Reply::text("boss done")],
    );
    let id = app.start_run("boss", json!("go")).await;
    // Kill the server while the child's model call is in flight.
    let deadline = Instant::now() + WAIT;
    while calls_of(&app, "slow-m").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the child never called its model"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(children(&app, &id).await.len(), 1);
    app.server.kill();
    app.server.restart();

    let parent = app.wait_run(&id, Duration::from_secs(60)).await;
    assert_eq!(parent["status"], "completed", "{parent}");
    assert_eq!(parent["output"], "boss done");
    let kids = children(&app, &id).await;
    assert_eq!(
        kids.len(),
        1,
        "the re-executed delegation started a second child"
    );
    assert_eq!(kids[0]["status"], "completed");
    let steps = tool_steps(&parent);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["child_run_id"], kids[0]["id"]);
    // The parent's delegation really ran again and found the same child, which resumed and
    // re-sent its interrupted model call.
    let events = app.events(&id, None, 10_000).await;
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "delegation.started")
        .map(|e| &e.data)
        .collect();
    assert_eq!(started.len(), 2, "{started:?}");
    assert_eq!(started[1]["resumed"], true);
    assert_eq!(started[0]["child_run_id"], started[1]["child_run_id"]);
    assert_eq!(calls_of(&app, "slow-m").len(), 2);
    // Only one run of the member exists at all.
    let r = app.get("/api/v1/runs?agent=slow").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crews_sequential_chains_member_outputs() {
    let app = setup().await;
    agent(&app, "writer", json!({})).await;
    agent(&app, "editor", json!({})).await;
    agent(
        &app,
        "pipeline",
        json!({"crew": {"members": ["writer", "editor"], "process": "sequential"}}),
    )
    .await;
    app.fake.push_script("writer-m", vec![Reply::text("draft")]);
    app.fake.push_script("editor-m", vec![Reply::text("final")]);
    let crew = run(&app, "pipeline", json!({"input": "write a poem"})).await;
    assert_eq!(crew["status"], "completed", "{crew}");
    assert_eq!(crew["output"], "final");
    // No manager model call; each member got the previous answer.
    assert!(calls_of(&app, "pipeline-m").is_empty());
    assert!(
        calls_of(&app, "writer-m")[0]
            .to_string()
            .contains("write a poem")
    );
    let editor_in = calls_of(&app, "editor-m")[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .cloned()
        .unwrap();
    assert_eq!(editor_in["content"], "draft");
    let kids = children(&app, crew["id"].as_str().unwrap()).await;
    let agents: Vec<&str> = kids.iter().map(|k| k["agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["writer", "editor"]);
    assert_eq!(tool_steps(&crew).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crews_network_router_picks_the_member_per_message() {
    let app = setup().await;
    agent(&app, "alpha", json!({})).await;
    agent(&app, "beta", json!({})).await;
    agent(
        &app,
        "desk",
        json!({"network": {"members": ["alpha", "beta"]}}),
    )
    .await;
    let route = |m: &str| Reply::tool_call("route_to", json!({"member": m}).to_string());
    app.fake.push_script(
        "desk-m",
        vec![route("beta"), route("beta"), route("nobody")],
    );
    app.fake
        .push_script("beta-m", vec![Reply::text("beta 1"), Reply::text("beta 2")]);
    app.fake
        .push_script("alpha-m", vec![Reply::text("alpha 1")]);

    let first = run(&app, "desk", json!({"input": "hi", "thread_id": "t1"})).await;
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["output"], "beta 1");
    let second = run(&app, "desk", json!({"input": "again", "thread_id": "t1"})).await;
    assert_eq!(second["output"], "beta 2", "{second}");
    // The router is consulted per message, and offered the members.
    let desk = calls_of(&app, "desk-m");
    assert_eq!(desk.len(), 2);
    assert!(desk[0].to_string().contains("route_to"));
    // The member answered with the conversation so far.
    let beta = calls_of(&app, "beta-m");
    let seen = beta[1]["messages"].to_string();
    assert!(seen.contains("hi") && seen.contains("beta 1") && seen.contains("again"));
    for r in [&first, &second] {
        let kids = children(&app, r["id"].as_str().unwrap()).await;
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0]["agent"], "beta");
    }
    let events = app
        .events(second["id"].as_str().unwrap(), None, 10_000)
        .await;
    let routed = events.iter().find(|e| e.event == "network.routed").unwrap();
    assert_eq!(routed.data["member"], "beta");

    // A choice that names no member: the first member answers, with a warning.
    let third = run(&app, "desk", json!({"input": "third", "thread_id": "t1"})).await;
    assert_eq!(third["status"], "completed", "{third}");
    assert_eq!(third["output"], "alpha 1");
    let events = app
        .events(third["id"].as_str().unwrap(), None, 10_000)
        .await;
    assert!(events.iter().any(|e| e.event == "network.route_fallback"));
}
