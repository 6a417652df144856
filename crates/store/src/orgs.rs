//! Organizations and workspaces.

use crate::db::Db;
use crate::error::Result;
use agentry_core::ids::{OrgId, WorkspaceId};
use agentry_core::scope::{OrgScope, WorkspaceScope};
use chrono::Utc;
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use uuid::Uuid;

/// The organization and workspace created on first start. Fixed ids make the bootstrap
/// idempotent when several replicas start at once against one PostgreSQL database.
pub const DEFAULT_ORG: OrgId = OrgId(Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001));
pub const DEFAULT_WORKSPACE: WorkspaceId =
    WorkspaceId(Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0002));

pub fn default_scope() -> WorkspaceScope {
    WorkspaceScope {
        org_id: DEFAULT_ORG,
        workspace_id: DEFAULT_WORKSPACE,
    }
}

/// System function: creates the default org and workspace if they do not exist. Returns true
/// when they were created now (first start).
pub async fn ensure_default(db: &Db) -> Result<bool> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let created = tx
        .execute(
            Query::insert()
                .into_table("orgs")
                .columns(["id", "name", "created_at"])
                .values_panic([DEFAULT_ORG.0.into(), "default".into(), now.into()])
                .on_conflict(OnConflict::column("id").do_nothing().to_owned()),
        )
        .await?;
    tx.execute(
        Query::insert()
            .into_table("workspaces")
            .columns(["id", "org_id", "name", "created_at"])
            .values_panic([
                DEFAULT_WORKSPACE.0.into(),
                DEFAULT_ORG.0.into(),
                "default".into(),
                now.into(),
            ])
            .on_conflict(OnConflict::column("id").do_nothing().to_owned()),
    )
    .await?;
    tx.commit().await?;
    Ok(created > 0)
}

/// System function: creates another organization with one workspace (used by tests and, later,
/// by `agentry admin create-org`).
pub async fn create_org(db: &Db, name: &str) -> Result<WorkspaceScope> {
    let now = Utc::now();
    let scope = WorkspaceScope {
        org_id: OrgId::new(),
        workspace_id: WorkspaceId::new(),
    };
    let mut tx = db.begin().await?;
    tx.execute(
        Query::insert()
            .into_table("orgs")
            .columns(["id", "name", "created_at"])
            .values_panic([scope.org_id.0.into(), name.into(), now.into()]),
    )
    .await?;
    tx.execute(
        Query::insert()
            .into_table("workspaces")
            .columns(["id", "org_id", "name", "created_at"])
            .values_panic([
                scope.workspace_id.0.into(),
                scope.org_id.0.into(),
                "default".into(),
                now.into(),
            ]),
    )
    .await?;
    tx.commit().await?;
    Ok(scope)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<Utc>,
}

/// An org by id (the caller has established membership).
pub async fn get(db: &Db, scope: OrgScope) -> Result<Option<OrgRow>> {
    db.fetch_optional(
        Query::select()
            .columns(["id", "name", "created_at"])
            .from("orgs")
            .and_where(Expr::col("id").eq(scope.org_id.0))
            .and_where(Expr::col("deleted_at").is_null()),
    )
    .await
}

/// System function (a user's org switcher): orgs by id, skipping deleted ones.
pub async fn get_many(db: &Db, ids: &[Uuid]) -> Result<Vec<OrgRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    db.fetch_all(
        Query::select()
            .columns(["id", "name", "created_at"])
            .from("orgs")
            .and_where(Expr::col("id").is_in(ids.iter().copied()))
            .and_where(Expr::col("deleted_at").is_null())
            .order_by("id", Order::Asc),
    )
    .await
}

pub async fn rename(db: &Db, scope: OrgScope, name: &str) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("orgs")
                .value("name", name)
                .and_where(Expr::col("id").eq(scope.org_id.0))
                .and_where(Expr::col("deleted_at").is_null()),
        )
        .await?;
    Ok(n == 1)
}

/// Workspaces of the org, oldest (the default) first.
pub async fn workspaces(db: &Db, scope: OrgScope) -> Result<Vec<WorkspaceRow>> {
    db.fetch_all(
        Query::select()
            .columns(["id", "org_id", "name", "created_at"])
            .from("workspaces")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("deleted_at").is_null())
            .order_by("id", Order::Asc),
    )
    .await
}

/// A workspace of the org, or `None` when it does not exist there.
pub async fn workspace(db: &Db, scope: OrgScope, id: WorkspaceId) -> Result<Option<WorkspaceRow>> {
    db.fetch_optional(
        Query::select()
            .columns(["id", "org_id", "name", "created_at"])
            .from("workspaces")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("id").eq(id.0))
            .and_where(Expr::col("deleted_at").is_null()),
    )
    .await
}

pub async fn create_workspace(db: &Db, scope: OrgScope, name: &str) -> Result<WorkspaceRow> {
    let row = WorkspaceRow {
        id: WorkspaceId::new().0,
        org_id: scope.org_id.0,
        name: name.to_string(),
        created_at: Utc::now(),
    };
    db.execute(
        Query::insert()
            .into_table("workspaces")
            .columns(["id", "org_id", "name", "created_at"])
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.name.clone().into(),
                row.created_at.into(),
            ]),
    )
    .await?;
    Ok(row)
}

pub async fn delete_workspace(db: &Db, scope: OrgScope, id: WorkspaceId) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("workspaces")
                .value("deleted_at", Utc::now())
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(id.0))
                .and_where(Expr::col("deleted_at").is_null()),
        )
        .await?;
    Ok(n == 1)
}

/// Marks the org deleted and erases what it owns (the org task of an owner's deletion
/// request). Rows are removed table by table in one transaction.
pub async fn delete_org_data(db: &Db, scope: OrgScope) -> Result<()> {
    let org = scope.org_id.0;
    let mut tx = db.begin().await?;
    // Reservations carry no org id: they go by their budgets, before the budgets do.
    tx.execute(
        Query::delete().from_table("budget_reservations").and_where(
            Expr::col("budget_id").in_subquery(
                Query::select()
                    .column("id")
                    .from("budgets")
                    .and_where(Expr::col("org_id").eq(org))
                    .to_owned(),
            ),
        ),
    )
    .await?;
    for table in [
        "cost_events",
        "budget_alerts",
        "budget_periods",
        "budgets",
        "model_prices",
        "org_settings",
        "run_events",
        "run_steps",
        "runs",
        "agent_versions",
        "agents",
        "providers",
        "api_keys",
        "memberships",
        "invitations",
        "sso_providers",
        "org_keys",
        "workspaces",
    ] {
        tx.execute(
            Query::delete()
                .from_table(table)
                .and_where(Expr::col("org_id").eq(org)),
        )
        .await?;
    }
    tx.execute(
        Query::update()
            .table("orgs")
            .value("deleted_at", Utc::now())
            .value("name", "deleted organization")
            .and_where(Expr::col("id").eq(org)),
    )
    .await?;
    tx.commit().await
}
