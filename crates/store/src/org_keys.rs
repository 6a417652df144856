//! Per-organization data keys of the secrets vault, stored wrapped by the master key. The
//! caller wraps and unwraps; this crate never sees a plaintext key.

use crate::db::Db;
use crate::error::Result;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgKeyRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub wrapped_key: String,
    pub master_key_id: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: [&str; 5] = ["id", "org_id", "wrapped_key", "master_key_id", "created_at"];

pub async fn get(db: &Db, scope: OrgScope) -> Result<Option<OrgKeyRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("org_keys")
            .and_where(Expr::col("org_id").eq(scope.org_id.0)),
    )
    .await
}

/// Stores the org's first data key unless another replica stored one first (then the caller
/// reads that one back).
pub async fn insert_if_absent(db: &Db, row: &OrgKeyRow) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("org_keys")
            .columns(COLUMNS)
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.wrapped_key.clone().into(),
                row.master_key_id.clone().into(),
                row.created_at.into(),
            ])
            .on_conflict(OnConflict::column("org_id").do_nothing().to_owned()),
    )
    .await?;
    Ok(())
}

/// System function (master-key rotation): every data key.
pub async fn all(db: &Db) -> Result<Vec<OrgKeyRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("org_keys")
            .order_by("id", Order::Asc),
    )
    .await
}

/// System function (master-key rotation): replaces one wrapping, only if it is still the one
/// read (a concurrent rotation wins cleanly).
pub async fn rewrap(
    db: &Db,
    id: Uuid,
    old_wrapped: &str,
    new_wrapped: &str,
    new_master_key_id: &str,
) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("org_keys")
                .value("wrapped_key", new_wrapped)
                .value("master_key_id", new_master_key_id)
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("wrapped_key").eq(old_wrapped)),
        )
        .await?;
    Ok(n == 1)
}
