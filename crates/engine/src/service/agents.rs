//! Agents: validated against the tools and providers that exist, versioned on every change.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::service::providers::{self, Change};
use agentry_core::ErrorCode;
use agentry_core::agent::{Agent, AgentSpec, FieldError, ModelRef, split_model};
use agentry_core::scope::WorkspaceScope;
use agentry_store::{StoreError, agents};

/// Checks a spec fully: shape, tools that exist, a provider that exists.
pub async fn validate(
    platform: &Platform,
    scope: WorkspaceScope,
    spec: &AgentSpec,
) -> ServiceResult<()> {
    validate_with(platform, scope, spec, &[]).await?;
    validate_members(platform, scope, spec, &[]).await
}

/// A crew's or network's members must be agents of the workspace (or, for `agentry apply`,
/// agents of the same plan). Self-membership is a shape error.
pub async fn validate_members(
    platform: &Platform,
    scope: WorkspaceScope,
    spec: &AgentSpec,
    planned_agents: &[String],
) -> ServiceResult<()> {
    let field = if spec.crew.is_some() {
        "crew.members"
    } else {
        "network.members"
    };
    let mut errors = Vec::new();
    for (i, member) in spec.members().iter().enumerate() {
        if planned_agents.contains(member) {
            continue;
        }
        if agents::get(&platform.db, scope, member).await?.is_none() {
            errors.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("no agent with slug '{member}' exists in the workspace"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::validation(errors))
    }
}

/// Like [`validate`], also accepting providers about to be created (`agentry apply` plans).
pub async fn validate_with(
    platform: &Platform,
    scope: WorkspaceScope,
    spec: &AgentSpec,
    planned_providers: &[String],
) -> ServiceResult<()> {
    let mut errors = spec.validate_shape();
    if let Some(policy) = &spec.guardrails
        && let Err(e) = crate::service::guardrails::parse_policy("guardrails", policy)
    {
        errors.push(e);
    }
    if let Some(schema) = &spec.output_schema
        && schema.is_object()
        && let Err(e) = agentry_tools::schema::compile(schema)
    {
        errors.push(FieldError::new(
            "output_schema",
            format!("is not a valid JSON Schema: {e}"),
        ));
    }
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    let known = platform.tools.names();
    let unknown: Vec<&String> = spec
        .tools
        .iter()
        .filter(|t| !known.contains(&t.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(ServiceError::new(
            ErrorCode::UnknownTool,
            format!(
                "unknown tool(s): {}; available tools: {}",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                known.join(", ")
            ),
        )
        .with_details(serde_json::json!({ "unknown": unknown, "available": known })));
    }
    let mut names = providers::names(platform, scope.org()).await?;
    names.extend(planned_providers.iter().cloned());
    let unknown_provider = |field: &str, provider: &str| {
        ServiceError::new(
            ErrorCode::UnknownProvider,
            format!(
                "{field}: unknown provider '{provider}'; available providers: {}",
                if names.is_empty() {
                    "none (register one with POST /api/v1/providers)".to_string()
                } else {
                    names.join(", ")
                }
            ),
        )
        .with_details(
            serde_json::json!({ "field": field, "unknown": provider, "available": names }),
        )
    };
    match ModelRef::parse(&spec.model) {
        Some(ModelRef::Direct { provider, .. }) if !names.iter().any(|n| n == provider) => {
            return Err(unknown_provider("model", provider));
        }
        Some(ModelRef::Direct { .. }) => {}
        // Routed models need the org's routing to name them (checked again at run time).
        Some(routed) => {
            let routing = crate::service::routing::get(platform, scope.org()).await?;
            if let Err(message) = routing.check(&routed) {
                return Err(ServiceError::validation(vec![FieldError::new(
                    "model", message,
                )]));
            }
        }
        None => {}
    }
    // Fallback models must name providers that exist too.
    for (field, model) in spec
        .fallbacks
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("fallbacks[{i}]"), m))
        .chain(
            spec.context_fallback
                .iter()
                .map(|m| ("context_fallback".to_string(), m)),
        )
    {
        if let Some((p, _)) = split_model(model)
            && !names.iter().any(|n| n == p)
        {
            return Err(unknown_provider(&field, p));
        }
    }
    Ok(())
}

pub async fn create(
    platform: &Platform,
    scope: WorkspaceScope,
    spec: AgentSpec,
) -> ServiceResult<Agent> {
    validate(platform, scope, &spec).await?;
    let slug = spec.slug.clone();
    agents::create(&platform.db, scope, spec)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ServiceError::new(
                ErrorCode::AgentExists,
                format!("an agent with slug '{slug}' already exists"),
            ),
            other => other.into(),
        })
}

pub async fn get(platform: &Platform, scope: WorkspaceScope, slug: &str) -> ServiceResult<Agent> {
    agents::get(&platform.db, scope, slug)
        .await?
        .ok_or_else(|| not_found(slug))
}

pub async fn list(platform: &Platform, scope: WorkspaceScope) -> ServiceResult<Vec<Agent>> {
    Ok(agents::list(&platform.db, scope).await?)
}

/// Writes a new version. The slug in the path wins; a different slug in the body is an error.
pub async fn update(
    platform: &Platform,
    scope: WorkspaceScope,
    slug: &str,
    spec: AgentSpec,
) -> ServiceResult<Agent> {
    if spec.slug != slug {
        return Err(ServiceError::validation(vec![
            agentry_core::agent::FieldError::new(
                "slug",
                format!("must match the agent being updated ('{slug}')"),
            ),
        ]));
    }
    validate(platform, scope, &spec).await?;
    agents::update(&platform.db, scope, slug, spec)
        .await?
        .ok_or_else(|| not_found(slug))
}

/// Creates, updates (when the spec differs) or leaves an agent (declarative apply).
pub async fn upsert(
    platform: &Platform,
    scope: WorkspaceScope,
    spec: AgentSpec,
    dry_run: bool,
    planned_providers: &[String],
) -> ServiceResult<Change> {
    validate_with(platform, scope, &spec, planned_providers).await?;
    match agents::get(&platform.db, scope, &spec.slug).await? {
        None => {
            if !dry_run {
                create(platform, scope, spec).await?;
            }
            Ok(Change::Created)
        }
        Some(existing) if existing.spec == spec => Ok(Change::Unchanged),
        Some(_) if dry_run => Ok(Change::Updated),
        Some(_) => {
            let slug = spec.slug.clone();
            update(platform, scope, &slug, spec).await?;
            Ok(Change::Updated)
        }
    }
}

pub async fn delete(platform: &Platform, scope: WorkspaceScope, slug: &str) -> ServiceResult<()> {
    if agents::delete(&platform.db, scope, slug).await? {
        Ok(())
    } else {
        Err(not_found(slug))
    }
}

fn not_found(slug: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::AgentNotFound,
        format!("no agent with slug '{slug}'"),
    )
}
