//! Wire shapes of workflows, workflow runs and approvals.

use agentry_engine::service::workflow_runs::{NodeExecution, RunView, WorkflowRunRow};
use agentry_engine::service::workflows::{VersionRow, WorkflowRow};
use agentry_store::approvals::ApprovalRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowOut {
    pub slug: String,
    /// The version shown (the latest unless one was asked for).
    pub version: i64,
    pub latest_version: i64,
    /// The definition as stored (JSON form of the YAML).
    #[schema(value_type = Object)]
    pub definition: Value,
    /// The YAML as written, when it was sent as YAML.
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WorkflowOut {
    pub fn new(row: &WorkflowRow, version: VersionRow) -> Self {
        WorkflowOut {
            slug: row.slug.clone(),
            version: version.version,
            latest_version: row.latest_version,
            definition: version.definition.0,
            source: version.source,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowSummary {
    pub slug: String,
    pub latest_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<WorkflowRow> for WorkflowSummary {
    fn from(r: WorkflowRow) -> Self {
        WorkflowSummary {
            slug: r.slug,
            latest_version: r.latest_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionOut {
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

/// The result of validating a definition without saving it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationOut {
    pub valid: bool,
    pub name: String,
    pub nodes: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StartWorkflowRun {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    /// Run this version instead of the latest.
    #[serde(default)]
    pub version: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RerunIn {
    /// The node to start from.
    pub from_node: String,
    /// The state to start with (the original run's state when omitted).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub state: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeOut {
    pub node: String,
    pub thread: u32,
    /// running | waiting | retrying | completed | failed
    pub status: String,
    pub attempts: u32,
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub child_run_id: Option<String>,
    pub approval_id: Option<String>,
}

impl From<NodeExecution> for NodeOut {
    fn from(n: NodeExecution) -> Self {
        NodeOut {
            node: n.node,
            thread: n.thread,
            status: n.status.to_owned(),
            attempts: n.attempts,
            input: n.input,
            output: n.output,
            error: n.error,
            started_at: n.started_at,
            ended_at: n.ended_at,
            duration_ms: n.duration_ms,
            child_run_id: n.child_run_id,
            approval_id: n.approval_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowRunOut {
    pub id: String,
    pub workflow: String,
    pub version: i64,
    /// queued | running | waiting | completed | failed | cancelled
    pub status: String,
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// `{code, message, node?, thread?}`; a failed run with a `node` is dead-lettered and can be
    /// retried from that node.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub trigger: Option<Value>,
    pub parent_run_id: Option<String>,
    pub rerun_of: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Present on GET /workflow-runs/{id}: every node execution in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeOut>>,
    /// Present on GET /workflow-runs/{id}: the current state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub state: Option<Value>,
}

impl From<WorkflowRunRow> for WorkflowRunOut {
    fn from(r: WorkflowRunRow) -> Self {
        WorkflowRunOut {
            id: r.id.to_string(),
            workflow: r.workflow_slug,
            version: r.workflow_version,
            status: r.status,
            input: r.input.0,
            output: r.output.map(|o| o.0),
            error: r.error.map(|e| e.0),
            trigger: r.trigger.map(|t| t.0),
            parent_run_id: r.parent_run_id.map(|p| p.to_string()),
            rerun_of: r.rerun_of.map(|p| p.to_string()),
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            nodes: None,
            state: None,
        }
    }
}

impl From<RunView> for WorkflowRunOut {
    fn from(v: RunView) -> Self {
        let mut out = WorkflowRunOut::from(v.run);
        out.nodes = Some(v.nodes.into_iter().map(NodeOut::from).collect());
        out.state = Some(Value::Object(v.state));
        out
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalOut {
    pub id: String,
    pub run_id: String,
    pub node: String,
    /// `approval`, or `ambiguous` (a non-idempotent node was interrupted by a crash)
    pub kind: String,
    pub assignee_role: String,
    pub message: Option<String>,
    /// pending | approved | rejected | expired
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub state_patch: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<ApprovalRow> for ApprovalOut {
    fn from(a: ApprovalRow) -> Self {
        ApprovalOut {
            id: a.id.to_string(),
            run_id: a.run_id.to_string(),
            node: a.node,
            kind: a.kind,
            assignee_role: a.assignee_role,
            message: a.message,
            status: a.status,
            expires_at: a.expires_at,
            decided_by: a.decided_by,
            comment: a.comment,
            state_patch: a.state_patch.map(|p| p.0),
            created_at: a.created_at,
            decided_at: a.decided_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DecisionIn {
    /// `approve` or `reject`
    pub decision: String,
    #[serde(default)]
    pub comment: Option<String>,
    /// A JSON merge patch of the run's state, applied with the decision.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub state_patch: Option<Value>,
}
