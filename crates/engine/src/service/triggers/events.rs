//! Event triggers: a run ending (completed, failed, cancelled) starts another.
//!
//! The executors call [`on_run_ended`] after a run's final commit. Should the process die
//! between that commit and the firing, the periodic [`sweep`] finds recently ended runs with
//! a listening trigger and no fire row, and fires them; the idempotency key
//! `event:{trigger_id}:{run_id}` makes firing twice start one run.

use super::config::{Config, EventConfig, RunKind};
use super::fire::{self, FireInput, Firing};
use crate::error::ServiceResult;
use crate::platform::Platform;
use agentry_core::scope::WorkspaceScope;
use agentry_store::triggers::{self, TriggerRow};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// How far back the sweep looks for runs an event trigger missed.
const SWEEP_LOOKBACK: TimeDelta = TimeDelta::minutes(10);
/// The sweep leaves runs that ended this recently to the executor's own call.
const SWEEP_SETTLE: TimeDelta = TimeDelta::seconds(2);
/// Runs older than this (by creation) are not looked at; it keeps the sweep's scan on a
/// bounded range of the workspace's run index.
const SWEEP_MAX_RUN_AGE: TimeDelta = TimeDelta::days(1);
/// Event triggers per sweep, and runs per trigger per sweep.
const SWEEP_TRIGGERS: u64 = 1000;
const SWEEP_RUNS: u64 = 100;

/// Starts the run of every unpaused event trigger of `scope` listening to `source_kind`
/// `source_slug` ending with `status`. Returns how many triggers fired.
///
/// Called by the agent executor after a run's final commit succeeded, and by the workflow
/// executor when a workflow run ends. Costs one indexed query when nothing listens. A trigger
/// whose run cannot start is logged and counted, never reported to the caller: a run's end
/// must not fail because of what listens to it. Only reading the listeners can fail.
pub async fn on_run_ended(
    platform: &Platform,
    scope: WorkspaceScope,
    source_kind: RunKind,
    source_slug: &str,
    status: &str,
    run_id: Uuid,
    output: Option<Value>,
) -> ServiceResult<usize> {
    let listeners = triggers::event_listeners(&platform.db, scope).await?;
    let mut fired = 0;
    for trigger in listeners {
        let Some(config) = event_config(&trigger) else {
            continue;
        };
        if !config.matches(source_kind, source_slug, status) {
            continue;
        }
        if fire_for_run(platform, &trigger, &config, status, run_id, output.clone()).await {
            fired += 1;
        }
    }
    Ok(fired)
}

/// Re-fires recently ended runs that a listening trigger has no fire for. Every replica may
/// run it; firing is idempotent.
pub async fn sweep(platform: &Platform, now: DateTime<Utc>) {
    let listeners = match triggers::all_event_listeners(&platform.db, SWEEP_TRIGGERS).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "the event trigger sweep could not read triggers");
            return;
        }
    };
    for trigger in listeners {
        if let Err(e) = sweep_trigger(platform, &trigger, now).await {
            tracing::warn!(trigger_id = %trigger.id, error = %e.message, "the event trigger sweep failed for a trigger");
        }
    }
}

async fn sweep_trigger(
    platform: &Platform,
    trigger: &TriggerRow,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let Some(config) = event_config(trigger) else {
        return Ok(());
    };
    // Runs that ended before the trigger (in its current form) existed are not its business.
    let since = trigger.updated_at.max(now - SWEEP_LOOKBACK);
    let before = now - SWEEP_SETTLE;
    if since >= before {
        return Ok(());
    }
    let oldest = (since - SWEEP_MAX_RUN_AGE).timestamp_millis().max(0) as u64;
    let created_from = uuid::Builder::from_unix_timestamp_millis(oldest, &[0; 10]).into_uuid();
    let statuses: Vec<&str> = config.on.iter().map(|s| s.as_str()).collect();
    let scope = trigger.scope();
    let ended = triggers::ended_runs(
        &platform.db,
        scope,
        config.source_kind.as_str(),
        &config.source,
        &statuses,
        created_from,
        since,
        before,
        SWEEP_RUNS,
    )
    .await?;
    let keys: Vec<String> = ended.iter().map(|r| r.id.to_string()).collect();
    let done = triggers::fired_keys(&platform.db, trigger.id, &keys).await?;
    for run in ended.iter().filter(|r| !done.contains(&r.id.to_string())) {
        let output =
            triggers::run_output(&platform.db, scope, config.source_kind.as_str(), run.id).await?;
        tracing::info!(trigger_id = %trigger.id, run_id = %run.id, "the event sweep fires a run's end that was not fired");
        metrics::counter!("agentry_trigger_event_sweep_fires_total").increment(1);
        fire_for_run(platform, trigger, &config, &run.status, run.id, output).await;
    }
    Ok(())
}

fn event_config(trigger: &TriggerRow) -> Option<EventConfig> {
    match Config::parse(&trigger.kind, &trigger.config.0) {
        Ok(Config::Event(c)) => Some(c),
        _ => None,
    }
}

/// Fires one trigger for one ended run; false (logged, counted) when its run did not start.
async fn fire_for_run(
    platform: &Platform,
    trigger: &TriggerRow,
    config: &EventConfig,
    status: &str,
    run_id: Uuid,
    output: Option<Value>,
) -> bool {
    let payload = json!({"run_id": run_id, "status": status, "output": output});
    let input = match trigger.target_kind.as_str() {
        "agent" => FireInput::Agent(payload.to_string()),
        _ => FireInput::Workflow(payload),
    };
    let firing = Firing {
        fire_key: run_id.to_string(),
        idempotency_key: format!("event:{}:{run_id}", trigger.id),
        input,
        trigger: json!({"kind": "event", "trigger_id": trigger.id,
            "source": {"kind": config.source_kind.as_str(), "slug": config.source, "run_id": run_id, "status": status}}),
        at: Utc::now(),
    };
    match fire::fire(platform, trigger, &firing).await {
        Ok(_) => true,
        Err(e) => {
            fire::record_failure(platform, trigger, &firing, &e).await;
            false
        }
    }
}
