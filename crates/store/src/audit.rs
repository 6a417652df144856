//! The audit log: append-only. There is no update function and the only delete is the
//! retention sweep of entries older than the configured age.

use crate::db::{Db, Statement};
use crate::error::Result;
use agentry_core::ids::AuditId;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub actor_label: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

const COLUMNS: [&str; 15] = [
    "id",
    "org_id",
    "workspace_id",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "ip",
    "user_agent",
    "request_id",
    "at",
];

/// The insert of one entry (batched with the change it records where the caller can).
pub fn insert_statement(row: &AuditRow) -> Statement {
    Statement::Insert(
        Query::insert()
            .into_table("audit_log")
            .columns(COLUMNS)
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.workspace_id.into(),
                row.actor_type.clone().into(),
                row.actor_id.into(),
                row.actor_label.clone().into(),
                row.action.clone().into(),
                row.target_type.clone().into(),
                row.target_id.clone().into(),
                row.before.clone().into(),
                row.after.clone().into(),
                row.ip.clone().into(),
                row.user_agent.clone().into(),
                row.request_id.clone().into(),
                row.at.into(),
            ])
            .to_owned(),
    )
}

pub async fn append(db: &Db, row: &AuditRow) -> Result<()> {
    db.write_batch::<crate::NoRow>(&[insert_statement(row)], false)
        .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub workspace_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Entries older than this id (the cursor: newest first).
    pub before_id: Option<Uuid>,
    pub limit: u64,
}

/// Entries of the org, newest first.
pub async fn list(db: &Db, scope: OrgScope, f: &AuditFilter) -> Result<Vec<AuditRow>> {
    let mut q = Query::select();
    q.columns(COLUMNS)
        .from("audit_log")
        .and_where(Expr::col("org_id").eq(scope.org_id.0));
    if let Some(a) = &f.action {
        // "agent." matches every agent action; an exact name matches itself.
        if let Some(prefix) = a.strip_suffix('*') {
            q.and_where(
                Expr::col("action").like(
                    sea_query::LikeExpr::new(format!("{}%", escape_like(prefix))).escape('\\'),
                ),
            );
        } else {
            q.and_where(Expr::col("action").eq(a.as_str()));
        }
    }
    if let Some(v) = f.actor_id {
        q.and_where(Expr::col("actor_id").eq(v));
    }
    if let Some(v) = &f.target_type {
        q.and_where(Expr::col("target_type").eq(v.as_str()));
    }
    if let Some(v) = &f.target_id {
        q.and_where(Expr::col("target_id").eq(v.as_str()));
    }
    if let Some(v) = f.workspace_id {
        q.and_where(Expr::col("workspace_id").eq(v));
    }
    if let Some(v) = f.from {
        q.and_where(Expr::col("at").gte(v));
    }
    if let Some(v) = f.to {
        q.and_where(Expr::col("at").lt(v));
    }
    if let Some(v) = f.before_id {
        q.and_where(Expr::col("id").lt(v));
    }
    q.order_by("id", Order::Desc).limit(Ord::max(f.limit, 1));
    db.fetch_all(&q).await
}

/// Escapes LIKE's wildcards so an action prefix such as `api_key.` matches literally.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// System function (retention): deletes entries older than `cutoff`. Returns how many.
pub async fn sweep_older_than(db: &Db, cutoff: DateTime<Utc>) -> Result<u64> {
    db.execute(
        Query::delete()
            .from_table("audit_log")
            .and_where(Expr::col("at").lt(cutoff)),
    )
    .await
}

/// Pseudonymises a user in every entry (GDPR erasure): the actor id stays, their label and the
/// addresses they came from do not.
pub async fn pseudonymise_actor(db: &Db, user: Uuid, pseudonym: &str) -> Result<u64> {
    db.execute(
        Query::update()
            .table("audit_log")
            .value("actor_label", pseudonym)
            .value("ip", Option::<String>::None)
            .value("user_agent", Option::<String>::None)
            .and_where(Expr::col("actor_id").eq(user)),
    )
    .await
}

pub fn new_id() -> Uuid {
    AuditId::new().0
}

/// System function (GDPR erasure): replaces the snapshots of one entry, used to scrub a
/// person's email from the before/after of entries about them.
pub async fn scrub(
    db: &Db,
    id: Uuid,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<()> {
    db.execute(
        Query::update()
            .table("audit_log")
            .value("before", before)
            .value("after", after)
            .and_where(Expr::col("id").eq(id)),
    )
    .await?;
    Ok(())
}
