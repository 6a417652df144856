//! Workflow definitions and their immutable versions. Saving a definition writes a new
//! `workflow_versions` row; runs keep the version they started with, and versions are never
//! deleted, so a running workflow always finishes on its own definition.

use crate::db::{Db, NoRow, Statement};
use crate::error::{Result, StoreError};
use agentry_core::scope::WorkspaceScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkflowRow {
    pub id: Uuid,
    pub slug: String,
    pub latest_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub workflow_id: Uuid,
    pub version: i64,
    pub definition: Json<Value>,
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn select(scope: WorkspaceScope) -> sea_query::SelectStatement {
    Query::select()
        .columns(["id", "slug", "latest_version", "created_at", "updated_at"])
        .from("workflows")
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .to_owned()
}

pub async fn list(db: &Db, scope: WorkspaceScope) -> Result<Vec<WorkflowRow>> {
    db.fetch_all(select(scope).order_by("slug", Order::Asc))
        .await
}

pub async fn get(db: &Db, scope: WorkspaceScope, slug: &str) -> Result<Option<WorkflowRow>> {
    db.fetch_optional(select(scope).and_where(Expr::col("slug").eq(slug)))
        .await
}

/// The versions of one workflow, in one workspace (`None`: any, for the executor).
fn select_versions(scope: Option<WorkspaceScope>, workflow_id: Uuid) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns([
        "workflow_id",
        "version",
        "definition",
        "source",
        "created_at",
    ])
    .from("workflow_versions")
    .and_where(Expr::col("workflow_id").eq(workflow_id));
    if let Some(scope) = scope {
        q.and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0));
    }
    q
}

/// One version of a workflow.
pub async fn version(
    db: &Db,
    scope: WorkspaceScope,
    workflow_id: Uuid,
    version: i64,
) -> Result<Option<VersionRow>> {
    db.fetch_optional(
        select_versions(Some(scope), workflow_id).and_where(Expr::col("version").eq(version)),
    )
    .await
}

/// System function (executor): a version by workflow id, whatever the workspace.
pub async fn version_for_execution(
    db: &Db,
    workflow_id: Uuid,
    version: i64,
) -> Result<Option<VersionRow>> {
    db.fetch_optional(
        select_versions(None, workflow_id).and_where(Expr::col("version").eq(version)),
    )
    .await
}

/// Newest first.
pub async fn versions(
    db: &Db,
    scope: WorkspaceScope,
    workflow_id: Uuid,
) -> Result<Vec<VersionRow>> {
    db.fetch_all(select_versions(Some(scope), workflow_id).order_by("version", Order::Desc))
        .await
}

fn insert_version(
    scope: WorkspaceScope,
    workflow_id: Uuid,
    version: i64,
    definition: &Value,
    source: Option<&str>,
    now: DateTime<Utc>,
) -> Statement {
    Statement::Insert(
        Query::insert()
            .into_table("workflow_versions")
            .columns([
                "workflow_id",
                "version",
                "org_id",
                "workspace_id",
                "definition",
                "source",
                "created_at",
            ])
            .values_panic([
                workflow_id.into(),
                version.into(),
                scope.org_id.0.into(),
                scope.workspace_id.0.into(),
                definition.clone().into(),
                source.map(str::to_owned).into(),
                now.into(),
            ])
            .to_owned(),
    )
}

/// Saves a definition: a new workflow at version 1, or the next version of an existing one.
/// With `must_be_new`, an existing slug is [`StoreError::Conflict`].
pub async fn save(
    db: &Db,
    scope: WorkspaceScope,
    slug: &str,
    definition: &Value,
    source: Option<&str>,
    must_be_new: bool,
) -> Result<(WorkflowRow, bool)> {
    let now = Utc::now();
    // Two writers racing on one slug: the unique index or the version primary key refuses the
    // loser, which retries once against the winner's row.
    for _ in 0..2 {
        match get(db, scope, slug).await? {
            None => {
                let id = Uuid::now_v7();
                let insert = Query::insert()
                    .into_table("workflows")
                    .columns([
                        "id",
                        "org_id",
                        "workspace_id",
                        "slug",
                        "latest_version",
                        "created_at",
                        "updated_at",
                    ])
                    .values_panic([
                        id.into(),
                        scope.org_id.0.into(),
                        scope.workspace_id.0.into(),
                        slug.into(),
                        1i64.into(),
                        now.into(),
                        now.into(),
                    ])
                    .to_owned();
                let written = db
                    .write_batch::<NoRow>(
                        &[
                            Statement::Insert(insert),
                            insert_version(scope, id, 1, definition, source, now),
                        ],
                        false,
                    )
                    .await;
                match written {
                    Ok(_) => {
                        return Ok((
                            WorkflowRow {
                                id,
                                slug: slug.to_owned(),
                                latest_version: 1,
                                created_at: now,
                                updated_at: now,
                            },
                            true,
                        ));
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e),
                }
            }
            Some(_) if must_be_new => return Err(StoreError::Conflict),
            Some(row) => {
                let version = row.latest_version + 1;
                let bump = Query::update()
                    .table("workflows")
                    .value("latest_version", version)
                    .value("updated_at", now)
                    .and_where(Expr::col("id").eq(row.id))
                    .and_where(Expr::col("latest_version").eq(row.latest_version))
                    .returning(Query::returning().column("id"))
                    .to_owned();
                let written = db
                    .write_batch::<NoRow>(
                        &[
                            Statement::Update(bump),
                            insert_version(scope, row.id, version, definition, source, now),
                        ],
                        true,
                    )
                    .await;
                match written {
                    Ok(_) => {
                        return Ok((
                            WorkflowRow {
                                latest_version: version,
                                updated_at: now,
                                ..row
                            },
                            false,
                        ));
                    }
                    Err(StoreError::Conflict | StoreError::LeaseLost) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(StoreError::Conflict)
}

/// Deletes a workflow by slug (its versions stay for the runs that used them).
pub async fn delete(db: &Db, scope: WorkspaceScope, slug: &str) -> Result<bool> {
    let n = db
        .execute(
            Query::delete()
                .from_table("workflows")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("slug").eq(slug)),
        )
        .await?;
    Ok(n > 0)
}
