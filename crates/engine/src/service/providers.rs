//! Model providers of an organization, plus the instance-wide ones from `agentry.toml`.

use crate::error::{ServiceError, ServiceResult};
use crate::models::provider_binding;
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_core::agent::{FieldError, is_valid_slug};
use agentry_core::ids::ProviderId;
use agentry_core::scope::OrgScope;
use agentry_store::StoreError;
use agentry_store::providers::{self, NewProvider, ProviderRow};
use serde::Deserialize;

/// Wire protocols: `openai` (any OpenAI-compatible server), `anthropic` (Messages API), `gemini`
/// (generateContent).
pub const KINDS: &[&str] = &["openai", "anthropic", "gemini"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Fills `kind` and `base_url` from a named preset (OpenAI, Groq, DeepSeek, xAI, Mistral,
/// Together, OpenRouter, Ollama, vLLM, llama.cpp, LiteLLM, Anthropic, Gemini); what the user
/// gives explicitly wins. Without a preset both are required.
pub fn with_preset(
    preset: Option<&str>,
    kind: Option<String>,
    base_url: Option<String>,
) -> Result<(String, String), FieldError> {
    let found = match preset {
        Some(name) => Some(agentry_llm::preset(name).ok_or_else(|| {
            FieldError::new(
                "preset",
                format!(
                    "unknown preset '{name}'; presets: {}",
                    agentry_llm::presets()
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?),
        None => None,
    };
    let kind = kind
        .or_else(|| found.map(|p| p.kind.as_str().to_string()))
        .ok_or_else(|| FieldError::new("kind", "is required (or give a preset)"))?;
    let base_url = base_url
        .or_else(|| found.map(|p| p.base_url.to_string()))
        .ok_or_else(|| FieldError::new("base_url", "is required (or give a preset)"))?;
    Ok((kind, base_url))
}

/// A provider as shown to users: the key is never included, only whether one is set.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub api_key_set: bool,
    /// `org` or `instance` (from agentry.toml, read-only through the API).
    pub source: &'static str,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<&ProviderRow> for ProviderInfo {
    fn from(r: &ProviderRow) -> Self {
        Self {
            name: r.name.clone(),
            kind: r.kind.clone(),
            base_url: r.base_url.clone(),
            api_key_set: r.api_key_encrypted.is_some(),
            source: "org",
            created_at: Some(r.created_at),
        }
    }
}

pub fn validate(input: &ProviderInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !is_valid_slug(&input.name) {
        errors.push(FieldError::new(
            "name",
            "must be 1-64 characters of a-z, 0-9, '-' or '_'",
        ));
    }
    if !KINDS.contains(&input.kind.as_str()) {
        errors.push(FieldError::new(
            "kind",
            format!("must be one of: {}", KINDS.join(", ")),
        ));
    }
    match url::Url::parse(&input.base_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                errors.push(FieldError::new(
                    "base_url",
                    "must not contain credentials; use api_key",
                ));
            }
        }
        _ => errors.push(FieldError::new(
            "base_url",
            "must be an http(s) URL such as https://api.openai.com/v1",
        )),
    }
    if let Some(key) = &input.api_key
        && (key.is_empty() || key.len() > 4096)
    {
        errors.push(FieldError::new("api_key", "must be 1-4096 characters"));
    }
    errors
}

/// [`validate`] plus the SSRF rules: a base URL may not point at loopback, private, link-local
/// or metadata addresses unless the operator allow-listed them (`AGENTRY_HTTP_ALLOW_HOSTS`).
/// The provider client re-checks every resolved address when it connects.
fn validate_with_guard(platform: &Platform, input: &ProviderInput) -> Vec<FieldError> {
    let mut errors = validate(input);
    if errors.iter().all(|e| e.field != "base_url")
        && let Err(e) = platform.egress.check_url(input.base_url.trim())
    {
        errors.push(FieldError::new(
            "base_url",
            format!("{e} (allow it with AGENTRY_HTTP_ALLOW_HOSTS if it is yours)"),
        ));
    }
    errors
}

pub async fn create(
    platform: &Platform,
    scope: OrgScope,
    input: ProviderInput,
) -> ServiceResult<ProviderInfo> {
    let errors = validate_with_guard(platform, &input);
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    let id = ProviderId::new();
    let base_url = input.base_url.trim_end_matches('/').to_string();
    let api_key_encrypted = match input.api_key.as_deref() {
        Some(k) => Some(
            platform
                .vault
                .seal(scope, &provider_binding(id.0, &base_url), k)
                .await
                .map_err(|e| ServiceError::internal("encrypting provider key", e))?,
        ),
        None => None,
    };
    let row = providers::create(
        &platform.db,
        scope,
        NewProvider {
            id,
            name: input.name.clone(),
            kind: input.kind,
            base_url,
            api_key_encrypted,
        },
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict => ServiceError::new(
            ErrorCode::ProviderExists,
            format!("a provider named '{}' already exists", input.name),
        ),
        other => other.into(),
    })?;
    Ok(ProviderInfo::from(&row))
}

/// Creates or replaces a provider (declarative apply). Returns whether anything changed.
pub async fn upsert(
    platform: &Platform,
    scope: OrgScope,
    input: ProviderInput,
    dry_run: bool,
) -> ServiceResult<Change> {
    let errors = validate_with_guard(platform, &input);
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    let Some(mut existing) = providers::get(&platform.db, scope, &input.name).await? else {
        if !dry_run {
            create(platform, scope, input).await?;
        }
        return Ok(Change::Created);
    };
    let current_key = match existing.api_key_encrypted.as_deref() {
        Some(enc) => Some(
            platform
                .vault
                .open(
                    scope,
                    &provider_binding(existing.id, &existing.base_url),
                    enc,
                )
                .await
                .map_err(|e| ServiceError::internal("provider key", e))?,
        ),
        None => None,
    };
    let base_url = input.base_url.trim_end_matches('/').to_string();
    if existing.kind == input.kind && existing.base_url == base_url && current_key == input.api_key
    {
        return Ok(Change::Unchanged);
    }
    if existing.base_url != base_url && current_key.is_some() && input.api_key.is_none() {
        return Err(ServiceError::new(
            ErrorCode::ProviderKeyRequired,
            format!(
                "provider '{}' has an API key for {}; to point it at {base_url}, enter the key again (it is never sent to a URL it was not entered for)",
                existing.name, existing.base_url
            ),
        ));
    }
    if dry_run {
        return Ok(Change::Updated);
    }
    existing.kind = input.kind;
    existing.api_key_encrypted = match input.api_key.as_deref() {
        Some(k) => Some(
            platform
                .vault
                .seal(scope, &provider_binding(existing.id, &base_url), k)
                .await
                .map_err(|e| ServiceError::internal("encrypting provider key", e))?,
        ),
        None => None,
    };
    existing.base_url = base_url;
    providers::update(&platform.db, scope, &existing).await?;
    Ok(Change::Updated)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "create",
            Change::Updated => "update",
            Change::Unchanged => "unchanged",
        }
    }
}

pub async fn list(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<ProviderInfo>> {
    let mut out: Vec<ProviderInfo> = providers::list(&platform.db, scope)
        .await?
        .iter()
        .map(ProviderInfo::from)
        .collect();
    for p in &platform.config.instance_providers {
        if !out.iter().any(|o| o.name == p.name) {
            out.push(ProviderInfo {
                name: p.name.clone(),
                kind: p.kind.clone(),
                base_url: p.base_url.clone(),
                api_key_set: p.api_key_env.is_some(),
                source: "instance",
                created_at: None,
            });
        }
    }
    Ok(out)
}

pub async fn get(platform: &Platform, scope: OrgScope, name: &str) -> ServiceResult<ProviderInfo> {
    list(platform, scope)
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| not_found(name))
}

pub async fn delete(platform: &Platform, scope: OrgScope, name: &str) -> ServiceResult<()> {
    if providers::delete(&platform.db, scope, name).await? {
        Ok(())
    } else {
        Err(not_found(name))
    }
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::ProviderNotFound,
        format!("no provider named '{name}'"),
    )
}

/// Names of every provider the organization can use.
pub async fn names(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<String>> {
    Ok(list(platform, scope)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect())
}

/// One circuit breaker of the org as this server sees it.
#[derive(Debug, Clone)]
pub struct ModelHealth {
    pub provider: String,
    pub model: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    pub calls: u32,
    pub failures: u32,
    pub consecutive_overloads: u32,
    /// While open: seconds until a probe call is let through.
    pub retry_in_seconds: Option<u64>,
}

/// The circuit breakers of the org's providers and models (this process's view: each replica
/// keeps its own).
pub fn health(platform: &Platform, scope: OrgScope) -> Vec<ModelHealth> {
    let prefix = format!("{}:", scope.org_id.0);
    let mut out: Vec<ModelHealth> = platform
        .breakers
        .snapshot(std::time::Instant::now())
        .into_iter()
        .filter_map(|s| {
            let provider = s.provider.strip_prefix(&prefix)?.to_string();
            Some(ModelHealth {
                provider,
                model: s.model,
                state: s.state.as_str(),
                calls: s.calls,
                failures: s.failures,
                consecutive_overloads: s.consecutive_overloads,
                retry_in_seconds: s.retry_in.map(|d| d.as_secs().max(1)),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
    out
}
