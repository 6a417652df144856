//! Agents: the user's definition ([`AgentSpec`]) and the stored, versioned agent.

use crate::ids::AgentId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const DEFAULT_MAX_STEPS: u32 = 10;
pub const MAX_MAX_STEPS: u32 = 100;

/// What a user writes to define an agent (API body or YAML `spec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        if split_model(&self.model).is_none() {
            errors.push(FieldError::new(
                "model",
                "must be '<provider>/<model>', e.g. 'openai/gpt-4.1-mini'",
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
