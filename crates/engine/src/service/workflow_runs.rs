//! Starting, reading, cancelling, re-running and retrying workflow runs.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::service::principal::Actor;
use agentry_core::ErrorCode;
use agentry_core::scope::WorkspaceScope;
use agentry_store::runs::{EventRow, StepRow};
use agentry_store::workflow_runs::{self, CancelOutcome, CreateOutcome, NewWorkflowRun, RunFilter};
use agentry_workflow::machine::{Cursor, Record};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use agentry_store::workflow_runs::WorkflowRunRow;

pub const MAX_LIST_LIMIT: u64 = 200;
/// Largest run input, serialized.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;

pub struct StartWorkflowRun {
    pub slug: String,
    pub input: Value,
    /// A specific version (the latest when `None`).
    pub version: Option<i64>,
    pub idempotency_key: Option<String>,
    /// Who starts the run (a person, an API key, or the system for triggers).
    pub started_by: Actor,
    /// What started it, shown on the run (`{"kind": "schedule", "trigger_id": …}`).
    pub trigger: Option<Value>,
}

/// Queues a run. With an Idempotency-Key seen before, returns the earlier run (and `false`).
pub async fn start(
    platform: &Platform,
    scope: WorkspaceScope,
    request: StartWorkflowRun,
) -> ServiceResult<(WorkflowRunRow, bool)> {
    if let Some(key) = &request.idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        return Err(ServiceError::validation(vec![
            agentry_core::agent::FieldError::new("Idempotency-Key", "must be 1-255 characters"),
        ]));
    }
    let (row, version) =
        crate::service::workflows::version(platform, scope, &request.slug, request.version).await?;
    // Parsed and validated once per process: a large definition is not re-validated per start.
    let validated = platform
        .workflow_definition(row.id, version.version)
        .await?;
    check_input(validated.workflow().spec.input.as_ref(), &request.input)?;
    let request_hash = request.idempotency_key.as_ref().map(|_| {
        let mut h = Sha256::new();
        h.update(request.slug.as_bytes());
        h.update([0]);
        h.update(request.input.to_string().as_bytes());
        h.update([0]);
        h.update(request.version.unwrap_or(0).to_be_bytes());
        hex::encode(h.finalize())
    });
    let outcome = workflow_runs::create(
        &platform.db,
        scope,
        NewWorkflowRun {
            workflow_id: row.id,
            workflow_slug: row.slug.clone(),
            workflow_version: version.version,
            input: request.input,
            start: None,
            idempotency_key: request.idempotency_key,
            request_hash: request_hash.clone(),
            parent_run_id: None,
            rerun_of: None,
            depth: 0,
            trigger: request.trigger,
            api_key_id: match &request.started_by {
                Actor::ApiKey { id, .. } => Some(*id),
                _ => None,
            },
            user_id: request.started_by.user_id().map(|u| u.0),
        },
    )
    .await?;
    match outcome {
        CreateOutcome::Created(run) => {
            platform.notifier.job_enqueued();
            metrics::counter!("agentry_workflow_runs_started_total").increment(1);
            Ok((run, true))
        }
        CreateOutcome::Existing(run) => {
            if run.request_hash != request_hash {
                return Err(ServiceError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was already used for a different request",
                ));
            }
            Ok((run, false))
        }
    }
}

/// Checks a run input against the workflow's input schema (and its size).
pub fn check_input(schema: Option<&Value>, input: &Value) -> ServiceResult<()> {
    if input.to_string().len() > MAX_INPUT_BYTES {
        return Err(ServiceError::new(
            ErrorCode::WorkflowInputInvalid,
            format!("the input is larger than {MAX_INPUT_BYTES} bytes"),
        ));
    }
    let Some(schema) = schema else {
        return Ok(());
    };
    let validator = agentry_tools::schema::compile(schema)
        .map_err(|e| ServiceError::internal("a stored input schema does not compile", e))?;
    let violations = agentry_tools::schema::violations(&validator, input);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::WorkflowInputInvalid,
            format!(
                "the input does not match the workflow's input schema: {}",
                violations.join("; ")
            ),
        )
        .with_details(json!({ "violations": violations })))
    }
}

pub async fn get(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
) -> ServiceResult<WorkflowRunRow> {
    workflow_runs::get(&platform.db, scope, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// One execution of a node, as the run view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeExecution {
    pub node: String,
    pub thread: u32,
    /// running, waiting, completed, failed, retrying
    pub status: &'static str,
    pub attempts: u32,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// The child run (agent run or sub-workflow run) this node started.
    pub child_run_id: Option<String>,
    pub approval_id: Option<String>,
}

/// A run with its node executions and its current state.
pub struct RunView {
    pub run: WorkflowRunRow,
    pub nodes: Vec<NodeExecution>,
    pub state: Map<String, Value>,
}

/// The journal of a run, decoded.
pub fn decode(steps: &[StepRow]) -> ServiceResult<Vec<Record>> {
    steps
        .iter()
        .map(|s| {
            serde_json::from_value(s.record.0.clone())
                .map_err(|e| ServiceError::internal("a workflow journal step does not decode", e))
        })
        .collect()
}

pub async fn view(platform: &Platform, scope: WorkspaceScope, id: Uuid) -> ServiceResult<RunView> {
    let run = get(platform, scope, id).await?;
    let steps = agentry_store::runs::steps(&platform.db, scope, id.into()).await?;
    let records = decode(&steps)?;
    let cursor = replay(platform, &run, &records).await?;
    Ok(RunView {
        nodes: node_executions(&steps, &records),
        state: cursor.state,
        run,
    })
}

/// Rebuilds a run's cursor from its journal.
pub async fn replay(
    platform: &Platform,
    run: &WorkflowRunRow,
    records: &[Record],
) -> ServiceResult<Cursor> {
    let validated = platform
        .workflow_definition(run.workflow_id, run.workflow_version)
        .await?;
    let workflow = validated.workflow();
    initial_cursor(workflow, run)
        .replay(workflow, records)
        .map_err(|e| ServiceError::internal("replaying a workflow journal", e))
}

/// The cursor a run starts from: the start node with `{input}`, or a re-run's own start.
pub fn initial_cursor(workflow: &agentry_workflow::Workflow, run: &WorkflowRunRow) -> Cursor {
    if let Some(start) = &run.start
        && let Some(node) = start.0.get("node").and_then(Value::as_str)
    {
        let state = start
            .0
            .get("state")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        return Cursor::start_at(node, state);
    }
    Cursor::start(workflow, run.input.0.clone())
}

/// Groups journal records into node executions.
pub fn node_executions(steps: &[StepRow], records: &[Record]) -> Vec<NodeExecution> {
    let mut out: Vec<NodeExecution> = Vec::new();
    // Index of the open execution of each (thread, node).
    let mut open: std::collections::HashMap<(u32, String), usize> = Default::default();
    for (step, record) in steps.iter().zip(records) {
        let Some((thread, node)) = record.subject() else {
            continue;
        };
        let key = (thread, node.to_owned());
        let idx = match open.get(&key) {
            Some(i) => *i,
            None => {
                out.push(NodeExecution {
                    node: node.to_owned(),
                    thread,
                    status: "running",
                    attempts: 1,
                    input: None,
                    output: None,
                    error: None,
                    started_at: step.started_at,
                    ended_at: None,
                    duration_ms: None,
                    child_run_id: None,
                    approval_id: None,
                });
                open.insert(key.clone(), out.len() - 1);
                out.len() - 1
            }
        };
        let Some(exec) = out.get_mut(idx) else {
            continue;
        };
        let close = |exec: &mut NodeExecution, status: &'static str| {
            exec.status = status;
            exec.ended_at = Some(step.ended_at);
            exec.duration_ms = Some((step.ended_at - exec.started_at).num_milliseconds());
        };
        match record {
            Record::Completed { input, output, .. } => {
                exec.input = input.clone().or(exec.input.take());
                exec.output = Some(output.clone());
                exec.error = None;
                close(exec, "completed");
                open.remove(&key);
            }
            Record::Failed {
                input,
                code,
                message,
                attempt,
                retry_at,
                ..
            } => {
                exec.input = input.clone().or(exec.input.take());
                exec.attempts = (*attempt).max(1);
                exec.error = Some(json!({"code": code, "message": message}));
                if retry_at.is_some() {
                    exec.status = "retrying";
                    exec.attempts += 1;
                } else {
                    close(exec, "failed");
                    open.remove(&key);
                }
            }
            Record::Forked { items, .. } => {
                exec.input = items.clone().map(Value::Array);
                exec.status = "running";
            }
            Record::Sleeping { until, .. } => {
                exec.status = "waiting";
                exec.input = Some(json!({"until_ms": until}));
            }
            Record::ApprovalRequested { approval, .. } => {
                exec.status = "waiting";
                exec.approval_id = Some(approval.clone());
            }
            Record::ApprovalDecided {
                approved,
                by,
                comment,
                ..
            } => {
                exec.output = Some(json!({"approved": approved, "by": by, "comment": comment}));
                close(exec, "completed");
                open.remove(&key);
            }
            Record::ChildStarted { child, .. } => {
                exec.child_run_id = Some(child.clone());
            }
            Record::Intent { attempt, .. } => {
                exec.attempts = *attempt;
            }
            Record::Retried { .. } => {
                exec.status = "running";
                exec.error = None;
                exec.ended_at = None;
            }
            Record::Cancelled | Record::Aborted { .. } => {}
        }
    }
    out
}

pub async fn list(
    platform: &Platform,
    scope: WorkspaceScope,
    mut filter: RunFilter,
) -> ServiceResult<Vec<WorkflowRunRow>> {
    filter.limit = filter.limit.clamp(1, MAX_LIST_LIMIT);
    Ok(workflow_runs::list(&platform.db, scope, &filter).await?)
}

/// Cancels a run: a queued or parked one promptly, an executing one at its next commit.
pub async fn cancel(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
) -> ServiceResult<WorkflowRunRow> {
    match workflow_runs::request_cancel(&platform.db, scope, id).await? {
        CancelOutcome::Cancelled | CancelOutcome::Requested => {
            platform.notifier.job_enqueued();
            get(platform, scope, id).await
        }
        CancelOutcome::AlreadyEnded => Err(ServiceError::new(
            ErrorCode::RunNotCancellable,
            "the run has already ended",
        )),
        CancelOutcome::NotFound => Err(not_found(id)),
    }
}

/// Retries a dead-lettered run from its failed node (once).
pub async fn retry(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
) -> ServiceResult<WorkflowRunRow> {
    let run = get(platform, scope, id).await?;
    let is_dead = run.status == workflow_runs::FAILED
        && run
            .error
            .as_ref()
            .and_then(|e| e.0.get("node"))
            .is_some_and(|n| !n.is_null());
    if !is_dead || !workflow_runs::retry(&platform.db, scope, id).await? {
        return Err(ServiceError::new(
            ErrorCode::WorkflowRunNotRetryable,
            format!(
                "run {id} is {} and cannot be retried; only a run whose node failed can be, once",
                run.status
            ),
        ));
    }
    platform.notifier.job_enqueued();
    get(platform, scope, id).await
}

pub struct Rerun {
    pub from_node: String,
    /// The state to start with; the original run's current state when `None`.
    pub state: Option<Map<String, Value>>,
    pub started_by: Actor,
}

/// Starts a new run of the original's version from a chosen node with an edited state. The
/// original run is not touched.
pub async fn rerun(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
    request: Rerun,
) -> ServiceResult<WorkflowRunRow> {
    let original = get(platform, scope, id).await?;
    let validated = platform
        .workflow_definition(original.workflow_id, original.workflow_version)
        .await?;
    if !validated
        .workflow()
        .spec
        .nodes
        .contains_key(&request.from_node)
    {
        return Err(ServiceError::validation(vec![
            agentry_core::agent::FieldError::new(
                "from_node",
                format!(
                    "workflow `{}` version {} has no node `{}`",
                    original.workflow_slug, original.workflow_version, request.from_node
                ),
            ),
        ]));
    }
    let state = match request.state {
        Some(s) => s,
        None => {
            let steps = agentry_store::runs::steps(&platform.db, scope, id.into()).await?;
            let records = decode(&steps)?;
            replay(platform, &original, &records).await?.state
        }
    };
    let outcome = workflow_runs::create(
        &platform.db,
        scope,
        NewWorkflowRun {
            workflow_id: original.workflow_id,
            workflow_slug: original.workflow_slug.clone(),
            workflow_version: original.workflow_version,
            input: original.input.0.clone(),
            start: Some(json!({"node": request.from_node, "state": state})),
            idempotency_key: None,
            request_hash: None,
            parent_run_id: None,
            rerun_of: Some(original.id),
            depth: original.depth,
            trigger: None,
            api_key_id: match &request.started_by {
                Actor::ApiKey { id, .. } => Some(*id),
                _ => None,
            },
            user_id: request.started_by.user_id().map(|u| u.0),
        },
    )
    .await?;
    platform.notifier.job_enqueued();
    match outcome {
        CreateOutcome::Created(run) | CreateOutcome::Existing(run) => Ok(run),
    }
}

pub async fn events_after(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
    after_seq: i64,
) -> ServiceResult<Vec<EventRow>> {
    Ok(agentry_store::runs::events_after(&platform.db, scope, id.into(), after_seq, 500).await?)
}

pub fn not_found(id: Uuid) -> ServiceError {
    ServiceError::new(
        ErrorCode::WorkflowRunNotFound,
        format!("no workflow run with id {id}"),
    )
}
