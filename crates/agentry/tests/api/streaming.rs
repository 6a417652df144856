//! SSE: stored events with ids, full history after the end, resume without loss or duplicates.

use crate::harness::TestApp;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_replays_its_whole_history_and_closes() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    app.create_agent("calc", "echo", &["calculator"]).await;
    let id = app.start_run("calc", json!("what is 1+2?")).await;
    app.wait_run(&id, Duration::from_secs(30)).await;
    let events = app.events(&id, None, 10_000).await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"run.queued"));
    assert_eq!(names.get(1), Some(&"run.started"));
    assert_eq!(names.last(), Some(&"run.completed"));
    for expected in [
        "message.delta",
        "llm.completed",
        "tool.started",
        "tool.completed",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=events.len() as i64).collect::<Vec<_>>());
    let text: String = events
        .iter()
        .filter(|e| e.event == "message.delta")
        .map(|e| e.data["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(text, "The answer is {\"result\":3}.");
    let tool = events.iter().find(|e| e.event == "tool.started").unwrap();
    assert_eq!(tool.data["name"], "calculator");
    assert_eq!(tool.data["arguments"]["expression"], "1+2");
    let done = events.iter().find(|e| e.event == "tool.completed").unwrap();
    assert_eq!(done.data["result"]["result"], 3);
    let llm = events.iter().find(|e| e.event == "llm.completed").unwrap();
    assert!(llm.data["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // Resuming after the last event of a finished run: nothing more, the stream just closes.
    let last = *ids.last().unwrap();
    let rest = app.events(&id, Some(last), 10_000).await;
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_last_event_id_loses_and_duplicates_nothing() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    // A slow streaming model: many deltas spread over time, and three tool calls.
    app.create_agent("slow", "tool-loop-3+chunk_delay=40", &["calculator"])
        .await;
    let id = app.start_run("slow", json!("go")).await;
    let mut all = Vec::new();
    let mut last = None;
    // Read a few events at a time, disconnecting after each batch, until the run ends.
    for _ in 0..200 {
        let batch = app.events(&id, last, 3).await;
        if let Some(e) = batch.last() {
            last = Some(e.id);
        }
        let finished = batch.iter().any(|e| e.event == "run.completed");
        all.extend(batch);
        if finished {
            break;
        }
    }
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=all.len() as i64).collect::<Vec<_>>(),
        "gaps or duplicates"
    );
    assert_eq!(all.last().unwrap().event, "run.completed");
    let text: String = all
        .iter()
        .filter(|e| e.event == "message.delta")
        .map(|e| e.data["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(text, "done after 3 tool calls");
    assert_eq!(
        all.iter().filter(|e| e.event == "tool.completed").count(),
        3
    );
}
