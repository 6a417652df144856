//! The agent form: the user's input as typed, its conversion to an [`AgentSpec`], and the errors
//! shown next to it. A rejected form is shown again exactly as the user left it.

use super::form::FormPairs;
use agentry_core::ErrorCode;
use agentry_core::agent::{Agent, AgentSpec, DEFAULT_MAX_STEPS, FieldError};
use agentry_engine::ServiceError;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct AgentFormInput {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub instructions: String,
    pub model: String,
    pub tools: Vec<String>,
    /// Kept as text: "abc" must come back as "abc", not as an empty field.
    pub max_steps: String,
    pub temperature: String,
}

impl AgentFormInput {
    pub fn blank() -> Self {
        Self {
            slug: String::new(),
            name: String::new(),
            description: String::new(),
            instructions: String::new(),
            model: String::new(),
            tools: Vec::new(),
            max_steps: DEFAULT_MAX_STEPS.to_string(),
            temperature: String::new(),
        }
    }

    pub fn from_agent(agent: &Agent) -> Self {
        let spec = &agent.spec;
        Self {
            slug: spec.slug.clone(),
            name: spec.name.clone(),
            description: spec.description.clone().unwrap_or_default(),
            instructions: spec.instructions.clone(),
            model: spec.model.clone(),
            tools: spec.tools.clone(),
            max_steps: spec.max_steps.to_string(),
            temperature: spec.temperature.map(|t| t.to_string()).unwrap_or_default(),
        }
    }

    /// `slug` is the form field on create and the path on edit (where it is not editable).
    pub fn from_form(form: &FormPairs, slug: String) -> Self {
        Self {
            slug,
            name: form.get("name").to_string(),
            description: form.get("description").to_string(),
            instructions: form.get("instructions").to_string(),
            model: form.get("model").trim().to_string(),
            tools: form.all("tools"),
            max_steps: form.get("max_steps").trim().to_string(),
            temperature: form.get("temperature").trim().to_string(),
        }
    }

    /// The spec the form describes, and the number fields that do not parse (replaced by their
    /// defaults in the spec, so the rest can still be checked and reported in the same round).
    pub fn to_spec(&self) -> (AgentSpec, Vec<FieldError>) {
        let mut errors = Vec::new();
        let max_steps = if self.max_steps.is_empty() {
            DEFAULT_MAX_STEPS
        } else {
            self.max_steps.parse().unwrap_or_else(|_| {
                errors.push(FieldError::new("max_steps", "must be a whole number"));
                DEFAULT_MAX_STEPS
            })
        };
        let temperature = if self.temperature.is_empty() {
            None
        } else {
            self.temperature
                .parse::<f32>()
                .map(Some)
                .unwrap_or_else(|_| {
                    errors.push(FieldError::new(
                        "temperature",
                        "must be a number such as 0.7, or empty",
                    ));
                    None
                })
        };
        let description = self.description.trim();
        let spec = AgentSpec {
            slug: self.slug.clone(),
            name: self.name.clone(),
            description: (!description.is_empty()).then(|| description.to_string()),
            instructions: self.instructions.clone(),
            model: self.model.clone(),
            tools: self.tools.clone(),
            max_steps,
            temperature,
            max_repair_turns: agentry_core::agent::DEFAULT_REPAIR_TURNS,
            ..Default::default()
        };
        (spec, errors)
    }
}

/// What is shown above and next to the form fields.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FormErrors {
    pub message: String,
    pub fields: BTreeMap<String, Vec<String>>,
}

impl FormErrors {
    pub fn from_fields(errors: &[FieldError]) -> Self {
        let mut out = Self {
            message: "Please correct the fields marked below.".to_string(),
            fields: BTreeMap::new(),
        };
        for e in errors {
            out.fields
                .entry(e.field.clone())
                .or_default()
                .push(e.message.clone());
        }
        out
    }

    /// The service's message, and its per-field details when it names fields. Errors about a
    /// tool, a provider or a taken slug are also pinned to the field they concern.
    pub fn from_service(e: &ServiceError) -> Self {
        let mut out = Self {
            message: e.message.clone(),
            fields: BTreeMap::new(),
        };
        let fields = e
            .details
            .as_ref()
            .and_then(|d| d.get("fields"))
            .and_then(|f| f.as_array());
        for f in fields.into_iter().flatten() {
            if let (Some(field), Some(message)) = (
                f.get("field").and_then(|v| v.as_str()),
                f.get("message").and_then(|v| v.as_str()),
            ) {
                out.fields
                    .entry(field.to_string())
                    .or_default()
                    .push(message.to_string());
            }
        }
        let pinned = match e.code {
            ErrorCode::UnknownTool => Some("tools"),
            ErrorCode::UnknownProvider => Some("model"),
            ErrorCode::AgentExists => Some("slug"),
            _ => None,
        };
        if let Some(field) = pinned {
            out.fields
                .entry(field.to_string())
                .or_default()
                .push(e.message.clone());
        }
        out
    }
}

/// Errors the user fixes by editing the form; anything else gets an error page.
pub fn is_form_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ValidationFailed
            | ErrorCode::UnknownTool
            | ErrorCode::UnknownProvider
            | ErrorCode::AgentExists
    )
}

/// One checkbox of the tool list.
#[derive(Debug, Serialize)]
pub struct ToolChoice {
    pub name: String,
    pub checked: bool,
    /// False for a name the form sent that no registered tool has: still shown (checked) so the
    /// input is kept and the user sees what to untick.
    pub known: bool,
}

pub fn tool_choices(known: &[&str], chosen: &[String]) -> Vec<ToolChoice> {
    let mut out: Vec<ToolChoice> = known
        .iter()
        .map(|name| ToolChoice {
            name: (*name).to_string(),
            checked: chosen.iter().any(|c| c == name),
            known: true,
        })
        .collect();
    for c in chosen {
        if !known.contains(&c.as_str()) && !out.iter().any(|t| &t.name == c) {
            out.push(ToolChoice {
                name: c.clone(),
                checked: true,
                known: false,
            });
        }
    }
    out
}
