//! API keys. Only an HMAC of the key is stored; the key itself is shown once at creation.

use crate::db::Db;
use crate::error::Result;
use agentry_core::ids::{ApiKeyId, OrgId, WorkspaceId};
use agentry_core::scope::{OrgScope, WorkspaceScope};
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub name: String,
    pub prefix: String,
    pub role: String,
    /// "org": the key acts in every workspace of its org; "workspace": only in `workspace_id`.
    pub scope: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    /// The workspace the key works in when a request names none.
    pub fn default_scope(&self) -> WorkspaceScope {
        WorkspaceScope {
            org_id: OrgId(self.org_id),
            workspace_id: WorkspaceId(
                self.workspace_id
                    .unwrap_or(crate::orgs::DEFAULT_WORKSPACE.0),
            ),
        }
    }

    pub fn is_org_scoped(&self) -> bool {
        self.scope == "org"
    }
}

const COLUMNS: [&str; 12] = [
    "id",
    "org_id",
    "workspace_id",
    "name",
    "prefix",
    "role",
    "scope",
    "created_by",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
];

pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub key_hash: &'a str,
    /// The first characters of the key, shown in listings so people can tell keys apart.
    pub prefix: &'a str,
    pub role: &'a str,
    /// Org-scoped keys act in every workspace of the org.
    pub org_scoped: bool,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn create(db: &Db, scope: WorkspaceScope, key: NewApiKey<'_>) -> Result<ApiKeyRow> {
    let row = ApiKeyRow {
        id: ApiKeyId::new().0,
        org_id: scope.org_id.0,
        workspace_id: Some(scope.workspace_id.0),
        name: key.name.to_string(),
        prefix: key.prefix.to_string(),
        role: key.role.to_string(),
        scope: if key.org_scoped { "org" } else { "workspace" }.to_string(),
        created_by: key.created_by,
        created_at: Utc::now(),
        expires_at: key.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    db.execute(
        Query::insert()
            .into_table("api_keys")
            .columns([
                "id",
                "org_id",
                "workspace_id",
                "name",
                "key_hash",
                "prefix",
                "role",
                "scope",
                "created_by",
                "created_at",
                "expires_at",
            ])
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.workspace_id.into(),
                row.name.clone().into(),
                key.key_hash.into(),
                row.prefix.clone().into(),
                row.role.clone().into(),
                row.scope.clone().into(),
                row.created_by.into(),
                row.created_at.into(),
                row.expires_at.into(),
            ]),
    )
    .await?;
    Ok(row)
}

/// System function (authentication): finds a live key by the digest of its secret. Expiry is
/// judged by the caller.
pub async fn find_active_by_hash(db: &Db, key_hash: &str) -> Result<Option<ApiKeyRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("api_keys")
            .and_where(Expr::col("key_hash").eq(key_hash))
            .and_where(Expr::col("revoked_at").is_null()),
    )
    .await
}

/// System function (authentication): records when a key was last used.
pub async fn touch(db: &Db, id: Uuid, at: DateTime<Utc>) -> Result<()> {
    db.execute(
        Query::update()
            .table("api_keys")
            .value("last_used_at", at)
            .and_where(Expr::col("id").eq(id)),
    )
    .await?;
    Ok(())
}

pub async fn list(db: &Db, scope: OrgScope) -> Result<Vec<ApiKeyRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("api_keys")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("revoked_at").is_null())
            .order_by("id", Order::Asc),
    )
    .await
}

/// Revokes a key of the organization. Returns false when no such live key exists.
pub async fn revoke(db: &Db, scope: OrgScope, id: Uuid) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("api_keys")
                .value("revoked_at", Utc::now())
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("revoked_at").is_null()),
        )
        .await?;
    Ok(n > 0)
}
