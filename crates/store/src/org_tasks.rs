//! Long organization-wide work requested through the API (export, deletion): a row the caller
//! can poll, executed by a worker through the job queue.

use crate::db::{Db, Statement};
use crate::error::Result;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Query};
use uuid::Uuid;

pub const JOB_KIND: &str = "org_task";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgTaskRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: String,
    pub status: String,
    pub requested_by: Option<Uuid>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

const COLUMNS: [&str; 9] = [
    "id",
    "org_id",
    "kind",
    "status",
    "requested_by",
    "result",
    "error",
    "created_at",
    "ended_at",
];

/// Creates the task and its job in one transaction.
pub async fn create(
    db: &Db,
    scope: OrgScope,
    kind: &str,
    requested_by: Option<Uuid>,
) -> Result<OrgTaskRow> {
    let row = OrgTaskRow {
        id: Uuid::now_v7(),
        org_id: scope.org_id.0,
        kind: kind.to_string(),
        status: "queued".into(),
        requested_by,
        result: None,
        error: None,
        created_at: Utc::now(),
        ended_at: None,
    };
    let insert = Statement::Insert(
        Query::insert()
            .into_table("org_tasks")
            .columns([
                "id",
                "org_id",
                "kind",
                "status",
                "requested_by",
                "created_at",
            ])
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.kind.clone().into(),
                row.status.clone().into(),
                row.requested_by.into(),
                row.created_at.into(),
            ])
            .to_owned(),
    );
    let job = crate::jobs::enqueue_statement(scope.org_id.0, JOB_KIND, row.id, row.created_at);
    db.write_batch::<crate::NoRow>(&[insert, job], false)
        .await?;
    crate::jobs::notify_enqueued(db).await?;
    Ok(row)
}

pub async fn get(db: &Db, scope: OrgScope, id: Uuid) -> Result<Option<OrgTaskRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("org_tasks")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

/// System function (worker): the task a job points at.
pub async fn get_for_job(db: &Db, id: Uuid) -> Result<Option<OrgTaskRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("org_tasks")
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

/// System function (worker): records the outcome.
pub async fn finish(
    db: &Db,
    id: Uuid,
    result: Option<serde_json::Value>,
    error: Option<&str>,
) -> Result<()> {
    db.execute(
        Query::update()
            .table("org_tasks")
            .value(
                "status",
                if error.is_some() {
                    "failed"
                } else {
                    "succeeded"
                },
            )
            .value("result", result)
            .value("error", error.map(str::to_string))
            .value("ended_at", Utc::now())
            .and_where(Expr::col("id").eq(id)),
    )
    .await?;
    Ok(())
}
