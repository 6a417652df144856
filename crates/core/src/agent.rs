//! Agents: the user's definition ([`AgentSpec`]) and the stored, versioned agent.

use crate::ids::AgentId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const DEFAULT_MAX_STEPS: u32 = 10;
pub const MAX_MAX_STEPS: u32 = 100;

/// What a user writes to define an agent (API body or YAML `spec`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentSpec {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub instructions: String,
    /// `<provider>/<model>`, e.g. `openai/gpt-4.1-mini`.
    pub model: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Upper bound on the answer's tokens per model call (sent to the provider). Budgets that
    /// can block use it to reserve a call's maximum cost; without it they assume
    /// [`DEFAULT_MAX_OUTPUT_TOKENS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Models (`provider/model`) tried in order when the primary fails before any text reached
    /// the caller (unavailable, rate-limited, timed out, circuit open).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// A model with a larger context window, used when a call fails with
    /// `provider_context_overflow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_fallback: Option<String>,
    /// Opt-in response cache: identical requests (same org, model, messages and tools) within
    /// the TTL are answered from the cache at zero cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ResponseCacheSpec>,
    /// The agent's guardrail policy (input, output and tool-result rules), applied together
    /// with the organization's; validated by the service that knows the policy format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<serde_json::Value>,
    /// JSON Schema the final answer must match (structured output). Providers' native
    /// structured output is asked for; the answer is validated either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// How many times an answer that does not match `output_schema` is sent back to the model
    /// with the violations before the run fails with `output_schema_mismatch`.
    #[serde(default = "default_repair_turns")]
    pub max_repair_turns: u32,
    /// Ask the provider to cache the prompt prefix between the agent loop's calls (Anthropic
    /// `cache_control`; cached reads are billed at the lower cached-input price).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_cache: bool,
    /// Multi-agent: this agent manages a crew of member agents (see `crate::crew`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crew: Option<crate::crew::CrewSpec>,
    /// Multi-agent: this agent routes each message to one of its member agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::crew::NetworkSpec>,
}

pub const DEFAULT_REPAIR_TURNS: u32 = 2;
pub const MAX_REPAIR_TURNS: u32 = 5;

fn default_repair_turns() -> u32 {
    DEFAULT_REPAIR_TURNS
}

pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4096;
pub const MAX_FALLBACKS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseCacheSpec {
    pub ttl_seconds: u64,
}

fn default_max_steps() -> u32 {
    DEFAULT_MAX_STEPS
}

/// A problem with one field of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Splits `provider/model` at the first slash.
pub fn split_model(model: &str) -> Option<(&str, &str)> {
    let (provider, name) = model.split_once('/')?;
    if provider.is_empty() || name.is_empty() {
        return None;
    }
    Some((provider, name))
}

/// What an agent's `model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRef<'a> {
    /// `provider/model`.
    Direct { provider: &'a str, model: &'a str },
    /// `auto`: the org's router picks a tier per request.
    Auto,
    /// `tier:fast|standard|premium`: the org's model for that tier.
    Tier(&'a str),
    /// Any other name: one of the org's model aliases.
    Alias(&'a str),
}

pub const TIERS: [&str; 3] = ["fast", "standard", "premium"];

impl<'a> ModelRef<'a> {
    pub fn parse(model: &'a str) -> Option<ModelRef<'a>> {
        if model.contains('/') {
            let (provider, model) = split_model(model)?;
            return Some(ModelRef::Direct { provider, model });
        }
        if model == "auto" {
            return Some(ModelRef::Auto);
        }
        if let Some(tier) = model.strip_prefix("tier:") {
            return TIERS.contains(&tier).then_some(ModelRef::Tier(tier));
        }
        is_valid_slug(model).then_some(ModelRef::Alias(model))
    }
}

pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 64
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && slug.as_bytes()[0].is_ascii_alphanumeric()
}

impl AgentSpec {
    /// Checks everything that can be checked without the database: slug, model shape, bounds.
    /// Tool and provider existence are checked by the service that knows them.
    pub fn validate_shape(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !is_valid_slug(&self.slug) {
            errors.push(FieldError::new(
                "slug",
                "must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
            ));
        }
        if self.name.trim().is_empty() || self.name.len() > 200 {
            errors.push(FieldError::new("name", "must be 1-200 characters"));
        }
        if self.instructions.len() > 100_000 {
            errors.push(FieldError::new(
                "instructions",
                "must be at most 100000 characters",
            ));
        }
        if ModelRef::parse(&self.model).is_none() {
            errors.push(FieldError::new(
                "model",
                "must be '<provider>/<model>' (e.g. 'openai/gpt-4.1-mini'), 'auto', 'tier:fast|standard|premium' or a model alias",
            ));
        }
        if self.max_steps == 0 || self.max_steps > MAX_MAX_STEPS {
            errors.push(FieldError::new(
                "max_steps",
                format!("must be between 1 and {MAX_MAX_STEPS}"),
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            errors.push(FieldError::new("temperature", "must be between 0 and 2"));
        }
        if let Some(n) = self.max_tokens
            && (n == 0 || n > 1_000_000)
        {
            errors.push(FieldError::new(
                "max_tokens",
                "must be between 1 and 1000000",
            ));
        }
        if self.max_repair_turns > MAX_REPAIR_TURNS {
            errors.push(FieldError::new(
                "max_repair_turns",
                format!("must be at most {MAX_REPAIR_TURNS}"),
            ));
        }
        if let Some(schema) = &self.output_schema
            && !schema.is_object()
        {
            errors.push(FieldError::new(
                "output_schema",
                "must be a JSON Schema object",
            ));
        }
        if self.fallbacks.len() > MAX_FALLBACKS {
            errors.push(FieldError::new(
                "fallbacks",
                format!("at most {MAX_FALLBACKS} fallback models"),
            ));
        }
        for (i, f) in self.fallbacks.iter().enumerate() {
            if split_model(f).is_none() {
                errors.push(FieldError::new(
                    format!("fallbacks[{i}]"),
                    "must be '<provider>/<model>'",
                ));
            } else if f == &self.model {
                errors.push(FieldError::new(
                    format!("fallbacks[{i}]"),
                    "is the agent's own model",
                ));
            }
        }
        if let Some(c) = &self.context_fallback
            && split_model(c).is_none()
        {
            errors.push(FieldError::new(
                "context_fallback",
                "must be '<provider>/<model>'",
            ));
        }
        if let Some(cache) = &self.cache
            && (cache.ttl_seconds == 0 || cache.ttl_seconds > 7 * 86_400)
        {
            errors.push(FieldError::new(
                "cache.ttl_seconds",
                "must be between 1 and 604800 (7 days)",
            ));
        }
        errors.extend(crate::crew::validate_shape(self));
        let mut seen = std::collections::HashSet::new();
        for tool in &self.tools {
            if !seen.insert(tool) {
                errors.push(FieldError::new(
                    "tools",
                    format!("'{tool}' is listed twice"),
                ));
            }
        }
        errors
    }
}

/// A stored agent at one version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    pub id: AgentId,
    pub version: i64,
    #[serde(flatten)]
    pub spec: AgentSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
