//! Cost-aware routing settings of an organization: the model behind each tier
//! (`tier:fast|standard|premium`, and `auto`, which picks a tier per request) and named model
//! aliases. Stored as the org's `routing` settings document.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::agent::{FieldError, ModelRef, is_valid_slug, split_model};
use agentry_core::scope::OrgScope;
use agentry_routing::{RouterRules, Tier};
use agentry_store::org_settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// `provider/model` per tier.
    #[serde(default)]
    pub tiers: BTreeMap<Tier, String>,
    /// Alias name → `provider/model`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// The classifier's thresholds and markers (defaults when absent).
    #[serde(default)]
    pub rules: Option<RouterRules>,
    /// An optional small model (`provider/model`) asked for the tier of each `auto` request;
    /// its answer overrides the rules' (which stand when it fails or answers nonsense). Billed
    /// to the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_model: Option<String>,
}

impl RoutingConfig {
    /// Whether `model` can be resolved with these settings; the error says what is missing.
    pub fn check(&self, model: &ModelRef<'_>) -> Result<(), String> {
        match model {
            ModelRef::Direct { .. } => Ok(()),
            ModelRef::Auto => {
                if self.tiers.is_empty() {
                    Err("'auto' needs the organization's model tiers (PUT /api/v1/routing)".into())
                } else {
                    Ok(())
                }
            }
            ModelRef::Tier(t) => match tier_of(t) {
                Some(tier) if self.tiers.contains_key(&tier) => Ok(()),
                _ => Err(format!(
                    "the organization has no model for tier '{t}' (PUT /api/v1/routing)"
                )),
            },
            ModelRef::Alias(a) => {
                if self.aliases.contains_key(*a) {
                    Ok(())
                } else {
                    Err(format!(
                        "'{a}' is neither 'provider/model' nor one of the organization's model aliases"
                    ))
                }
            }
        }
    }

    /// The model of `tier`, or of the nearest stronger tier that has one.
    pub fn model_for(&self, tier: Tier) -> Option<(Tier, &str)> {
        let mut t = Some(tier);
        while let Some(current) = t {
            if let Some(m) = self.tiers.get(&current) {
                return Some((current, m.as_str()));
            }
            t = current.next();
        }
        None
    }
}

pub fn tier_of(name: &str) -> Option<Tier> {
    match name {
        "fast" => Some(Tier::Fast),
        "standard" => Some(Tier::Standard),
        "premium" => Some(Tier::Premium),
        _ => None,
    }
}

/// The org's routing settings (empty when none are set).
pub async fn get(platform: &Platform, scope: OrgScope) -> ServiceResult<RoutingConfig> {
    match org_settings::get(&platform.db, scope, org_settings::ROUTING).await? {
        Some(row) => serde_json::from_value(row.value.0)
            .map_err(|e| ServiceError::internal("stored routing settings", e)),
        None => Ok(RoutingConfig::default()),
    }
}

/// Replaces the org's routing settings after checking every model names a known provider.
pub async fn put(
    platform: &Platform,
    scope: OrgScope,
    value: serde_json::Value,
) -> ServiceResult<RoutingConfig> {
    let config: RoutingConfig = serde_json::from_value(value).map_err(|e| {
        ServiceError::validation(vec![FieldError::new(
            "routing",
            format!("not a routing document: {e}"),
        )])
    })?;
    let names = crate::service::providers::names(platform, scope).await?;
    let mut errors = Vec::new();
    let targets = config
        .tiers
        .iter()
        .map(|(t, m)| (format!("tiers.{}", t.as_str()), m))
        .chain(
            config
                .aliases
                .iter()
                .map(|(a, m)| (format!("aliases.{a}"), m)),
        )
        .chain(
            config
                .classifier_model
                .iter()
                .map(|m| ("classifier_model".to_string(), m)),
        );
    for (field, model) in targets {
        match split_model(model) {
            Some((p, _)) if names.iter().any(|n| n == p) => {}
            Some((p, _)) => errors.push(FieldError::new(field, format!("unknown provider '{p}'"))),
            None => errors.push(FieldError::new(field, "must be '<provider>/<model>'")),
        }
    }
    for alias in config.aliases.keys() {
        if !is_valid_slug(alias) || alias == "auto" {
            errors.push(FieldError::new(
                format!("aliases.{alias}"),
                "alias names are 1-64 characters of a-z, 0-9, '-', '_' (and not 'auto')",
            ));
        }
    }
    if let Some(rules) = &config.rules
        && let Err(e) = rules.validate()
    {
        errors.push(FieldError::new("rules", e.to_string()));
    }
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    let value =
        serde_json::to_value(&config).map_err(|e| ServiceError::internal("routing settings", e))?;
    org_settings::put(&platform.db, scope, org_settings::ROUTING, &value).await?;
    Ok(config)
}
