//! Organizations and workspaces.

use crate::db::Db;
use crate::error::Result;
use agentry_core::ids::{OrgId, WorkspaceId};
use agentry_core::scope::WorkspaceScope;
use chrono::Utc;
use sea_query::{OnConflict, Query};
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
