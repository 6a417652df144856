//! The cost ledger: one row per model call attempt the provider bills (written in the same
//! transaction as the journal step it belongs to, so it is exactly-once), and the grouped
//! reports read from it.

use crate::db::{Db, Statement};
use crate::error::Result;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Alias, Expr, ExprTrait, Order, Query};
use uuid::Uuid;

/// One billed model call.
#[derive(Debug, Clone)]
pub struct CostEvent {
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub run_id: Uuid,
    pub step: i64,
    /// Several attempts of one step are billed separately (fallbacks, repairs).
    pub attempt: i64,
    pub agent_id: Uuid,
    pub agent_version: i64,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub end_user: Option<String>,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub output_tokens: i64,
    /// `None` when the model has no known price (recorded, never guessed).
    pub cost_pico: Option<i64>,
    pub cache_hit: bool,
    /// `ok` or `error` (a failed call the provider still billed).
    pub outcome: &'static str,
    pub at: DateTime<Utc>,
}

pub fn insert_statement(e: &CostEvent) -> Statement {
    Statement::Insert(
        Query::insert()
            .into_table("cost_events")
            .columns([
                "id",
                "org_id",
                "workspace_id",
                "run_id",
                "step",
                "attempt",
                "agent_id",
                "agent_version",
                "api_key_id",
                "user_id",
                "end_user",
                "provider",
                "model",
                "input_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
                "output_tokens",
                "cost_pico",
                "cache_hit",
                "outcome",
                "day",
                "created_at",
            ])
            .values_panic([
                Uuid::now_v7().into(),
                e.org_id.into(),
                e.workspace_id.into(),
                e.run_id.into(),
                e.step.into(),
                e.attempt.into(),
                e.agent_id.into(),
                e.agent_version.into(),
                e.api_key_id.into(),
                e.user_id.into(),
                e.end_user.clone().into(),
                e.provider.clone().into(),
                e.model.clone().into(),
                e.input_tokens.into(),
                e.cache_read_tokens.into(),
                e.cache_write_tokens.into(),
                e.output_tokens.into(),
                e.cost_pico.into(),
                e.cache_hit.into(),
                e.outcome.into(),
                e.at.format("%Y-%m-%d").to_string().into(),
                e.at.into(),
            ])
            .to_owned(),
    )
}

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Agent,
    User,
    ApiKey,
    EndUser,
    Model,
    Day,
    Workspace,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "agent" => GroupBy::Agent,
            "user" => GroupBy::User,
            "api_key" => GroupBy::ApiKey,
            "end_user" => GroupBy::EndUser,
            "model" => GroupBy::Model,
            "day" => GroupBy::Day,
            "workspace" => GroupBy::Workspace,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Agent => "agent",
            GroupBy::User => "user",
            GroupBy::ApiKey => "api_key",
            GroupBy::EndUser => "end_user",
            GroupBy::Model => "model",
            GroupBy::Day => "day",
            GroupBy::Workspace => "workspace",
        }
    }
}

/// One group of a report. Exactly one of `key_id` / `key_text` is set, by the grouping.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CostGroup {
    pub key_id: Option<Uuid>,
    pub key_text: Option<String>,
    /// For `model` groups: the provider.
    pub provider: Option<String>,
    pub calls: i64,
    pub unpriced_calls: i64,
    pub cache_hits: i64,
    pub input_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_pico: Option<i64>,
}

fn sum(column: &str) -> Expr {
    Expr::cust(format!("CAST(SUM({column}) AS BIGINT)"))
}

/// Sums of the ledger between `from` (inclusive) and `to` (exclusive), grouped.
pub async fn report(
    db: &Db,
    scope: OrgScope,
    group_by: GroupBy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<CostGroup>> {
    let mut q = Query::select();
    q.from("cost_events")
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("created_at").gte(from))
        .and_where(Expr::col("created_at").lt(to));
    let null_text = || Expr::cust("CAST(NULL AS TEXT)");
    let (id_col, text_col): (Option<&str>, Option<&str>) = match group_by {
        GroupBy::Agent => (Some("agent_id"), None),
        GroupBy::User => (Some("user_id"), None),
        GroupBy::ApiKey => (Some("api_key_id"), None),
        GroupBy::Workspace => (Some("workspace_id"), None),
        GroupBy::EndUser => (None, Some("end_user")),
        GroupBy::Model => (None, Some("model")),
        GroupBy::Day => (None, Some("day")),
    };
    match id_col {
        Some(c) => {
            q.expr_as(Expr::col(c), Alias::new("key_id"))
                .group_by_col(c);
        }
        None => {
            q.expr_as(Expr::cust("NULL"), Alias::new("key_id"));
        }
    }
    match text_col {
        Some(c) => {
            q.expr_as(Expr::col(c), Alias::new("key_text"))
                .group_by_col(c);
        }
        None => {
            q.expr_as(null_text(), Alias::new("key_text"));
        }
    }
    if group_by == GroupBy::Model {
        q.expr_as(Expr::col("provider"), Alias::new("provider"))
            .group_by_col("provider");
    } else {
        q.expr_as(null_text(), Alias::new("provider"));
    }
    q.expr_as(Expr::cust("COUNT(*)"), Alias::new("calls"))
        .expr_as(
            Expr::cust("COUNT(*) - COUNT(cost_pico)"),
            Alias::new("unpriced_calls"),
        )
        .expr_as(
            Expr::cust("CAST(SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END) AS BIGINT)"),
            Alias::new("cache_hits"),
        )
        .expr_as(sum("input_tokens"), Alias::new("input_tokens"))
        .expr_as(sum("cache_read_tokens"), Alias::new("cache_read_tokens"))
        .expr_as(sum("cache_write_tokens"), Alias::new("cache_write_tokens"))
        .expr_as(sum("output_tokens"), Alias::new("output_tokens"))
        .expr_as(sum("cost_pico"), Alias::new("cost_pico"));
    if group_by == GroupBy::Day {
        q.order_by("day", Order::Asc);
    } else {
        q.order_by_expr(Expr::cust("cost_pico"), Order::Desc);
    }
    db.fetch_all(&q).await
}

/// The ledger rows of one run (its trace and tests).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunCost {
    pub step: i64,
    pub attempt: i64,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub output_tokens: i64,
    pub cost_pico: Option<i64>,
    pub cache_hit: bool,
    pub outcome: String,
    pub created_at: DateTime<Utc>,
}

pub async fn for_run(db: &Db, org: OrgScope, run_id: Uuid) -> Result<Vec<RunCost>> {
    db.fetch_all(
        Query::select()
            .columns([
                "step",
                "attempt",
                "provider",
                "model",
                "input_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
                "output_tokens",
                "cost_pico",
                "cache_hit",
                "outcome",
                "created_at",
            ])
            .from("cost_events")
            .and_where(Expr::col("org_id").eq(org.org_id.0))
            .and_where(Expr::col("run_id").eq(run_id))
            .order_by("step", Order::Asc)
            .order_by("attempt", Order::Asc),
    )
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Label {
    pub id: Uuid,
    pub label: String,
}

/// Human names for the ids of a report: agent slugs, API key names, member emails, workspace
/// names. Ids come from the org's own ledger; the org filter keeps it that way.
pub async fn labels(
    db: &Db,
    scope: OrgScope,
    group_by: GroupBy,
    ids: &[Uuid],
) -> Result<Vec<Label>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (table, column, org_filtered) = match group_by {
        GroupBy::Agent => ("agents", "slug", true),
        GroupBy::ApiKey => ("api_keys", "name", true),
        GroupBy::Workspace => ("workspaces", "name", true),
        GroupBy::User => ("users", "email", false),
        _ => return Ok(Vec::new()),
    };
    let mut q = Query::select();
    q.column("id")
        .expr_as(Expr::col(column), Alias::new("label"))
        .from(table)
        .and_where(Expr::col("id").is_in(ids.iter().copied()));
    if org_filtered {
        q.and_where(Expr::col("org_id").eq(scope.org_id.0));
    }
    db.fetch_all(&q).await
}

#[derive(sqlx::FromRow)]
struct MaxAttempt {
    attempt: Option<i64>,
}

/// System function (executor): the next attempt number of a step. A step re-run after a crash
/// continues the numbering of the attempts its earlier execution already recorded.
pub async fn next_attempt(db: &Db, run_id: Uuid, step: i64) -> Result<i64> {
    let row: Option<MaxAttempt> = db
        .fetch_optional(
            Query::select()
                .expr_as(Expr::col("attempt").max(), Alias::new("attempt"))
                .from("cost_events")
                .and_where(Expr::col("run_id").eq(run_id))
                .and_where(Expr::col("step").eq(step)),
        )
        .await?;
    Ok(row.and_then(|r| r.attempt).map_or(0, |a| a + 1))
}
