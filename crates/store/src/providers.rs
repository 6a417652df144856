//! Model providers registered by an organization. The API key is stored encrypted (the caller
//! encrypts; this crate never sees plaintext keys).

use crate::db::Db;
use crate::error::{Result, StoreError};
use agentry_core::ids::ProviderId;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProviderRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub api_key_encrypted: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: [&str; 8] = [
    "id",
    "org_id",
    "name",
    "kind",
    "base_url",
    "api_key_encrypted",
    "created_at",
    "updated_at",
];

pub struct NewProvider {
    pub id: ProviderId,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub api_key_encrypted: Option<String>,
}

pub async fn create(db: &Db, scope: OrgScope, p: NewProvider) -> Result<ProviderRow> {
    let now = Utc::now();
    let row = ProviderRow {
        id: p.id.0,
        org_id: scope.org_id.0,
        name: p.name,
        kind: p.kind,
        base_url: p.base_url,
        api_key_encrypted: p.api_key_encrypted,
        created_at: now,
        updated_at: now,
    };
    let mut tx = db.begin().await?;
    tx.execute(
        Query::insert()
            .into_table("providers")
            .columns(COLUMNS)
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.name.clone().into(),
                row.kind.clone().into(),
                row.base_url.clone().into(),
                row.api_key_encrypted.clone().into(),
                now.into(),
                now.into(),
            ]),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces a provider's kind, URL and key (used by `agentry apply`).
pub async fn update(db: &Db, scope: OrgScope, row: &ProviderRow) -> Result<()> {
    let n = db
        .execute(
            Query::update()
                .table("providers")
                .value("kind", row.kind.clone())
                .value("base_url", row.base_url.clone())
                .value("api_key_encrypted", row.api_key_encrypted.clone())
                .value("updated_at", Utc::now())
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(row.id)),
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Corrupt(
            "provider vanished during update".into(),
        ));
    }
    Ok(())
}

pub async fn list(db: &Db, scope: OrgScope) -> Result<Vec<ProviderRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("providers")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .order_by("name", Order::Asc),
    )
    .await
}

pub async fn get(db: &Db, scope: OrgScope, name: &str) -> Result<Option<ProviderRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("providers")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("name").eq(name)),
    )
    .await
}

pub async fn delete(db: &Db, scope: OrgScope, name: &str) -> Result<bool> {
    let n = db
        .execute(
            Query::delete()
                .from_table("providers")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("name").eq(name)),
        )
        .await?;
    Ok(n > 0)
}
