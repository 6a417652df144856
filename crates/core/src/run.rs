//! Runs, their journal steps and their events.

use crate::chat::{Message, ToolCall, Usage};
use crate::error::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// A run's failure, as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub code: ErrorCode,
    pub message: String,
}

/// What the caller sent as input: a string or a list of messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunInput {
    Text(String),
    Messages(Vec<Message>),
}

impl RunInput {
    pub fn into_messages(self) -> Vec<Message> {
        match self {
            RunInput::Text(t) => vec![Message::user(t)],
            RunInput::Messages(m) => m,
        }
    }
}

/// The recorded outcome of one step of the journal. Once a step is committed it is never
/// executed again: the engine replays it from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepRecord {
    /// A model reply.
    Llm {
        model: String,
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
        finish_reason: String,
        usage: Usage,
        /// Whether the provider reported usage (false → counts are 0 and unknown).
        usage_reported: bool,
    },
    /// A message the platform added for the model: the answer did not match the agent's
    /// output schema, and this says why (a repair turn).
    Feedback { content: String },
    /// A tool result (or the error the model was shown).
    Tool {
        call_id: String,
        name: String,
        arguments: Value,
        result: Option<Value>,
        error: Option<ToolErrorRecord>,
        /// The member agent's run this call started (crew delegations, network routing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child_run_id: Option<uuid::Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolErrorRecord {
    pub code: String,
    pub message: String,
}

/// Names of the stored run events (the SSE `event:` field).
pub mod event {
    pub const RUN_QUEUED: &str = "run.queued";
    pub const RUN_STARTED: &str = "run.started";
    pub const MESSAGE_DELTA: &str = "message.delta";
    pub const MESSAGE_RESET: &str = "message.reset";
    pub const LLM_COMPLETED: &str = "llm.completed";
    /// A model call failed (it may be followed by `model.failover`).
    pub const LLM_FAILED: &str = "llm.failed";
    /// The step's answer came from the response cache (no provider call, no cost).
    pub const LLM_CACHE_HIT: &str = "llm.cache_hit";
    /// The step moves on to the next model of the agent's fallback chain.
    pub const MODEL_FAILOVER: &str = "model.failover";
    /// A budget refused the model call; the run fails with `budget_exceeded`.
    pub const BUDGET_BLOCKED: &str = "budget.blocked";
    /// The answer did not match the output schema; the model is asked again.
    pub const OUTPUT_REPAIR: &str = "output.repair";
    /// `model: auto` picked a tier for the step: `{tier, score, reasons, model, estimated_cost_usd}`.
    pub const ROUTE_DECIDED: &str = "route.decided";
    /// A routed answer declined or missed the schema; the step moves to a stronger tier.
    pub const ROUTE_ESCALATED: &str = "route.escalated";
    /// A guardrail rule matched (block, redact or flag).
    pub const GUARDRAIL: &str = "guardrail";
    pub const TOOL_STARTED: &str = "tool.started";
    pub const TOOL_COMPLETED: &str = "tool.completed";
    /// Multi-agent: a child run of a member agent was started (or found again after a crash):
    /// `{step, member, child_run_id}`.
    pub const DELEGATION_STARTED: &str = "delegation.started";
    /// The child run ended: `{step, member, child_run_id, status}`.
    pub const DELEGATION_COMPLETED: &str = "delegation.completed";
    /// A network's router chose the member that answers: `{member, fallback}`.
    pub const NETWORK_ROUTED: &str = "network.routed";
    /// The router named no member of the network; the first member answers (a warning).
    pub const NETWORK_ROUTE_FALLBACK: &str = "network.route_fallback";
    /// Workflow runs: a node began, finished, failed (an attempt or for good).
    pub const NODE_STARTED: &str = "node.started";
    pub const NODE_COMPLETED: &str = "node.completed";
    pub const NODE_FAILED: &str = "node.failed";
    /// A workflow run waits for a person.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    pub const APPROVAL_DECIDED: &str = "approval.decided";
    /// A workflow run sleeps until `until` (a `wait` node, a retry backoff).
    pub const RUN_WAITING: &str = "run.waiting";
    /// A dead-lettered workflow run was retried from its failed node.
    pub const RUN_RETRIED: &str = "run.retried";
    pub const RUN_COMPLETED: &str = "run.completed";
    pub const RUN_FAILED: &str = "run.failed";
    pub const RUN_CANCELLED: &str = "run.cancelled";

    /// Events after which a run's stream closes.
    pub fn is_terminal(name: &str) -> bool {
        matches!(name, RUN_COMPLETED | RUN_FAILED | RUN_CANCELLED)
    }
}
