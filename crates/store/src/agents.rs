//! Agents and their immutable versions. Every create or update writes a new `agent_versions`
//! row; runs record the version they used, and versions are never deleted, so a run can always
//! show (and finish with) the definition it started with.

use crate::db::Db;
use crate::error::{Result, StoreError};
use agentry_core::agent::{Agent, AgentSpec};
use agentry_core::ids::AgentId;
use agentry_core::scope::WorkspaceScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
struct AgentRow {
    id: Uuid,
    version: i64,
    spec: Json<AgentSpec>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Self {
        Agent {
            id: AgentId(r.id),
            version: r.version,
            spec: r.spec.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn select_current(scope: WorkspaceScope) -> sea_query::SelectStatement {
    Query::select()
        .expr(Expr::col(("a", "id")))
        .expr(Expr::col(("a", "version")))
        .expr(Expr::col(("v", "spec")))
        .expr(Expr::col(("a", "created_at")))
        .expr(Expr::col(("a", "updated_at")))
        .from_as("agents", "a")
        .join_as(
            sea_query::JoinType::InnerJoin,
            "agent_versions",
            "v",
            Expr::col(("v", "agent_id"))
                .equals(("a", "id"))
                .and(Expr::col(("v", "version")).equals(("a", "version"))),
        )
        .and_where(Expr::col(("a", "org_id")).eq(scope.org_id.0))
        .and_where(Expr::col(("a", "workspace_id")).eq(scope.workspace_id.0))
        .to_owned()
}

pub async fn list(db: &Db, scope: WorkspaceScope) -> Result<Vec<Agent>> {
    let rows: Vec<AgentRow> = db
        .fetch_all(select_current(scope).order_by(("a", "slug"), Order::Asc))
        .await?;
    Ok(rows.into_iter().map(Agent::from).collect())
}

pub async fn get(db: &Db, scope: WorkspaceScope, slug: &str) -> Result<Option<Agent>> {
    let row: Option<AgentRow> = db
        .fetch_optional(select_current(scope).and_where(Expr::col(("a", "slug")).eq(slug)))
        .await?;
    Ok(row.map(Agent::from))
}

/// One specific version, even if the agent was updated or deleted since.
pub async fn get_version(
    db: &Db,
    scope: WorkspaceScope,
    agent_id: AgentId,
    version: i64,
) -> Result<Option<AgentSpec>> {
    #[derive(sqlx::FromRow)]
    struct SpecRow {
        spec: Json<AgentSpec>,
    }
    let row: Option<SpecRow> = db
        .fetch_optional(
            Query::select()
                .column("spec")
                .from("agent_versions")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("agent_id").eq(agent_id.0))
                .and_where(Expr::col("version").eq(version)),
        )
        .await?;
    Ok(row.map(|r| r.spec.0))
}

fn insert_version(
    scope: WorkspaceScope,
    agent_id: Uuid,
    version: i64,
    spec: &AgentSpec,
    now: DateTime<Utc>,
) -> Result<sea_query::InsertStatement> {
    let spec_json = serde_json::to_value(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Query::insert()
        .into_table("agent_versions")
        .columns([
            "agent_id",
            "version",
            "org_id",
            "workspace_id",
            "spec",
            "created_at",
        ])
        .values_panic([
            agent_id.into(),
            version.into(),
            scope.org_id.0.into(),
            scope.workspace_id.0.into(),
            spec_json.into(),
            now.into(),
        ])
        .to_owned())
}

/// Creates an agent at version 1. A taken slug → [`StoreError::Conflict`].
pub async fn create(db: &Db, scope: WorkspaceScope, spec: AgentSpec) -> Result<Agent> {
    let now = Utc::now();
    let id = AgentId::new();
    let mut tx = db.begin().await?;
    tx.execute(
        Query::insert()
            .into_table("agents")
            .columns([
                "id",
                "org_id",
                "workspace_id",
                "slug",
                "version",
                "created_at",
                "updated_at",
            ])
            .values_panic([
                id.0.into(),
                scope.org_id.0.into(),
                scope.workspace_id.0.into(),
                spec.slug.clone().into(),
                1i64.into(),
                now.into(),
                now.into(),
            ]),
    )
    .await?;
    tx.execute(&insert_version(scope, id.0, 1, &spec, now)?)
        .await?;
    tx.commit().await?;
    Ok(Agent {
        id,
        version: 1,
        spec,
        created_at: now,
        updated_at: now,
    })
}

/// Writes a new version of an existing agent. `None` when the agent does not exist.
pub async fn update(
    db: &Db,
    scope: WorkspaceScope,
    slug: &str,
    spec: AgentSpec,
) -> Result<Option<Agent>> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    #[derive(sqlx::FromRow)]
    struct Current {
        id: Uuid,
        version: i64,
        created_at: DateTime<Utc>,
    }
    let current: Option<Current> = tx
        .fetch_optional(
            Query::select()
                .columns(["id", "version", "created_at"])
                .from("agents")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("slug").eq(slug)),
        )
        .await?;
    let Some(current) = current else {
        return Ok(None);
    };
    let version = current.version + 1;
    tx.execute(&insert_version(scope, current.id, version, &spec, now)?)
        .await?;
    tx.execute(
        Query::update()
            .table("agents")
            .value("version", version)
            .value("updated_at", now)
            .and_where(Expr::col("id").eq(current.id)),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Agent {
        id: AgentId(current.id),
        version,
        spec,
        created_at: current.created_at,
        updated_at: now,
    }))
}

/// Deletes an agent. Its versions stay, so its runs remain readable and in-flight runs finish.
pub async fn delete(db: &Db, scope: WorkspaceScope, slug: &str) -> Result<bool> {
    let n = db
        .execute(
            Query::delete()
                .from_table("agents")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("slug").eq(slug)),
        )
        .await?;
    Ok(n > 0)
}
