//! Per-organization price overrides (the built-in catalogue is data in the engine). Prices are
//! integers in micro-USD per million tokens.

use crate::db::Db;
use crate::error::Result;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PriceRow {
    pub id: Uuid,
    pub org_id: Uuid,
    /// '' = every provider of the org.
    pub provider: String,
    pub model: String,
    pub input_micro: i64,
    pub output_micro: i64,
    pub cache_read_micro: Option<i64>,
    pub cache_write_micro: Option<i64>,
    pub effective_from: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: [&str; 10] = [
    "id",
    "org_id",
    "provider",
    "model",
    "input_micro",
    "output_micro",
    "cache_read_micro",
    "cache_write_micro",
    "effective_from",
    "created_at",
];

pub async fn create(db: &Db, row: &PriceRow) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("model_prices")
            .columns(COLUMNS)
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.provider.clone().into(),
                row.model.clone().into(),
                row.input_micro.into(),
                row.output_micro.into(),
                row.cache_read_micro.into(),
                row.cache_write_micro.into(),
                row.effective_from.into(),
                row.created_at.into(),
            ]),
    )
    .await?;
    Ok(())
}

pub async fn list(db: &Db, scope: OrgScope) -> Result<Vec<PriceRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("model_prices")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .order_by("model", Order::Asc)
            .order_by("effective_from", Order::Desc),
    )
    .await
}

/// Every override of one model in the org (the caller picks the one in effect).
pub async fn for_model(db: &Db, scope: OrgScope, model: &str) -> Result<Vec<PriceRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("model_prices")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("model").eq(model))
            .order_by("effective_from", Order::Desc),
    )
    .await
}

pub async fn delete(db: &Db, scope: OrgScope, id: Uuid) -> Result<bool> {
    let n = db
        .execute(
            Query::delete()
                .from_table("model_prices")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
    Ok(n > 0)
}
