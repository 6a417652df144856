//! Declarative configuration: a set of resources (`apiVersion: agentry/v1`, kinds `Provider`,
//! `Agent` and `Workflow`) is compared with what exists, planned (create / update / unchanged) and, unless
//! it is a dry run, applied. Applying the same set twice changes nothing.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::service::providers::{Change, ProviderInput};
use crate::service::{agents, providers};
use agentry_core::ErrorCode;
use agentry_core::agent::AgentSpec;
use agentry_core::scope::WorkspaceScope;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const API_VERSION: &str = "agentry/v1";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Value,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    pub kind: String,
    pub name: String,
    /// `create`, `update` or `unchanged`.
    pub action: &'static str,
}

/// The `spec` of a Provider resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSpec {
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
}

/// The `spec` of an Agent resource (the slug is `metadata.name`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentResourceSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    instructions: String,
    model: String,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    max_steps: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    fallbacks: Vec<String>,
    #[serde(default)]
    context_fallback: Option<String>,
    #[serde(default)]
    cache: Option<agentry_core::agent::ResponseCacheSpec>,
    #[serde(default)]
    guardrails: Option<serde_json::Value>,
    #[serde(default)]
    output_schema: Option<serde_json::Value>,
    #[serde(default)]
    max_repair_turns: Option<u32>,
    #[serde(default)]
    prompt_cache: bool,
    #[serde(default)]
    crew: Option<agentry_core::crew::CrewSpec>,
    #[serde(default)]
    network: Option<agentry_core::crew::NetworkSpec>,
}

fn resource_error(index: usize, r: &Resource, e: ServiceError) -> ServiceError {
    let message = format!("{} '{}': {}", r.kind, r.metadata.name, e.message);
    let mut details =
        serde_json::json!({"resource_index": index, "kind": r.kind, "name": r.metadata.name});
    if let Some(d) = e.details {
        details["cause"] = d;
    }
    ServiceError::new(e.code, message).with_details(details)
}

fn parse_spec<T: serde::de::DeserializeOwned>(index: usize, r: &Resource) -> ServiceResult<T> {
    serde_json::from_value(r.spec.clone()).map_err(|e| {
        resource_error(
            index,
            r,
            ServiceError::new(ErrorCode::ValidationFailed, format!("spec: {e}")),
        )
    })
}

/// Plans (and unless `dry_run`, applies) the resources: providers first, then agents.
pub async fn apply(
    platform: &Platform,
    scope: WorkspaceScope,
    resources: Vec<Resource>,
    dry_run: bool,
) -> ServiceResult<Vec<PlannedChange>> {
    // Check everything's shape before changing anything.
    let mut provider_inputs = Vec::new();
    let mut agent_specs = Vec::new();
    let mut workflows = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        if r.api_version != API_VERSION {
            return Err(resource_error(
                i,
                r,
                ServiceError::new(
                    ErrorCode::ValidationFailed,
                    format!("apiVersion must be '{API_VERSION}'"),
                ),
            ));
        }
        match r.kind.as_str() {
            "Provider" => {
                let spec: ProviderSpec = parse_spec(i, r)?;
                let (kind, base_url) =
                    providers::with_preset(spec.preset.as_deref(), spec.kind, spec.base_url)
                        .map_err(|e| resource_error(i, r, ServiceError::validation(vec![e])))?;
                let input = ProviderInput {
                    name: r.metadata.name.clone(),
                    kind,
                    base_url,
                    api_key: spec.api_key,
                };
                let errors = providers::validate(&input);
                if !errors.is_empty() {
                    return Err(resource_error(i, r, ServiceError::validation(errors)));
                }
                provider_inputs.push((i, input));
            }
            "Agent" => {
                let spec: AgentResourceSpec = parse_spec(i, r)?;
                agent_specs.push((
                    i,
                    AgentSpec {
                        slug: r.metadata.name.clone(),
                        name: spec.name,
                        description: spec.description,
                        instructions: spec.instructions,
                        model: spec.model,
                        tools: spec.tools,
                        max_steps: spec
                            .max_steps
                            .unwrap_or(agentry_core::agent::DEFAULT_MAX_STEPS),
                        temperature: spec.temperature,
                        max_tokens: spec.max_tokens,
                        fallbacks: spec.fallbacks,
                        context_fallback: spec.context_fallback,
                        cache: spec.cache,
                        guardrails: spec.guardrails,
                        output_schema: spec.output_schema,
                        max_repair_turns: spec
                            .max_repair_turns
                            .unwrap_or(agentry_core::agent::DEFAULT_REPAIR_TURNS),
                        prompt_cache: spec.prompt_cache,
                        crew: spec.crew,
                        network: spec.network,
                    },
                ));
            }
            "Workflow" => {
                let document = serde_json::to_value(r)
                    .map_err(|e| ServiceError::internal("serializing a workflow resource", e))?;
                // Shape and graph now; references (agents, tools) once agents are planned.
                let validated = crate::service::workflows::parse(
                    &crate::service::workflows::Source::Json(document.clone()),
                )
                .map_err(|e| resource_error(i, r, e))?;
                workflows.push((i, document, validated));
            }
            other => {
                return Err(resource_error(
                    i,
                    r,
                    ServiceError::new(
                        ErrorCode::ValidationFailed,
                        format!("unknown kind '{other}': use Provider, Agent or Workflow"),
                    ),
                ));
            }
        }
    }
    let planned_providers: Vec<String> = provider_inputs
        .iter()
        .map(|(_, p)| p.name.clone())
        .collect();
    // A dry run validates every agent first, so a plan never half-applies.
    let planned_agents: Vec<String> = agent_specs.iter().map(|(_, s)| s.slug.clone()).collect();
    for (i, spec) in &agent_specs {
        agents::validate_with(platform, scope, spec, &planned_providers)
            .await
            .map_err(|e| resource_error(*i, &resources[*i], e))?;
        agents::validate_members(platform, scope, spec, &planned_agents)
            .await
            .map_err(|e| resource_error(*i, &resources[*i], e))?;
    }
    // Crews and networks after the agents they name, which must exist when they are written.
    agent_specs.sort_by_key(|(_, spec)| !spec.members().is_empty());
    let mut plan = Vec::new();
    for (i, input) in provider_inputs {
        let name = input.name.clone();
        let change = providers::upsert(platform, scope.org(), input, dry_run)
            .await
            .map_err(|e| resource_error(i, &resources[i], e))?;
        plan.push(planned("Provider", name, change));
    }
    for (i, spec) in agent_specs {
        let name = spec.slug.clone();
        let change = agents::upsert(platform, scope, spec, dry_run, &planned_providers)
            .await
            .map_err(|e| resource_error(i, &resources[i], e))?;
        plan.push(planned("Agent", name, change));
    }
    // Workflows last: they may name the agents above. A dry run cannot check agents it has
    // not created yet, so it checks references only against what exists.
    for (i, document, validated) in workflows {
        let name = validated.workflow().metadata.name.clone();
        let action = plan_workflow(platform, scope, &name, &validated).await?;
        if !dry_run {
            crate::service::workflows::check_references(platform, scope, &validated)
                .await
                .map_err(|e| resource_error(i, &resources[i], e))?;
            if action != Change::Unchanged {
                crate::service::workflows::save(
                    platform,
                    scope,
                    crate::service::workflows::Source::Json(document),
                    action == Change::Created,
                )
                .await
                .map_err(|e| resource_error(i, &resources[i], e))?;
            }
        }
        plan.push(planned("Workflow", name, action));
    }
    Ok(plan)
}

/// Whether a workflow is new, changed (a new version) or the same as its latest version.
async fn plan_workflow(
    platform: &Platform,
    scope: WorkspaceScope,
    name: &str,
    validated: &agentry_workflow::ValidatedWorkflow,
) -> ServiceResult<Change> {
    match crate::service::workflows::latest(platform, scope, name).await {
        Ok((_, current)) if current.workflow() == validated.workflow() => Ok(Change::Unchanged),
        Ok(_) => Ok(Change::Updated),
        Err(e) if e.code == ErrorCode::WorkflowNotFound => Ok(Change::Created),
        Err(e) => Err(e),
    }
}

fn planned(kind: &str, name: String, change: Change) -> PlannedChange {
    PlannedChange {
        kind: kind.to_string(),
        name,
        action: change.as_str(),
    }
}
