//! Guardrail policies: the organization's (stored) and each agent's (in its spec). A run
//! applies both, the stricter action winning where they overlap.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::agent::{AgentSpec, FieldError};
use agentry_core::scope::OrgScope;
use agentry_guardrails::{CompiledPolicy, GuardrailPolicy};
use agentry_store::org_settings;
use serde_json::Value;

/// Parses and compiles a policy document; errors name the field path under `field`.
pub fn parse_policy(field: &str, value: &Value) -> Result<GuardrailPolicy, FieldError> {
    let policy: GuardrailPolicy = serde_json::from_value(value.clone())
        .map_err(|e| FieldError::new(field, format!("not a guardrail policy: {e}")))?;
    policy
        .validate()
        .map_err(|e| FieldError::new(format!("{field}.{}", e.path), e.reason))?;
    Ok(policy)
}

/// The org's policy document (`{}` when none is set).
pub async fn get(platform: &Platform, scope: OrgScope) -> ServiceResult<Value> {
    Ok(
        org_settings::get(&platform.db, scope, org_settings::GUARDRAILS)
            .await?
            .map(|row| row.value.0)
            .unwrap_or_else(|| serde_json::json!({})),
    )
}

/// Replaces the org's policy after validating it.
pub async fn put(platform: &Platform, scope: OrgScope, policy: Value) -> ServiceResult<Value> {
    parse_policy("policy", &policy).map_err(|e| ServiceError::validation(vec![e]))?;
    org_settings::put(&platform.db, scope, org_settings::GUARDRAILS, &policy).await?;
    Ok(policy)
}

/// The policy a run of `spec` applies: the org's and the agent's, merged.
pub async fn compiled_for(
    platform: &Platform,
    scope: OrgScope,
    spec: &AgentSpec,
) -> ServiceResult<CompiledPolicy> {
    let org = match org_settings::get(&platform.db, scope, org_settings::GUARDRAILS).await? {
        Some(row) => parse_policy("org policy", &row.value.0)
            .map_err(|e| ServiceError::validation(vec![e]))?,
        None => GuardrailPolicy::default(),
    };
    let agent = match &spec.guardrails {
        Some(v) => parse_policy("guardrails", v).map_err(|e| ServiceError::validation(vec![e]))?,
        None => GuardrailPolicy::default(),
    };
    CompiledPolicy::combine(&org, &agent).map_err(|e| {
        ServiceError::validation(vec![FieldError::new(
            format!("guardrails.{}", e.path),
            e.reason,
        )])
    })
}
