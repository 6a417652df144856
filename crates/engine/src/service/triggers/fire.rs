//! Firing: start the trigger's target run under an idempotency key, then record the fire.
//!
//! The idempotency key (unique per workspace in `runs` / `workflow_runs`) is what makes a tick,
//! a delivery or a source run start exactly one run, whichever replica or retry gets there
//! first. The fire row is recorded after the run exists, so a crash in between leaves a run and
//! no fire row; the next attempt (the scheduler's next pass, the sender's retry, the event
//! sweep) meets the existing run through the key and records the fire then.

use super::config::RunKind;
use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::service::principal::Actor;
use crate::service::{runs, workflow_runs};
use agentry_core::ErrorCode;
use agentry_core::run::RunInput;
use agentry_store::triggers::{self, TriggerRow};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// One firing of a trigger.
pub struct Firing {
    /// Unique per trigger: the tick (RFC 3339), the webhook-id, or the source run id.
    pub fire_key: String,
    /// Unique per workspace: `{kind}:{trigger_id}:{fire_key}`.
    pub idempotency_key: String,
    pub input: FireInput,
    /// Shown on a workflow run as what started it.
    pub trigger: Value,
    /// When it fired (the tick for a schedule).
    pub at: DateTime<Utc>,
}

/// The run input, by target kind.
pub enum FireInput {
    Workflow(Value),
    Agent(String),
}

/// The run a firing started (or met, when an earlier attempt already started it).
#[derive(Debug, Clone, Copy)]
pub struct Fired {
    pub run_id: Uuid,
    /// False when the run existed already (a duplicate delivery, another replica's tick).
    pub created: bool,
}

/// Starts the target run and records the fire. A permanent failure (the target is gone or
/// refuses the input) is returned as is; the caller decides whether to record it.
pub async fn fire(
    platform: &Platform,
    trigger: &TriggerRow,
    firing: &Firing,
) -> ServiceResult<Fired> {
    let fired = match start(platform, trigger, firing).await {
        Ok(fired) => fired,
        // The key exists with another input: an earlier attempt computed the input slightly
        // differently (a trigger edited in between, a JSON output whose key order changed on
        // the way through the database). The run for this key exists; that is what counts.
        Err(e) if e.code == ErrorCode::IdempotencyKeyReused => {
            match triggers::run_by_idempotency_key(
                &platform.db,
                trigger.scope(),
                &trigger.target_kind,
                &firing.idempotency_key,
            )
            .await?
            {
                Some(run_id) => Fired {
                    run_id,
                    created: false,
                },
                None => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    triggers::record_fire(
        &platform.db,
        trigger,
        &firing.fire_key,
        Some(fired.run_id),
        firing.at,
    )
    .await?;
    let outcome = if fired.created {
        "started"
    } else {
        "duplicate"
    };
    metrics::counter!("agentry_trigger_fires_total", "kind" => kind_label(&trigger.kind), "outcome" => outcome)
        .increment(1);
    Ok(fired)
}

/// Records a fire whose run could not start, so it is not retried forever (the log says why).
pub async fn record_failure(
    platform: &Platform,
    trigger: &TriggerRow,
    firing: &Firing,
    error: &ServiceError,
) {
    tracing::warn!(
        trigger_id = %trigger.id,
        kind = %trigger.kind,
        fire_key = %firing.fire_key,
        code = %error.code,
        "a trigger could not start its run: {}",
        error.message
    );
    metrics::counter!("agentry_trigger_fires_total", "kind" => kind_label(&trigger.kind), "outcome" => "failed")
        .increment(1);
    if is_transient(error.code) {
        // Leave it unrecorded so it is tried again (next scheduler pass, next sweep).
        return;
    }
    if let Err(e) =
        triggers::record_fire(&platform.db, trigger, &firing.fire_key, None, firing.at).await
    {
        tracing::warn!(trigger_id = %trigger.id, error = %e, "recording a failed fire failed");
    }
}

async fn start(platform: &Platform, trigger: &TriggerRow, firing: &Firing) -> ServiceResult<Fired> {
    let scope = trigger.scope();
    match (&firing.input, RunKind::parse(&trigger.target_kind)) {
        (FireInput::Workflow(input), Some(RunKind::Workflow)) => {
            let (run, created) = workflow_runs::start(
                platform,
                scope,
                workflow_runs::StartWorkflowRun {
                    slug: trigger.target.clone(),
                    input: input.clone(),
                    version: None,
                    idempotency_key: Some(firing.idempotency_key.clone()),
                    started_by: Actor::System,
                    trigger: Some(firing.trigger.clone()),
                },
            )
            .await?;
            Ok(Fired {
                run_id: run.id,
                created,
            })
        }
        (FireInput::Agent(text), Some(RunKind::Agent)) => {
            let (run, created) = runs::start(
                platform,
                scope,
                runs::StartRun {
                    agent_slug: trigger.target.clone(),
                    input: RunInput::Text(text.clone()),
                    thread_id: None,
                    idempotency_key: Some(firing.idempotency_key.clone()),
                    started_by: Actor::System,
                    end_user: None,
                },
            )
            .await?;
            Ok(Fired {
                run_id: run.id,
                created,
            })
        }
        _ => Err(ServiceError::internal(
            "a trigger's input does not fit its target",
            &trigger.target_kind,
        )),
    }
}

/// Failures worth retrying: the database, or the org's limit on runs in progress. Anything
/// else (the target is gone, the input does not fit) fails the same way next time.
pub fn is_transient(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::ConcurrencyLimited
    )
}

/// Metric labels must come from a fixed set, not from stored text.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "schedule" => "schedule",
        "webhook" => "webhook",
        "event" => "event",
        _ => "other",
    }
}
