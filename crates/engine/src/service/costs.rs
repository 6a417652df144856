//! Cost reports from the ledger, and the org's price overrides.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::pricing::{self, PriceSource, format_pico, parse_usd_micro};
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::scope::OrgScope;
use agentry_store::costs::{self, CostGroup, GroupBy};
use agentry_store::prices::{self, PriceRow};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// The longest range one report may cover.
const MAX_RANGE_DAYS: i64 = 400;

/// Parses `from`/`to`: a date (`2026-12-01`, midnight UTC) or an RFC 3339 time.
pub fn parse_time(field: &str, text: &str) -> ServiceResult<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ServiceError::validation(vec![FieldError::new(
                field,
                "must be a date (2026-12-01) or an RFC 3339 time",
            )])
        })
}

pub struct CostReport {
    pub group_by: GroupBy,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub groups: Vec<CostGroup>,
}

/// The ledger between `from` (inclusive) and `to` (exclusive; a date means the end of that
/// day), grouped. Defaults: the last 30 days.
pub async fn report(
    platform: &Platform,
    scope: OrgScope,
    group_by: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> ServiceResult<CostReport> {
    let Some(group) = GroupBy::parse(group_by) else {
        return Err(ServiceError::validation(vec![FieldError::new(
            "group_by",
            "must be one of agent, user, api_key, end_user, model, day, workspace",
        )]));
    };
    let to = match to {
        Some(t) if t.len() == 10 => parse_time("to", t)? + Duration::days(1),
        Some(t) => parse_time("to", t)?,
        None => Utc::now() + Duration::seconds(1),
    };
    let from = match from {
        Some(f) => parse_time("from", f)?,
        None => to - Duration::days(30),
    };
    if from >= to || to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ServiceError::validation(vec![FieldError::new(
            "from",
            format!("must be before 'to', at most {MAX_RANGE_DAYS} days apart"),
        )]));
    }
    let groups = costs::report(&platform.db, scope, group, from, to).await?;
    Ok(CostReport {
        group_by: group,
        from,
        to,
        groups,
    })
}

pub fn usd(pico: Option<i64>) -> String {
    format_pico(pico.unwrap_or(0))
}

/// A price override as the user sends it (USD per million tokens).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    /// The provider name this price is for; absent = every provider of the org.
    #[serde(default)]
    pub provider: Option<String>,
    pub model: String,
    pub input: Value,
    pub output: Value,
    #[serde(default)]
    pub cache_read: Option<Value>,
    #[serde(default)]
    pub cache_write: Option<Value>,
    /// Since when it applies (default: now).
    #[serde(default)]
    pub effective_from: Option<String>,
}

fn micro(field: &str, v: &Value, errors: &mut Vec<FieldError>) -> i64 {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    parse_usd_micro(&text).unwrap_or_else(|| {
        errors.push(FieldError::new(
            field,
            "must be a USD amount per million tokens, e.g. \"0.15\" (at most 6 decimals, not negative)",
        ));
        0
    })
}

pub async fn create_price(
    platform: &Platform,
    scope: OrgScope,
    input: PriceInput,
) -> ServiceResult<PriceRow> {
    let mut errors = Vec::new();
    if input.model.trim().is_empty() || input.model.len() > 200 {
        errors.push(FieldError::new("model", "must be 1-200 characters"));
    }
    if let Some(p) = &input.provider
        && (p.is_empty() || p.len() > 100)
    {
        errors.push(FieldError::new("provider", "must be 1-100 characters"));
    }
    let input_micro = micro("input", &input.input, &mut errors);
    let output_micro = micro("output", &input.output, &mut errors);
    let cache_read = input
        .cache_read
        .as_ref()
        .map(|v| micro("cache_read", v, &mut errors));
    let cache_write = input
        .cache_write
        .as_ref()
        .map(|v| micro("cache_write", v, &mut errors));
    let effective_from = match &input.effective_from {
        Some(t) => match parse_time("effective_from", t) {
            Ok(t) => t,
            Err(_) => {
                errors.push(FieldError::new(
                    "effective_from",
                    "must be a date or an RFC 3339 time",
                ));
                Utc::now()
            }
        },
        None => Utc::now(),
    };
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    let row = PriceRow {
        id: Uuid::now_v7(),
        org_id: scope.org_id.0,
        provider: input.provider.unwrap_or_default(),
        model: input.model.trim().to_string(),
        input_micro,
        output_micro,
        cache_read_micro: cache_read,
        cache_write_micro: cache_write,
        effective_from,
        created_at: Utc::now(),
    };
    prices::create(&platform.db, &row).await?;
    Ok(row)
}

pub async fn list_prices(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<PriceRow>> {
    Ok(prices::list(&platform.db, scope).await?)
}

pub async fn delete_price(platform: &Platform, scope: OrgScope, id: Uuid) -> ServiceResult<()> {
    if prices::delete(&platform.db, scope, id).await? {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::PriceNotFound,
            format!("no price override with id {id}"),
        ))
    }
}

/// The price a model would be charged at now, and where it comes from.
pub async fn effective_price(
    platform: &Platform,
    scope: OrgScope,
    provider: &str,
    model: &str,
) -> ServiceResult<Option<(pricing::Price, PriceSource)>> {
    platform.price_for(scope, provider, model).await
}
