//! The CLI's client commands against a running server.

use crate::harness::{ADMIN_TOKEN, TestApp};
use tokio::process::Command;

async fn agentry(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(args)
        .env("AGENTRY_URL", &app.server.url)
        .env("AGENTRY_TOKEN", ADMIN_TOKEN)
        .env_remove("AGENTRY_CONFIG")
        .output()
        .await
        .expect("run agentry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_prints_a_plan_and_is_idempotent_and_run_streams_the_answer() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: agentry/v1\nkind: Provider\nmetadata:\n  name: fake\nspec:\n  kind: openai\n  base_url: {}\n---\napiVersion: agentry/v1\nkind: Agent\nmetadata:\n  name: calc\nspec:\n  name: Calculator\n  instructions: Use the calculator.\n  model: fake/echo\n  tools: [calculator]\n",
            app.fake.base_url()
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let dry = agentry(&app, &["apply", "-f", path, "--dry-run"]).await;
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("create") && plan.contains("Provider") && plan.contains("calc"),
        "{plan}"
    );
    assert_eq!(
        app.get("/api/v1/agents").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let first = agentry(&app, &["apply", "-f", path]).await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = agentry(&app, &["apply", "-f", dir.path().to_str().unwrap()]).await;
    let plan = String::from_utf8_lossy(&second.stdout);
    assert_eq!(plan.matches("unchanged").count(), 2, "{plan}");

    let out = agentry(&app, &["run", "calc", "what is 12*12?"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "The answer is {\"result\":144}."
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[tool] calculator"), "{stderr}");

    let list = agentry(&app, &["runs", "list"]).await;
    assert!(String::from_utf8_lossy(&list.stdout).contains("completed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_names_the_line_of_a_bad_file() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: agentry/v1\nkind: Agent\nmetadata: {name: a\nspec: {}\n",
    )
    .unwrap();
    let out = agentry(&app, &["apply", "-f", broken.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("line"),
        "{stderr}"
    );

    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        "# two documents\n---\napiVersion: agentry/v1\nkind: Agent\nmetadata:\n  name: a\nspec:\n  name: A\n  model: nowhere/m\n",
    )
    .unwrap();
    let out = agentry(&app, &["apply", "-f", unknown.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown.yaml:3") && stderr.contains("unknown_provider"),
        "{stderr}"
    );
}
