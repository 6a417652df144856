//! Repository tests on SQLite, and on PostgreSQL when AGENTRY_TEST_DATABASE_URL is set.

// Test helpers panic on failure and say what they skipped.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use agentry_core::agent::AgentSpec;
use agentry_core::run::RunStatus;
use agentry_store::runs::{self, Commit, CreateOutcome, NewEvent, NewRun, NewStep, RunChange};
use agentry_store::{Db, StoreError, agents, jobs, orgs};
use chrono::{Duration, Utc};

async fn databases() -> Vec<(Db, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut dbs = vec![(Db::connect(&url, 4).await.unwrap(), Some(dir))];
    if let Some(url) = std::env::var("AGENTRY_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        dbs.push((Db::connect(&url, 4).await.unwrap(), None));
    } else {
        eprintln!("NOTE: AGENTRY_TEST_DATABASE_URL not set: PostgreSQL store tests skipped");
    }
    dbs
}

fn spec(slug: &str) -> AgentSpec {
    AgentSpec {
        slug: slug.into(),
        name: "Test".into(),
        description: None,
        instructions: "be brief".into(),
        model: "p/m".into(),
        tools: vec!["calculator".into()],
        max_steps: 5,
        temperature: Some(0.5),
        ..Default::default()
    }
}

#[tokio::test]
async fn agents_runs_and_queue_round_trip() {
    for (db, _dir) in databases().await {
        orgs::ensure_default(&db).await.unwrap();
        let scope = orgs::create_org(&db, "acme").await.unwrap();
        let other = orgs::create_org(&db, "other").await.unwrap();
        let agent = agents::create(&db, scope, spec("calc")).await.unwrap();
        assert!(matches!(
            agents::create(&db, scope, spec("calc")).await,
            Err(StoreError::Conflict)
        ));
        assert!(agents::get(&db, other, "calc").await.unwrap().is_none());
        let v2 = agents::update(&db, scope, "calc", spec("calc"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(
            agents::get(&db, scope, "calc")
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );

        let outcome = runs::create(
            &db,
            scope,
            NewRun {
                api_key_id: None,
                user_id: None,
                end_user: None,
                parent_run_id: None,
                agent_id: agent.id,
                agent_slug: "calc".into(),
                agent_version: 2,
                thread_id: Some("t1".into()),
                input: serde_json::json!("hi"),
                idempotency_key: Some("k1".into()),
                request_hash: None,
            },
        )
        .await
        .unwrap();
        let CreateOutcome::Created(run) = outcome else {
            panic!("expected a new run")
        };
        let again = runs::create(
            &db,
            scope,
            NewRun {
                api_key_id: None,
                user_id: None,
                end_user: None,
                parent_run_id: None,
                agent_id: agent.id,
                agent_slug: "calc".into(),
                agent_version: 2,
                thread_id: None,
                input: serde_json::json!("hi"),
                idempotency_key: Some("k1".into()),
                request_hash: None,
            },
        )
        .await
        .unwrap();
        assert!(matches!(again, CreateOutcome::Existing(r) if r.id == run.id));

        let now = Utc::now();
        let claimed = jobs::claim(&db, "w1", now + Duration::seconds(30), 10, now)
            .await
            .unwrap();
        let job = claimed
            .iter()
            .find(|j| j.target_id == run.id)
            .unwrap()
            .clone();
        // A second claim while the lease is live finds nothing for this run.
        let none = jobs::claim(&db, "w2", now + Duration::seconds(30), 10, now)
            .await
            .unwrap();
        assert!(none.iter().all(|j| j.target_id != run.id));

        runs::commit(
            &db,
            &job.lease(),
            Commit {
                extra: vec![],
                run_id: run.id,
                org_id: run.org_id,
                steps: vec![NewStep {
                    idx: 0,
                    kind: "llm",
                    record: serde_json::json!({"kind": "llm"}),
                    started_at: now,
                    ended_at: now,
                }],
                events: vec![NewEvent {
                    seq: 2,
                    name: "run.started",
                    data: serde_json::json!({}),
                }],
                change: RunChange::Started { at: now },
            },
        )
        .await
        .unwrap();

        // The lease expires and another worker takes over: the first worker is fenced off.
        let later = now + Duration::seconds(31);
        let taken = jobs::claim(&db, "w2", later + Duration::seconds(30), 10, later)
            .await
            .unwrap();
        let job2 = taken
            .iter()
            .find(|j| j.target_id == run.id)
            .unwrap()
            .clone();
        assert!(job2.lease_token > job.lease_token);
        let stale = runs::commit(
            &db,
            &job.lease(),
            Commit {
                extra: vec![],
                run_id: run.id,
                org_id: run.org_id,
                steps: vec![],
                events: vec![],
                change: RunChange::None,
            },
        )
        .await;
        assert!(matches!(stale, Err(StoreError::LeaseLost)));

        runs::commit(
            &db,
            &job2.lease(),
            Commit {
                extra: vec![],
                run_id: run.id,
                org_id: run.org_id,
                steps: vec![],
                events: vec![NewEvent {
                    seq: 3,
                    name: "run.completed",
                    data: serde_json::json!({"output": "ok"}),
                }],
                change: RunChange::Ended {
                    status: RunStatus::Completed,
                    output: Some("ok".into()),
                    error: None,
                    input_tokens: 3,
                    output_tokens: 4,
                    at: later,
                },
            },
        )
        .await
        .unwrap();
        let done = runs::get(&db, scope, run.id.into()).await.unwrap().unwrap();
        assert_eq!(done.status(), RunStatus::Completed);
        assert_eq!(done.output.as_deref(), Some("ok"));
        assert!(
            runs::get(&db, other, run.id.into())
                .await
                .unwrap()
                .is_none()
        );
        let events = runs::events_after(&db, scope, run.id.into(), 0, 100)
            .await
            .unwrap();
        assert_eq!(
            events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["run.queued", "run.started", "run.completed"]
        );
        let steps = runs::steps(&db, scope, run.id.into()).await.unwrap();
        assert_eq!(steps.len(), 1);
        // Finished jobs are never claimed again.
        let far = later + Duration::seconds(3600);
        let none = jobs::claim(&db, "w3", far, 10, far).await.unwrap();
        assert!(none.iter().all(|j| j.target_id != run.id));
        db.close().await;
    }
}
