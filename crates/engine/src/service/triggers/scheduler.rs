//! The scheduler: every replica runs this loop. Each second it fires the schedules whose
//! `next_fire_at` has passed; on its first pass and every ~15 seconds after it sweeps for
//! ended runs an event trigger missed (a crash between a run's end and its firing).
//!
//! Several replicas evaluating one due schedule compute the same tick (ticks are a pure
//! function of the cron expression and time zone), start its run under the same idempotency
//! key — so one run exists — and race on one conditional update to advance `next_fire_at`.

use super::config::{Config, ScheduleConfig};
use super::fire::{self, FireInput, Firing};
use crate::platform::Platform;
use agentry_store::triggers::{self, TriggerRow};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often due schedules are looked for: cron's finest unit is a second.
const TICK: Duration = Duration::from_secs(1);
/// How often the event sweep runs.
const SWEEP_EVERY: u32 = 15;
/// Schedules handled per pass; more wait for the next second.
const BATCH: u64 = 100;

/// Runs until shutdown. Spawned by the worker pool next to housekeeping.
pub async fn run(platform: Arc<Platform>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut passes: u32 = 0;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        fire_due(&platform, Utc::now()).await;
        passes = passes.wrapping_add(1);
        // The first pass sweeps too: a process starting after a crash repairs what it missed
        // at once rather than after a full sweep interval.
        if passes == 1 || passes.is_multiple_of(SWEEP_EVERY) {
            super::events::sweep(&platform, Utc::now()).await;
        }
    }
}

/// One scheduler pass: fires every due schedule. Errors are logged per trigger.
pub async fn fire_due(platform: &Platform, now: DateTime<Utc>) {
    let due = match triggers::due_schedules(&platform.db, now, BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "reading due schedules failed; retrying next second");
            return;
        }
    };
    for trigger in due {
        fire_schedule(platform, &trigger, now).await;
    }
}

async fn fire_schedule(platform: &Platform, trigger: &TriggerRow, now: DateTime<Utc>) {
    let Some(current) = trigger.next_fire_at else {
        return;
    };
    let config = match Config::parse(&trigger.kind, &trigger.config.0) {
        Ok(Config::Schedule(c)) => c,
        _ => {
            // Validated on write, so only a hand-edited row gets here; stop it from being
            // re-read every second.
            tracing::warn!(trigger_id = %trigger.id, "a schedule's stored config is invalid; it will not fire");
            advance(platform, trigger, current, None).await;
            return;
        }
    };
    let Ok(schedule) = config.schedule() else {
        advance(platform, trigger, current, None).await;
        return;
    };
    // Every tick from `next_fire_at` on is due: `next_fire_at` is always a tick, and
    // `Schedule::due` counts ticks strictly after the baseline.
    let baseline = current - TimeDelta::seconds(1);
    let due = schedule.due(Some(baseline), now, config.misfire.into());
    for tick in &due.fire {
        let firing = firing(trigger, &config, *tick);
        if let Err(e) = fire::fire(platform, trigger, &firing).await {
            fire::record_failure(platform, trigger, &firing, &e).await;
            if fire::is_transient(e.code) {
                // Keep `next_fire_at` so the next pass tries this tick again (the idempotency
                // key makes that safe; the misfire policy bounds how late it may still fire).
                return;
            }
        }
    }
    advance(platform, trigger, current, due.next).await;
}

async fn advance(
    platform: &Platform,
    trigger: &TriggerRow,
    current: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) {
    match triggers::advance(&platform.db, trigger.id, current, next).await {
        // Lost the race: another replica advanced this tick already.
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(trigger_id = %trigger.id, error = %e, "advancing a schedule failed")
        }
    }
}

fn firing(trigger: &TriggerRow, config: &ScheduleConfig, tick: DateTime<Utc>) -> Firing {
    let key = tick.to_rfc3339();
    let input = match trigger.target_kind.as_str() {
        "agent" => FireInput::Agent(
            trigger
                .input
                .as_ref()
                .and_then(|i| i.0.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!(
                        "Scheduled run of trigger '{}' for {key} (cron '{}', {}).",
                        trigger.name, config.cron, config.timezone
                    )
                }),
        ),
        _ => FireInput::Workflow(
            trigger
                .input
                .as_ref()
                .map(|i| i.0.clone())
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
        ),
    };
    Firing {
        idempotency_key: format!("schedule:{}:{key}", trigger.id),
        trigger: json!({"kind": "schedule", "trigger_id": trigger.id, "tick": key}),
        fire_key: key,
        input,
        at: tick,
    }
}
