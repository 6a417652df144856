//! Wire types of the REST API. Domain types stay in `agentry-core`; these are what JSON looks
//! like, documented for OpenAPI.

use agentry_core::agent::Agent;
use agentry_core::run::{RunStatus, StepRecord};
use agentry_engine::service::providers::ProviderInfo;
use agentry_store::api_keys::ApiKeyRow;
use agentry_store::runs::{RunRow, StepRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    /// Name used in agent models: `<name>/<model>`.
    pub name: String,
    /// A known service that fills `kind` and `base_url`: openai, groq, deepseek, xai, mistral,
    /// together, openrouter, ollama, vllm, llamacpp, litellm, anthropic, gemini.
    #[serde(default)]
    pub preset: Option<String>,
    /// Wire protocol: `openai` (any OpenAI-compatible server), `anthropic` (Messages API) or
    /// `gemini` (generateContent). Required without a preset.
    #[serde(default)]
    pub kind: Option<String>,
    /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`, `https://api.anthropic.com`,
    /// `https://generativelanguage.googleapis.com`. Required without a preset.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Stored encrypted; never returned.
    #[serde(default)]
    pub api_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Provider {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// `"********"` when a key is stored, else null. The key itself is never returned.
    pub api_key: Option<String>,
    /// `org` (created through the API) or `instance` (from agentry.toml).
    pub source: String,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<ProviderInfo> for Provider {
    fn from(p: ProviderInfo) -> Self {
        Self {
            name: p.name,
            kind: p.kind,
            base_url: p.base_url,
            api_key: p.api_key_set.then(|| "********".to_string()),
            source: p.source.to_string(),
            created_at: p.created_at,
        }
    }
}

/// An agent definition (create or replace).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub instructions: String,
    /// `<provider>/<model>`.
    pub model: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub max_steps: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Upper bound on answer tokens per model call.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Models tried in order when the primary fails before any text was streamed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// A larger-context model used on `provider_context_overflow`.
    #[serde(default)]
    pub context_fallback: Option<String>,
    /// Opt-in response cache, e.g. `{"ttl_seconds": 3600}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub cache: Option<agentry_core::agent::ResponseCacheSpec>,
    /// Guardrail policy: `{input: {...}, output: {...}, tool_results: {...}}` (docs/guardrails.md).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub guardrails: Option<serde_json::Value>,
    /// JSON Schema the final answer must match (structured output).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<serde_json::Value>,
    /// Repair turns for an answer that does not match `output_schema` (default 2, at most 5).
    #[serde(default)]
    pub max_repair_turns: Option<u32>,
    /// Ask the provider to cache the prompt prefix (Anthropic `cache_control`).
    #[serde(default)]
    pub prompt_cache: bool,
    /// Multi-agent crew: `{members, process: hierarchical|sequential, max_depth, max_delegations}`
    /// (docs/crews.md).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub crew: Option<agentry_core::crew::CrewSpec>,
    /// Multi-agent network: `{members}`; a router picks the member that answers each message.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub network: Option<agentry_core::crew::NetworkSpec>,
}

impl From<AgentInput> for agentry_core::agent::AgentSpec {
    fn from(a: AgentInput) -> Self {
        Self {
            slug: a.slug,
            name: a.name,
            description: a.description,
            instructions: a.instructions,
            model: a.model,
            tools: a.tools,
            max_steps: a
                .max_steps
                .unwrap_or(agentry_core::agent::DEFAULT_MAX_STEPS),
            temperature: a.temperature,
            max_tokens: a.max_tokens,
            fallbacks: a.fallbacks,
            context_fallback: a.context_fallback,
            cache: a.cache,
            guardrails: a.guardrails,
            output_schema: a.output_schema,
            max_repair_turns: a
                .max_repair_turns
                .unwrap_or(agentry_core::agent::DEFAULT_REPAIR_TURNS),
            prompt_cache: a.prompt_cache,
            crew: a.crew,
            network: a.network,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub instructions: String,
    pub model: String,
    pub tools: Vec<String>,
    pub max_steps: u32,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub fallbacks: Vec<String>,
    pub context_fallback: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub cache: Option<agentry_core::agent::ResponseCacheSpec>,
    #[schema(value_type = Option<Object>)]
    pub guardrails: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<serde_json::Value>,
    pub max_repair_turns: u32,
    pub prompt_cache: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub crew: Option<agentry_core::crew::CrewSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub network: Option<agentry_core::crew::NetworkSpec>,
    /// Increases with every PUT; runs record the version they used.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Agent> for AgentOut {
    fn from(a: Agent) -> Self {
        Self {
            id: a.id.to_string(),
            slug: a.spec.slug,
            name: a.spec.name,
            description: a.spec.description,
            instructions: a.spec.instructions,
            model: a.spec.model,
            tools: a.spec.tools,
            max_steps: a.spec.max_steps,
            temperature: a.spec.temperature,
            max_tokens: a.spec.max_tokens,
            fallbacks: a.spec.fallbacks,
            context_fallback: a.spec.context_fallback,
            cache: a.spec.cache,
            guardrails: a.spec.guardrails,
            output_schema: a.spec.output_schema,
            max_repair_turns: a.spec.max_repair_turns,
            prompt_cache: a.spec.prompt_cache,
            crew: a.spec.crew,
            network: a.spec.network,
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// A string (one user message) or a list of `{role, content}` messages.
    #[schema(value_type = Object)]
    pub input: agentry_core::run::RunInput,
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Your own id for the end user this run serves: costs are reported and budgets enforced
    /// per end user.
    #[serde(default)]
    pub end_user: Option<String>,
    /// Wait (bounded) for the run to end and answer with it.
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunErrorOut {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Run {
    pub id: String,
    pub agent: String,
    pub agent_version: i64,
    pub thread_id: Option<String>,
    /// queued | running | completed | failed | cancelled
    pub status: String,
    #[schema(value_type = Object)]
    pub input: Value,
    pub output: Option<String>,
    pub error: Option<RunErrorOut>,
    pub usage: UsageOut,
    /// Present on GET /runs/{id}; omitted in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// The crew manager or network router run that started this run as a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_agent_run_id: Option<String>,
    /// 0 for a run a caller started; one more than its parent for a member's run.
    pub delegation_depth: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// One journal step: a model call (`llm`) or a tool call (`tool`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Step {
    pub index: i64,
    /// `llm` or `tool`
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub tool_calls: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub arguments: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunErrorOut>,
    /// The member agent's run this step started (crew delegation, network routing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_run_id: Option<String>,
}

impl Step {
    fn from_row(row: StepRow) -> Self {
        let mut step = Step {
            index: row.idx,
            kind: row.kind.clone(),
            started_at: row.started_at,
            ended_at: row.ended_at,
            duration_ms: (row.ended_at - row.started_at).num_milliseconds(),
            model: None,
            input_tokens: None,
            output_tokens: None,
            finish_reason: None,
            content: None,
            tool_calls: None,
            name: None,
            call_id: None,
            arguments: None,
            result: None,
            error: None,
            child_run_id: None,
        };
        match serde_json::from_value::<StepRecord>(row.record.0) {
            Ok(StepRecord::Llm {
                model,
                content,
                tool_calls,
                finish_reason,
                usage,
                ..
            }) => {
                step.model = Some(model);
                step.content = content;
                step.input_tokens = Some(usage.input_tokens);
                step.output_tokens = Some(usage.output_tokens);
                step.finish_reason = Some(finish_reason);
                if !tool_calls.is_empty() {
                    step.tool_calls = serde_json::to_value(tool_calls).ok();
                }
            }
            Ok(StepRecord::Feedback { content }) => {
                step.content = Some(content);
            }
            Ok(StepRecord::Tool {
                call_id,
                name,
                arguments,
                result,
                error,
                child_run_id,
            }) => {
                step.child_run_id = child_run_id.map(|id| id.to_string());
                step.call_id = Some(call_id);
                step.name = Some(name);
                step.arguments = Some(arguments);
                step.result = Some(result.unwrap_or(Value::Null));
                step.error = error.map(|e| RunErrorOut {
                    code: e.code,
                    message: e.message,
                });
            }
            Err(_) => {}
        }
        step
    }
}

impl Run {
    pub fn from_row(row: RunRow, steps: Option<Vec<StepRow>>) -> Self {
        let status = row.status();
        Self {
            id: row.id.to_string(),
            agent: row.agent_slug,
            agent_version: row.agent_version,
            thread_id: row.thread_id,
            status: status.as_str().to_string(),
            input: row.input.0,
            output: row.output,
            error: row.error.map(|e| RunErrorOut {
                code: e.0.code.as_str().to_string(),
                message: e.0.message,
            }),
            usage: UsageOut {
                input_tokens: row.input_tokens,
                output_tokens: row.output_tokens,
            },
            steps: steps.map(|s| s.into_iter().map(Step::from_row).collect()),
            parent_agent_run_id: row.parent_agent_run_id.map(|id| id.to_string()),
            delegation_depth: row.delegation_depth,
            created_at: row.created_at,
            started_at: row.started_at,
            ended_at: row.ended_at,
        }
    }

    pub fn is_terminal(&self) -> bool {
        RunStatus::parse(&self.status).is_some_and(RunStatus::is_terminal)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    /// `owner`, `admin`, `member` or `viewer`; at most your own role. Default `member`.
    #[serde(default)]
    pub role: Option<String>,
    /// Restrict the key to one workspace; without it the key works in the whole org.
    #[serde(default)]
    pub workspace_id: Option<uuid::Uuid>,
    /// The key stops working at this time.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub role: String,
    /// `org` (every workspace) or `workspace` (only `workspace_id`).
    pub scope: String,
    pub workspace_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Only in the response to POST: the key itself, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ApiKeyOut {
    pub fn from_row(row: ApiKeyRow, key: Option<String>) -> Self {
        Self {
            id: row.id.to_string(),
            workspace_id: (!row.is_org_scoped())
                .then(|| row.workspace_id.map(|w| w.to_string()))
                .flatten(),
            name: row.name,
            prefix: row.prefix,
            role: row.role,
            scope: row.scope,
            created_by: row.created_by.map(|u| u.to_string()),
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            key,
        }
    }
}
