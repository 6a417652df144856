//! The workflow definition types.
//!
//! Node bodies use `deny_unknown_fields` so a misspelt key is an error, not a silently ignored
//! setting. The fields every node shares (retry, timeout, error route, loop bound) live on
//! [`Node`] beside the kind, because serde cannot combine `flatten` with `deny_unknown_fields`;
//! the parser splits them off by name (see `parse.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::source::SourceMap;

/// The only `apiVersion` understood.
pub const API_VERSION: &str = "agentry/v1";
/// The only `kind` understood.
pub const KIND: &str = "Workflow";

/// A parsed (not yet validated) workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Where each field was written, for error messages (empty for JSON).
    #[serde(skip)]
    pub source: SourceMap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// JSON Schema of the run input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// JSON Schema of the workflow state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    /// JSON Schema of the run output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// Run-wide bounds. Each is optional; the executor applies its own defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most node executions in one run (1..=100 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Wall-clock bound of a run, waits and approvals included (1 s ..= 90 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    /// Most nodes running at once across parallel branches and map items (1..=64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

/// One node: its kind plus the settings every kind shares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub kind: NodeKind,
    #[serde(flatten)]
    pub common: Common,
}

/// Settings shared by all node kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// How long one attempt may take. For `approval` nodes this is the approval deadline, after
    /// which `on_timeout` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Where to go when the node fails after its retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// Most times this node may run in one run. Required (directly or on another node of the
    /// same loop) for nodes on a cycle: see `validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<u32>,
}

/// Names of the [`Common`] fields, which the parser takes out before decoding the kind.
pub(crate) const COMMON_FIELDS: &[&str] = &[
    "description",
    "retry",
    "timeout_seconds",
    "on_error",
    "max_visits",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts, the first included (1..=20).
    pub attempts: u32,
    /// Delay before the second attempt, doubled after each failure (0..=3 600 000).
    #[serde(default)]
    pub backoff_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeKind {
    Agent(AgentNode),
    Llm(LlmNode),
    Tool(ToolNode),
    Http(HttpNode),
    Transform(TransformNode),
    Switch(SwitchNode),
    Parallel(ParallelNode),
    Map(MapNode),
    Approval(ApprovalNode),
    Wait(WaitNode),
    Workflow(SubWorkflowNode),
    End(EndNode),
}

impl NodeKind {
    /// The `type:` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Agent(_) => "agent",
            NodeKind::Llm(_) => "llm",
            NodeKind::Tool(_) => "tool",
            NodeKind::Http(_) => "http",
            NodeKind::Transform(_) => "transform",
            NodeKind::Switch(_) => "switch",
            NodeKind::Parallel(_) => "parallel",
            NodeKind::Map(_) => "map",
            NodeKind::Approval(_) => "approval",
            NodeKind::Wait(_) => "wait",
            NodeKind::Workflow(_) => "workflow",
            NodeKind::End(_) => "end",
        }
    }

    /// Kinds that may serve as a `map` item body (they produce one value and have no routing
    /// of their own).
    pub fn is_item_capable(&self) -> bool {
        matches!(
            self,
            NodeKind::Agent(_)
                | NodeKind::Llm(_)
                | NodeKind::Tool(_)
                | NodeKind::Http(_)
                | NodeKind::Transform(_)
                | NodeKind::Workflow(_)
        )
    }

    /// The plain `next` of the kinds that have one.
    pub fn next(&self) -> Option<&str> {
        match self {
            NodeKind::Agent(n) => n.next.as_deref(),
            NodeKind::Llm(n) => n.next.as_deref(),
            NodeKind::Tool(n) => n.next.as_deref(),
            NodeKind::Http(n) => n.next.as_deref(),
            NodeKind::Transform(n) => n.next.as_deref(),
            NodeKind::Workflow(n) => n.next.as_deref(),
            NodeKind::Map(n) => Some(&n.next),
            NodeKind::Wait(n) => Some(&n.next),
            NodeKind::Switch(_)
            | NodeKind::Parallel(_)
            | NodeKind::Approval(_)
            | NodeKind::End(_) => None,
        }
    }
}

/// Runs an agent. `input` is JSON whose string leaves are minijinja templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentNode {
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// State key receiving the agent's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Required, except on a `map` item body (which must not have one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmNode {
    /// minijinja template.
    pub prompt: String,
    /// minijinja template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// JSON Schema the reply must satisfy (structured output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Calls a registered tool. `args` is JSON whose string leaves are templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolNode {
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

/// An HTTP request (made later by the executor through the SSRF-guarded client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpNode {
    pub method: HttpMethod,
    /// minijinja template; a literal URL must be http(s).
    pub url: String,
    /// Values are templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON whose string leaves are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Computes a value from the state: exactly one of `jq` and `template`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub into: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// First matching case wins; `default` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchNode {
    pub cases: Vec<Case>,
    pub default: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// minijinja expression, tested for truthiness.
    pub when: String,
    pub next: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Merge {
    /// Array of every branch's result, in `branches` order.
    #[default]
    All,
    /// The first branch to finish wins; the others are cancelled.
    First,
    /// Object keyed by branch start node id.
    Object,
}

/// Runs each branch (a path starting at the listed node) until it reaches `join`, merges
/// the results, then runs `join` once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelNode {
    pub branches: Vec<String>,
    pub join: String,
    #[serde(default)]
    pub merge: Merge,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
}

/// Runs the single node `node` once per item (multi-step bodies use a `workflow` node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapNode {
    /// minijinja expression evaluating to an array.
    pub items: String,
    pub node: String,
    /// Items in flight at once (1..=64, and at most `limits.max_concurrency`).
    #[serde(default = "one")]
    pub concurrency: u32,
    pub into: String,
    pub next: String,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Approve,
    #[default]
    Reject,
}

/// Waits for a person holding `assignee_role`. The deadline is the node's `timeout_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalNode {
    pub assignee_role: String,
    /// minijinja template shown to the approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    pub next_approved: String,
    pub next_rejected: String,
}

/// Sleeps: exactly one of `seconds`, `until` (an RFC 3339 timestamp) and `until_expr` (a
/// minijinja expression giving an RFC 3339 string). Kept apart so a timestamp is never
/// mistaken for an expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_expr: Option<String>,
    pub next: String,
}

/// Runs another workflow (by slug) as a child run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubWorkflowNode {
    pub workflow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Finishes the run. `output` is JSON whose string leaves are templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}
