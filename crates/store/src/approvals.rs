//! Approvals: durable rows a workflow run waits on. A decision is one conditional UPDATE
//! (`status = 'pending' AND` not expired), so of concurrent deciders exactly one wins; the
//! winner's transaction also wakes the run.

use crate::db::{Db, Statement};
use crate::error::{Result, StoreError};
use agentry_core::scope::WorkspaceScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

pub const PENDING: &str = "pending";
pub const APPROVED: &str = "approved";
pub const REJECTED: &str = "rejected";
pub const EXPIRED: &str = "expired";

pub const KIND_APPROVAL: &str = "approval";
pub const KIND_AMBIGUOUS: &str = "ambiguous";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApprovalRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub run_id: Uuid,
    pub thread: i64,
    pub node: String,
    pub kind: String,
    pub assignee_role: String,
    pub message: Option<String>,
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub state_patch: Option<Json<Value>>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

const COLUMNS: [&str; 16] = [
    "id",
    "org_id",
    "workspace_id",
    "run_id",
    "thread",
    "node",
    "kind",
    "assignee_role",
    "message",
    "status",
    "expires_at",
    "decided_by",
    "comment",
    "state_patch",
    "created_at",
    "decided_at",
];

pub struct NewApproval {
    pub id: Uuid,
    pub run_id: Uuid,
    pub thread: i64,
    pub node: String,
    pub kind: &'static str,
    pub assignee_role: String,
    pub message: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The insert, for the executor's commit that records the request.
pub fn insert_statement(scope: WorkspaceScope, new: NewApproval, now: DateTime<Utc>) -> Statement {
    Statement::Insert(
        Query::insert()
            .into_table("approvals")
            .columns(COLUMNS)
            .values_panic([
                new.id.into(),
                scope.org_id.0.into(),
                scope.workspace_id.0.into(),
                new.run_id.into(),
                new.thread.into(),
                new.node.into(),
                new.kind.into(),
                new.assignee_role.into(),
                new.message.into(),
                PENDING.into(),
                new.expires_at.into(),
                Option::<String>::None.into(),
                Option::<String>::None.into(),
                Option::<Value>::None.into(),
                now.into(),
                Option::<DateTime<Utc>>::None.into(),
            ])
            .to_owned(),
    )
}

fn select(scope: WorkspaceScope) -> sea_query::SelectStatement {
    Query::select()
        .columns(COLUMNS)
        .from("approvals")
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .to_owned()
}

pub async fn get(db: &Db, scope: WorkspaceScope, id: Uuid) -> Result<Option<ApprovalRow>> {
    db.fetch_optional(select(scope).and_where(Expr::col("id").eq(id)))
        .await
}

/// System function (executor): an approval by id.
pub async fn get_for_execution(db: &Db, id: Uuid) -> Result<Option<ApprovalRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("approvals")
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub run_id: Option<Uuid>,
    pub limit: u64,
}

/// Oldest first (the queue a person works through).
pub async fn list(db: &Db, scope: WorkspaceScope, filter: &Filter) -> Result<Vec<ApprovalRow>> {
    let mut q = select(scope);
    if let Some(status) = &filter.status {
        q.and_where(Expr::col("status").eq(status.as_str()));
    }
    if let Some(run) = filter.run_id {
        q.and_where(Expr::col("run_id").eq(run));
    }
    q.order_by("id", Order::Asc).limit(filter.limit);
    db.fetch_all(&q).await
}

pub struct Decision {
    pub approved: bool,
    pub decided_by: String,
    pub comment: Option<String>,
    pub state_patch: Option<Value>,
}

pub enum DecideOutcome {
    Decided(ApprovalRow),
    AlreadyDecided(ApprovalRow),
    Expired(ApprovalRow),
    NotFound,
}

/// Decides a pending approval and wakes its run, in one transaction. Only one of any number
/// of concurrent callers can win: the UPDATE matches only a pending, unexpired row.
pub async fn decide(
    db: &Db,
    scope: WorkspaceScope,
    id: Uuid,
    decision: Decision,
) -> Result<DecideOutcome> {
    let now = Utc::now();
    let update = Query::update()
        .table("approvals")
        .value(
            "status",
            if decision.approved {
                APPROVED
            } else {
                REJECTED
            },
        )
        .value("decided_by", decision.decided_by)
        .value("comment", decision.comment)
        .value("state_patch", decision.state_patch)
        .value("decided_at", now)
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("status").eq(PENDING))
        .and_where(
            Expr::col("expires_at")
                .is_null()
                .or(Expr::col("expires_at").gt(now)),
        )
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    let Some(current) = get(db, scope, id).await? else {
        return Ok(DecideOutcome::NotFound);
    };
    let mut statements = vec![Statement::Update(update)];
    statements.extend(crate::workflow_runs::wake_statements(current.run_id, now));
    match db.write_batch::<ApprovalRow>(&statements, true).await {
        Ok(mut rows) if !rows.is_empty() => Ok(DecideOutcome::Decided(rows.swap_remove(0))),
        Ok(_) | Err(StoreError::LeaseLost) => {
            let Some(row) = get(db, scope, id).await? else {
                return Ok(DecideOutcome::NotFound);
            };
            if row.status == PENDING || row.status == EXPIRED {
                Ok(DecideOutcome::Expired(row))
            } else {
                Ok(DecideOutcome::AlreadyDecided(row))
            }
        }
        Err(e) => Err(e),
    }
}

/// System function (executor): marks a pending approval expired (its deadline passed). Returns
/// false when a person decided first.
pub async fn expire(db: &Db, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("approvals")
                .value("status", EXPIRED)
                .value("decided_at", now)
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("status").eq(PENDING))
                .and_where(Expr::col("expires_at").lte(now)),
        )
        .await?;
    Ok(n > 0)
}

/// Closes a run's pending approvals (the run was cancelled or ended another way).
pub fn close_for_run_statement(run_id: Uuid, now: DateTime<Utc>) -> Statement {
    Statement::Update(
        Query::update()
            .table("approvals")
            .value("status", EXPIRED)
            .value("decided_at", now)
            .value("comment", "the run ended before a decision")
            .and_where(Expr::col("run_id").eq(run_id))
            .and_where(Expr::col("status").eq(PENDING))
            .to_owned(),
    )
}
