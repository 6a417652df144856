//! Turns a provider name into a ready [`ChatModel`], with the key decrypted. Adapters are cached
//! per provider row version, so a changed URL or key takes effect on the next run.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::vault::Binding;
use agentry_core::ErrorCode;
use agentry_core::chat::ChatModel;
use agentry_core::scope::OrgScope;
use agentry_llm::OpenAiConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) struct ModelCache {
    http: reqwest::Client,
    adapters: Mutex<HashMap<String, Arc<dyn ChatModel>>>,
}

impl ModelCache {
    pub(crate) fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            adapters: Mutex::new(HashMap::new()),
        }
    }
}

/// Where a provider came from.
pub(crate) struct ResolvedProvider {
    pub(crate) cache_key: String,
    pub(crate) kind: String,
    pub(crate) base_url: String,
    pub(crate) api_key: Option<String>,
}

/// A provider key is bound to its provider row and to the base URL it was entered for: if the
/// URL in the database changes (by API, apply or a tampered row) the key no longer decrypts, so
/// it is never sent to a host it was not given for.
pub(crate) fn provider_binding<'a>(provider_id: uuid::Uuid, base_url: &'a str) -> Binding<'a> {
    Binding {
        purpose: "provider_api_key",
        row: provider_id,
        context: base_url,
    }
}

impl Platform {
    async fn resolve_provider(
        &self,
        scope: OrgScope,
        name: &str,
    ) -> ServiceResult<ResolvedProvider> {
        if let Some(row) = agentry_store::providers::get(&self.db, scope, name).await? {
            // Checked again at use: the row may predate the rules or have been edited.
            if let Err(e) = self.egress.check_url(&row.base_url) {
                return Err(ServiceError::new(
                    ErrorCode::ProviderRejected,
                    format!("the provider's base URL is not allowed: {e}"),
                ));
            }
            let api_key = match &row.api_key_encrypted {
                Some(enc) => Some(
                    self.vault
                        .open(scope, &provider_binding(row.id, &row.base_url), enc)
                        .await
                        .map_err(|e| ServiceError::internal("provider key", e))?,
                ),
                None => None,
            };
            return Ok(ResolvedProvider {
                cache_key: format!("{}@{}", row.id, row.updated_at.timestamp_micros()),
                kind: row.kind,
                base_url: row.base_url,
                api_key,
            });
        }
        if let Some(p) = self
            .config
            .instance_providers
            .iter()
            .find(|p| p.name == name)
        {
            return Ok(ResolvedProvider {
                cache_key: format!("instance:{}", p.name),
                kind: p.kind.clone(),
                base_url: p.base_url.clone(),
                api_key: p
                    .api_key_env
                    .as_deref()
                    .and_then(|var| std::env::var(var).ok()),
            });
        }
        Err(ServiceError::new(
            ErrorCode::AgentUnavailable,
            format!("provider '{name}' no longer exists"),
        ))
    }

    pub(crate) async fn chat_model(
        &self,
        scope: OrgScope,
        provider: &str,
    ) -> ServiceResult<Arc<dyn ChatModel>> {
        let resolved = self.resolve_provider(scope, provider).await?;
        if let Ok(cache) = self.models.adapters.lock()
            && let Some(model) = cache.get(&resolved.cache_key)
        {
            return Ok(model.clone());
        }
        let config = OpenAiConfig {
            base_url: resolved.base_url,
            api_key: resolved.api_key,
            timeouts: self.config.model_timeouts.clone(),
            retry: self.config.model_retry.clone(),
        };
        let model = agentry_llm::build_provider(&resolved.kind, config, self.models.http.clone())
            .map_err(|e| ServiceError::new(ErrorCode::AgentUnavailable, e.to_string()))?;
        if let Ok(mut cache) = self.models.adapters.lock() {
            cache.insert(resolved.cache_key, model.clone());
        }
        Ok(model)
    }
}

impl Platform {
    /// The price in effect now for `model` on the named provider: the org's overrides first,
    /// then the catalogue by the provider's API host. `None` = unknown (recorded, not guessed).
    pub(crate) async fn price_for(
        &self,
        scope: OrgScope,
        provider: &str,
        model: &str,
    ) -> ServiceResult<Option<(crate::pricing::Price, crate::pricing::PriceSource)>> {
        let now = chrono::Utc::now();
        let rows = agentry_store::prices::for_model(&self.db, scope, model).await?;
        if let Some(found) = crate::pricing::override_price(&rows, provider, now) {
            return Ok(Some(found));
        }
        let base_url = match agentry_store::providers::get(&self.db, scope, provider).await? {
            Some(row) => row.base_url,
            None => match self
                .config
                .instance_providers
                .iter()
                .find(|p| p.name == provider)
            {
                Some(p) => p.base_url.clone(),
                None => return Ok(None),
            },
        };
        Ok(crate::pricing::api_host(&base_url)
            .and_then(|host| crate::pricing::catalogue_price(&host, model, now))
            .map(|p| (p, crate::pricing::PriceSource::Catalogue)))
    }
}
