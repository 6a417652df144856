//! Wire types of the money API: cost reports, budgets and price overrides. Amounts of money are
//! exact decimal strings in USD (`"0.000123"`); token amounts are integers.

use agentry_engine::budget::Threshold;
use agentry_engine::pricing::format_micro;
use agentry_engine::service::budgets::BudgetInfo;
use agentry_engine::service::costs::usd;
use agentry_store::budgets::AlertRow;
use agentry_store::costs::CostGroup;
use agentry_store::prices::PriceRow;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct CostLine {
    /// The group's key: an id (agent, user, API key, workspace), an end-user id, a model, or
    /// a day (`YYYY-MM-DD`, UTC). Null for calls without one (e.g. no end user given).
    pub key: Option<String>,
    /// A readable name for ids (agent slug, key name, email), when known.
    pub label: Option<String>,
    /// For `group_by=model`: the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub calls: i64,
    /// Calls whose model has no known price (their cost is not in `cost_usd`).
    pub unpriced_calls: i64,
    pub cache_hits: i64,
    pub input_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: String,
}

impl CostLine {
    pub fn new(g: CostGroup, label: Option<String>) -> Self {
        Self {
            key: g.key_id.map(|k| k.to_string()).or(g.key_text),
            label,
            provider: g.provider,
            calls: g.calls,
            unpriced_calls: g.unpriced_calls,
            cache_hits: g.cache_hits,
            input_tokens: g.input_tokens.unwrap_or(0),
            cache_read_tokens: g.cache_read_tokens.unwrap_or(0),
            cache_write_tokens: g.cache_write_tokens.unwrap_or(0),
            output_tokens: g.output_tokens.unwrap_or(0),
            cost_usd: usd(g.cost_pico),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostReportOut {
    pub group_by: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub data: Vec<CostLine>,
    pub total: CostTotal,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct CostTotal {
    pub calls: i64,
    pub unpriced_calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetOut {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub scope: Value,
    pub period: String,
    pub timezone: String,
    /// `usd` or `tokens`.
    pub unit: String,
    /// A USD string or a token count, by `unit`.
    #[schema(value_type = Object)]
    pub limit: Value,
    #[schema(value_type = Vec<Object>)]
    pub thresholds: Vec<Threshold>,
    pub notify_url: Option<String>,
    pub notify_email: Option<String>,
    /// Shown once: the Standard Webhooks secret (`whsec_…`) notifications are signed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_secret: Option<String>,
    pub current_period: PeriodOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<AlertOut>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodOut {
    pub start: String,
    #[schema(value_type = Object)]
    pub spent: Value,
    /// The maximum cost of calls in flight.
    #[schema(value_type = Object)]
    pub reserved: Value,
    /// Spent as a percentage of the limit.
    pub percent: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOut {
    pub id: String,
    pub period_start: String,
    pub threshold_percent: i64,
    pub action: String,
    #[schema(value_type = Object)]
    pub spent: Value,
    /// `pending`, `delivered`, `failed` or `none` (no destination configured).
    pub delivery: String,
    pub delivery_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl BudgetOut {
    pub fn new(b: BudgetInfo, alerts: Option<Vec<AlertRow>>) -> Self {
        let percent = if b.row.limit_amount > 0 {
            (b.spent as f64 / b.row.limit_amount as f64 * 10_000.0).round() / 100.0
        } else {
            0.0
        };
        let scope = if b.row.scope_kind == "org" {
            serde_json::json!({"kind": "org"})
        } else {
            serde_json::json!({"kind": b.row.scope_kind, "id": b.row.scope_ref})
        };
        Self {
            id: b.row.id.to_string(),
            name: b.row.name.clone(),
            scope,
            period: b.row.period.clone(),
            timezone: b.row.timezone.clone(),
            unit: b.row.unit.clone(),
            limit: b.amount(b.row.limit_amount),
            thresholds: b.thresholds.clone(),
            notify_url: b.row.notify_url.clone(),
            notify_email: b.row.notify_email.clone(),
            notify_secret: b.notify_secret.clone(),
            current_period: PeriodOut {
                start: b.period_start.clone(),
                spent: b.amount(b.spent),
                reserved: b.amount(b.reserved),
                percent,
            },
            alerts: alerts.map(|rows| {
                rows.into_iter()
                    .map(|a| AlertOut {
                        id: a.id.to_string(),
                        period_start: a.period_start,
                        threshold_percent: a.threshold,
                        action: a.action,
                        spent: b.amount(a.spent),
                        delivery: a.delivery,
                        delivery_error: a.delivery_error,
                        created_at: a.created_at,
                    })
                    .collect()
            }),
            created_at: b.row.created_at,
            updated_at: b.row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceOut {
    pub id: String,
    /// Null: every provider of the org.
    pub provider: Option<String>,
    pub model: String,
    /// USD per million tokens.
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write: Option<String>,
    pub effective_from: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<PriceRow> for PriceOut {
    fn from(r: PriceRow) -> Self {
        Self {
            id: r.id.to_string(),
            provider: (!r.provider.is_empty()).then_some(r.provider),
            model: r.model,
            input: format_micro(r.input_micro),
            output: format_micro(r.output_micro),
            cache_read: r.cache_read_micro.map(format_micro),
            cache_write: r.cache_write_micro.map(format_micro),
            effective_from: r.effective_from,
            created_at: r.created_at,
        }
    }
}

/// Body of `POST /budgets` and `PUT /budgets/{id}`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetIn {
    pub name: String,
    pub scope: BudgetScopeIn,
    /// `day`, `week` or `month`.
    pub period: String,
    /// IANA time zone the period starts in (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// A USD amount, e.g. `"25.00"` (give this or `limit_tokens`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub limit_usd: Option<Value>,
    #[serde(default)]
    pub limit_tokens: Option<i64>,
    /// Default: block at 100%.
    #[serde(default)]
    pub thresholds: Option<Vec<ThresholdIn>>,
    /// Receives a Standard Webhooks signed POST when a threshold is reached.
    #[serde(default)]
    pub notify_url: Option<String>,
    /// Receives an email when a threshold is reached (needs SMTP).
    #[serde(default)]
    pub notify_email: Option<String>,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetScopeIn {
    /// `org`, `workspace`, `agent`, `api_key` or `end_user`.
    pub kind: String,
    /// The workspace, agent or API key id, or your end-user id; absent for `org`.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdIn {
    pub percent: u32,
    /// `notify` or `block`.
    #[schema(value_type = String)]
    pub action: agentry_engine::budget::ThresholdAction,
}

impl From<BudgetIn> for agentry_engine::service::budgets::BudgetInput {
    fn from(b: BudgetIn) -> Self {
        Self {
            name: b.name,
            scope: agentry_engine::service::budgets::BudgetScope {
                kind: b.scope.kind,
                id: b.scope.id,
            },
            period: b.period,
            timezone: b.timezone.unwrap_or_else(|| "UTC".into()),
            limit_usd: b.limit_usd,
            limit_tokens: b.limit_tokens,
            thresholds: b.thresholds.map(|ts| {
                ts.into_iter()
                    .map(|t| Threshold {
                        percent: t.percent,
                        action: t.action,
                    })
                    .collect()
            }),
            notify_url: b.notify_url,
            notify_email: b.notify_email,
        }
    }
}

/// Body of `POST /prices`: USD per million tokens.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceIn {
    /// A provider name of the org; absent = every provider.
    #[serde(default)]
    pub provider: Option<String>,
    pub model: String,
    #[schema(value_type = String)]
    pub input: Value,
    #[schema(value_type = String)]
    pub output: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub cache_read: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub cache_write: Option<Value>,
    /// A date or RFC 3339 time; default now.
    #[serde(default)]
    pub effective_from: Option<String>,
}

impl From<PriceIn> for agentry_engine::service::costs::PriceInput {
    fn from(p: PriceIn) -> Self {
        Self {
            provider: p.provider,
            model: p.model,
            input: p.input,
            output: p.output,
            cache_read: p.cache_read,
            cache_write: p.cache_write,
            effective_from: p.effective_from,
        }
    }
}
