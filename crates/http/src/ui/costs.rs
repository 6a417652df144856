//! The costs page (read-only): the org's spend over the last 30 days grouped as the person
//! chooses, its budgets with their current period, and the health of its models' circuit
//! breakers. Admins and owners only (`costs:read`), like the API's `/costs` and `/budgets`.

use super::page::{self, Nav};
use super::session::Session;
use super::views::time;
use crate::AppState;
use crate::dto_money::CostReportOut;
use crate::routes::costs::{CostQuery, build_report};
use agentry_core::authz::Action;
use agentry_core::scope::OrgScope;
use agentry_engine::service::budgets::{self, BudgetInfo};
use agentry_engine::service::providers::{self, ModelHealth};
use agentry_store::costs::{GroupBy, labels};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The groupings the page links to, in the order shown, with their headings.
const GROUPINGS: [(&str, &str); 7] = [
    ("agent", "Agent"),
    ("model", "Model"),
    ("day", "Day"),
    ("api_key", "API key"),
    ("user", "User"),
    ("end_user", "End user"),
    ("workspace", "Workspace"),
];

/// The page's one parameter. Empty (a form's "any") means the default grouping.
#[derive(Debug, Default, Deserialize)]
pub struct CostsQuery {
    #[serde(default)]
    group_by: String,
}

/// One entry of the grouping switch.
#[derive(Debug, Serialize)]
struct Grouping {
    value: &'static str,
    title: &'static str,
    current: bool,
}

/// A budget and its current period, as text ready for the page.
#[derive(Debug, Serialize)]
struct BudgetView {
    name: String,
    scope: String,
    period: String,
    timezone: String,
    period_start: String,
    unit: &'static str,
    spent: String,
    limit: String,
    reserved: String,
    /// Spent as a share of the limit, one decimal (`"42.5"`).
    percent: String,
    /// The same share for the bar, capped at 100 so an overrun fills it rather than breaks it.
    bar: u32,
    over: bool,
}

impl BudgetView {
    fn new(b: &BudgetInfo, scope: String) -> Self {
        let text = |v: i64| match b.amount(v) {
            // USD amounts come as exact decimal strings; show them without JSON quotes.
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        // Tenths of a percent in integers: the amounts are exact and so is their ratio's display.
        let tenths = if b.row.limit_amount > 0 {
            i128::from(b.spent.max(0)) * 1000 / i128::from(b.row.limit_amount)
        } else {
            0
        };
        Self {
            name: b.row.name.clone(),
            scope,
            period: b.row.period.clone(),
            timezone: b.row.timezone.clone(),
            period_start: b.period_start.clone(),
            unit: if b.row.unit == "tokens" {
                "tokens"
            } else {
                "USD"
            },
            spent: text(b.spent),
            limit: text(b.row.limit_amount),
            reserved: text(b.reserved),
            percent: format!("{}.{}", tenths / 10, tenths % 10),
            bar: u32::try_from((tenths / 10).min(100)).unwrap_or(100),
            over: tenths >= 1000,
        }
    }
}

/// One circuit breaker as the page shows it.
#[derive(Debug, Serialize)]
struct HealthView {
    provider: String,
    model: String,
    state: &'static str,
    calls: u32,
    failures: u32,
    consecutive_overloads: u32,
    retry_in_seconds: Option<u64>,
}

impl From<ModelHealth> for HealthView {
    fn from(h: ModelHealth) -> Self {
        Self {
            provider: h.provider,
            model: h.model,
            state: h.state,
            calls: h.calls,
            failures: h.failures,
            consecutive_overloads: h.consecutive_overloads,
            retry_in_seconds: h.retry_in_seconds,
        }
    }
}

/// Readable scopes for the budgets: the agent's slug, the key's or workspace's name instead of
/// a bare id where one is known (an id whose target is gone stays as the id).
async fn budget_scopes(
    state: &AppState,
    scope: OrgScope,
    list: &[BudgetInfo],
) -> Result<Vec<String>, Response> {
    let mut known: Vec<(&str, Uuid, String)> = Vec::new();
    for (kind, group) in [
        ("agent", GroupBy::Agent),
        ("api_key", GroupBy::ApiKey),
        ("workspace", GroupBy::Workspace),
    ] {
        let ids: Vec<Uuid> = list
            .iter()
            .filter(|b| b.row.scope_kind == kind)
            .filter_map(|b| Uuid::parse_str(&b.row.scope_ref).ok())
            .collect();
        let found = labels(&state.platform.db, scope, group, &ids)
            .await
            .map_err(|e| page::service_error(e.into()))?;
        known.extend(found.into_iter().map(|l| (kind, l.id, l.label)));
    }
    Ok(list
        .iter()
        .map(|b| {
            let kind = b.row.scope_kind.as_str();
            if kind == "org" {
                return "organization".to_string();
            }
            let label = Uuid::parse_str(&b.row.scope_ref).ok().and_then(|id| {
                known
                    .iter()
                    .find(|(k, i, _)| *k == kind && *i == id)
                    .map(|(_, _, l)| l.clone())
            });
            let what = kind.replace('_', " ");
            format!(
                "{what}: {}",
                label.unwrap_or_else(|| b.row.scope_ref.clone())
            )
        })
        .collect())
}

/// `GET /ui/costs?group_by=…`
pub async fn page(
    State(state): State<AppState>,
    who: Session,
    query: Result<Query<CostsQuery>, QueryRejection>,
) -> Response {
    let scope = match who.org(Action::CostsRead) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(Query(q)) = query else {
        return bad_grouping();
    };
    let group_by = match q.group_by.trim() {
        "" => "agent",
        g => match GROUPINGS.iter().find(|(value, _)| *value == g) {
            Some((value, _)) => *value,
            None => return bad_grouping(),
        },
    };
    let cost_query = CostQuery {
        group_by: Some(group_by.to_string()),
        from: None,
        to: None,
    };
    let report: CostReportOut = match build_report(&state, scope, &cost_query).await {
        Ok(r) => r,
        Err(e) => return page::api_error(e),
    };
    let budget_list = match budgets::list(&state.platform, scope).await {
        Ok(list) => list,
        Err(e) => return page::service_error(e),
    };
    let scopes = match budget_scopes(&state, scope, &budget_list).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let budget_views: Vec<BudgetView> = budget_list
        .iter()
        .zip(scopes)
        .map(|(b, s)| BudgetView::new(b, s))
        .collect();
    let health: Vec<HealthView> = providers::health(&state.platform, scope)
        .into_iter()
        .map(HealthView::from)
        .collect();
    let groupings: Vec<Grouping> = GROUPINGS
        .iter()
        .map(|&(value, title)| Grouping {
            value,
            title,
            current: value == group_by,
        })
        .collect();
    let heading = GROUPINGS
        .iter()
        .find(|(value, _)| *value == group_by)
        .map_or("Key", |&(_, title)| title);
    // The API's total has no cache hits; the page shows them, so it adds them up itself.
    let cache_hits: i64 = report.data.iter().map(|l| l.cache_hits).sum();
    who.render(
        StatusCode::OK,
        "costs.html",
        Nav::Costs,
        context! {
            group_by => group_by,
            heading => heading,
            groupings => Serde(groupings),
            from => time(report.from),
            to => time(report.to),
            lines => Serde(&report.data),
            total => Serde(&report.total),
            total_cache_hits => cache_hits,
            budgets => Serde(budget_views),
            health => Serde(health),
        },
    )
}

fn bad_grouping() -> Response {
    page::error(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "Costs can be grouped by agent, model, day, API key, user, end user or workspace.",
    )
}
