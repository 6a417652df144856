//! Starting, reading, listing, cancelling and following runs.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::ids::RunId;
use agentry_core::run::RunInput;
use agentry_core::scope::WorkspaceScope;
use agentry_store::runs::{
    self, CancelOutcome, CreateOutcome, EventRow, NewRun, RunFilter, RunRow, StepRow,
};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub const MAX_LIST_LIMIT: u64 = 200;

pub struct StartRun {
    pub agent_slug: String,
    pub input: RunInput,
    pub thread_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Who starts the run; its costs are attributed to them.
    pub started_by: crate::service::principal::Actor,
    /// The caller's own id for its end user (budgets and cost reports can use it).
    pub end_user: Option<String>,
}

fn validate_thread_id(thread: &str) -> bool {
    !thread.is_empty()
        && thread.len() <= 200
        && thread
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Queues a run of the agent's current version. With an Idempotency-Key seen before, returns
/// the earlier run (and `false`) instead of starting another.
pub async fn start(
    platform: &Platform,
    scope: WorkspaceScope,
    request: StartRun,
) -> ServiceResult<(RunRow, bool)> {
    let mut errors = Vec::new();
    if let Some(thread) = &request.thread_id
        && !validate_thread_id(thread)
    {
        errors.push(FieldError::new(
            "thread_id",
            "must be 1-200 characters of letters, digits, '-', '_', '.' or ':'",
        ));
    }
    match &request.input {
        RunInput::Text(t) if t.trim().is_empty() => {
            errors.push(FieldError::new("input", "must not be empty"))
        }
        RunInput::Messages(m) if m.is_empty() => errors.push(FieldError::new(
            "input",
            "must contain at least one message",
        )),
        _ => {}
    }
    if let Some(key) = &request.idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        errors.push(FieldError::new(
            "Idempotency-Key",
            "must be 1-255 characters",
        ));
    }
    if let Some(end_user) = &request.end_user
        && (end_user.is_empty() || end_user.len() > 200 || end_user.chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "end_user",
            "must be 1-200 characters without control characters",
        ));
    }
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    let cap = platform.config.identity.org_max_active_runs;
    if cap > 0 && runs::count_active(&platform.db, scope.org()).await? >= cap {
        return Err(ServiceError::new(
            ErrorCode::ConcurrencyLimited,
            format!(
                "the organization already has {cap} runs queued or running; retry when some finish"
            ),
        ));
    }
    let agent = crate::service::agents::get(platform, scope, &request.agent_slug).await?;
    let input = serde_json::to_value(&request.input)
        .map_err(|e| ServiceError::internal("serializing input", e))?;
    let request_hash = request.idempotency_key.as_ref().map(|_| {
        let mut h = Sha256::new();
        h.update(request.agent_slug.as_bytes());
        h.update([0]);
        h.update(input.to_string().as_bytes());
        h.update([0]);
        h.update(request.thread_id.as_deref().unwrap_or("").as_bytes());
        hex::encode(h.finalize())
    });
    let outcome = runs::create(
        &platform.db,
        scope,
        NewRun {
            agent_id: agent.id,
            agent_slug: agent.spec.slug.clone(),
            agent_version: agent.version,
            thread_id: request.thread_id,
            input,
            idempotency_key: request.idempotency_key,
            request_hash: request_hash.clone(),
            api_key_id: match &request.started_by {
                crate::service::principal::Actor::ApiKey { id, .. } => Some(*id),
                _ => None,
            },
            user_id: request.started_by.user_id().map(|u| u.0),
            end_user: request.end_user,
            parent_run_id: None,
        },
    )
    .await?;
    match outcome {
        CreateOutcome::Created(row) => {
            platform.notifier.job_enqueued();
            metrics::counter!("agentry_runs_started_total").increment(1);
            Ok((row, true))
        }
        CreateOutcome::Existing(row) => {
            if row.request_hash != request_hash {
                return Err(ServiceError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was already used for a different request",
                ));
            }
            Ok((row, false))
        }
    }
}

pub async fn get(platform: &Platform, scope: WorkspaceScope, id: RunId) -> ServiceResult<RunRow> {
    runs::get(&platform.db, scope, id)
        .await?
        .ok_or_else(|| not_found(id))
}

pub async fn get_with_steps(
    platform: &Platform,
    scope: WorkspaceScope,
    id: RunId,
) -> ServiceResult<(RunRow, Vec<StepRow>)> {
    let run = get(platform, scope, id).await?;
    let steps = runs::steps(&platform.db, scope, id).await?;
    Ok((run, steps))
}

/// The member runs a crew manager or network router started, oldest first.
pub async fn children(
    platform: &Platform,
    scope: WorkspaceScope,
    id: RunId,
) -> ServiceResult<Vec<RunRow>> {
    get(platform, scope, id).await?;
    Ok(runs::children(&platform.db, scope, id).await?)
}

pub async fn list(
    platform: &Platform,
    scope: WorkspaceScope,
    mut filter: RunFilter,
) -> ServiceResult<Vec<RunRow>> {
    filter.limit = filter.limit.clamp(1, MAX_LIST_LIMIT);
    Ok(runs::list(&platform.db, scope, &filter).await?)
}

/// Cancels a queued run at once; asks a running one to stop at its next step.
pub async fn cancel(
    platform: &Platform,
    scope: WorkspaceScope,
    id: RunId,
) -> ServiceResult<RunRow> {
    match runs::request_cancel(&platform.db, scope, id).await? {
        CancelOutcome::Cancelled => {
            platform.notifier.run_events_stored(id.0, true);
            let run = get(platform, scope, id).await?;
            // A queued run ends here, not in the executor: tell the event triggers (a failure
            // is the sweep's to repair, not the caller's).
            if let Err(e) = crate::service::triggers::on_run_ended(
                platform,
                scope,
                crate::service::triggers::config::RunKind::Agent,
                &run.agent_slug,
                &run.status,
                run.id,
                None,
            )
            .await
            {
                tracing::warn!(run_id = %run.id, error = %e.message, "firing event triggers failed");
            }
            Ok(run)
        }
        CancelOutcome::Requested => get(platform, scope, id).await,
        CancelOutcome::AlreadyEnded => Err(ServiceError::new(
            ErrorCode::RunNotCancellable,
            "the run has already ended",
        )),
        CancelOutcome::NotFound => Err(not_found(id)),
    }
}

/// Stored events after `after_seq`.
pub async fn events_after(
    platform: &Platform,
    scope: WorkspaceScope,
    id: RunId,
    after_seq: i64,
) -> ServiceResult<Vec<EventRow>> {
    Ok(runs::events_after(&platform.db, scope, id, after_seq, 500).await?)
}

/// Waits until the run ends or `timeout` passes; returns the run either way.
pub async fn wait_for_end(
    platform: &Platform,
    scope: WorkspaceScope,
    id: RunId,
    timeout: Duration,
) -> ServiceResult<RunRow> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut wakeups = platform.notifier.subscribe_events();
    loop {
        let run = get(platform, scope, id).await?;
        if run.status().is_terminal()
            || tokio::time::Instant::now() >= deadline
            || platform.is_shutting_down()
        {
            return Ok(run);
        }
        // Wake when this run ends, or poll (another replica may be executing it).
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)),
            async {
                loop {
                    match wakeups.recv().await {
                        Ok(notice) if notice.run_id == id.0 && notice.ended => break,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            },
        )
        .await;
    }
}

fn not_found(id: RunId) -> ServiceError {
    ServiceError::new(ErrorCode::RunNotFound, format!("no run with id {id}"))
}
