//! Per-organization settings documents, one JSON value per key (`guardrails`, `routing`).

use crate::db::Db;
use crate::error::Result;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Query};
use serde_json::Value;
use sqlx::types::Json;

pub const GUARDRAILS: &str = "guardrails";
pub const ROUTING: &str = "routing";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingRow {
    pub value: Json<Value>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(db: &Db, scope: OrgScope, key: &str) -> Result<Option<SettingRow>> {
    db.fetch_optional(
        Query::select()
            .columns(["value", "updated_at"])
            .from("org_settings")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("key").eq(key)),
    )
    .await
}

pub async fn put(db: &Db, scope: OrgScope, key: &str, value: &Value) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("org_settings")
            .columns(["org_id", "key", "value", "updated_at"])
            .values_panic([
                scope.org_id.0.into(),
                key.into(),
                value.clone().into(),
                Utc::now().into(),
            ])
            .on_conflict(
                OnConflict::columns(["org_id", "key"])
                    .update_columns(["value", "updated_at"])
                    .to_owned(),
            ),
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct InstanceValue {
    value: String,
}

/// System function: this installation's random id, created on first use (every replica of
/// one installation reads the same row).
pub async fn instance_id(db: &Db) -> Result<uuid::Uuid> {
    db.execute(
        Query::insert()
            .into_table("instance_settings")
            .columns(["key", "value"])
            .values_panic([
                "instance_id".into(),
                uuid::Uuid::new_v4().to_string().into(),
            ])
            .on_conflict(OnConflict::column("key").do_nothing().to_owned()),
    )
    .await?;
    let row: Option<InstanceValue> = db
        .fetch_optional(
            Query::select()
                .column("value")
                .from("instance_settings")
                .and_where(Expr::col("key").eq("instance_id")),
        )
        .await?;
    row.and_then(|r| uuid::Uuid::parse_str(&r.value).ok())
        .ok_or_else(|| crate::StoreError::Corrupt("instance id".into()))
}
