//! The organization's guardrail policy (one JSON document per org).

use crate::db::Db;
use crate::error::Result;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Query};
use serde_json::Value;
use sqlx::types::Json;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub policy: Json<Value>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(db: &Db, scope: OrgScope) -> Result<Option<PolicyRow>> {
    db.fetch_optional(
        Query::select()
            .columns(["policy", "updated_at"])
            .from("guardrail_policies")
            .and_where(Expr::col("org_id").eq(scope.org_id.0)),
    )
    .await
}

pub async fn put(db: &Db, scope: OrgScope, policy: &Value) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("guardrail_policies")
            .columns(["org_id", "policy", "updated_at"])
            .values_panic([
                scope.org_id.0.into(),
                policy.clone().into(),
                Utc::now().into(),
            ])
            .on_conflict(
                OnConflict::column("org_id")
                    .update_columns(["policy", "updated_at"])
                    .to_owned(),
            ),
    )
    .await?;
    Ok(())
}
