//! OpenID Connect sign-in providers configured by an organization, and the short-lived state of
//! sign-ins in progress (state → nonce + PKCE verifier), kept in the database so any replica can
//! finish a sign-in another one started.

use crate::db::Db;
use crate::error::Result;
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SsoProviderRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub discovery_url: String,
    pub client_id: String,
    pub client_secret_encrypted: String,
    pub auto_join_role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: [&str; 10] = [
    "id",
    "org_id",
    "slug",
    "display_name",
    "discovery_url",
    "client_id",
    "client_secret_encrypted",
    "auto_join_role",
    "created_at",
    "updated_at",
];

pub async fn create(db: &Db, row: &SsoProviderRow) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("sso_providers")
            .columns(COLUMNS)
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.slug.clone().into(),
                row.display_name.clone().into(),
                row.discovery_url.clone().into(),
                row.client_id.clone().into(),
                row.client_secret_encrypted.clone().into(),
                row.auto_join_role.clone().into(),
                row.created_at.into(),
                row.updated_at.into(),
            ]),
    )
    .await?;
    Ok(())
}

pub async fn list(db: &Db, scope: OrgScope) -> Result<Vec<SsoProviderRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("sso_providers")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .order_by("slug", Order::Asc),
    )
    .await
}

pub async fn delete(db: &Db, scope: OrgScope, id: Uuid) -> Result<bool> {
    let n = db
        .execute(
            Query::delete()
                .from_table("sso_providers")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
    Ok(n == 1)
}

/// System function (the sign-in page, before anyone is signed in): every provider's slug and
/// display name.
pub async fn all_public(db: &Db) -> Result<Vec<SsoProviderRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("sso_providers")
            .order_by("display_name", Order::Asc),
    )
    .await
}

/// System function (sign-in start): a provider by its public slug.
pub async fn find_by_slug(db: &Db, slug: &str) -> Result<Option<SsoProviderRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("sso_providers")
            .and_where(Expr::col("slug").eq(slug)),
    )
    .await
}

/// System function (sign-in callback): a provider by id.
pub async fn find_by_id(db: &Db, id: Uuid) -> Result<Option<SsoProviderRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("sso_providers")
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SsoLoginRow {
    pub provider_id: Uuid,
    pub nonce: String,
    pub code_verifier: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn start_login(
    db: &Db,
    state_hash: &str,
    provider_id: Uuid,
    nonce: &str,
    code_verifier: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("sso_logins")
            .columns([
                "state_hash",
                "provider_id",
                "nonce",
                "code_verifier",
                "created_at",
                "expires_at",
            ])
            .values_panic([
                state_hash.into(),
                provider_id.into(),
                nonce.into(),
                code_verifier.into(),
                Utc::now().into(),
                expires_at.into(),
            ]),
    )
    .await?;
    Ok(())
}

/// Takes (deletes and returns) a sign-in in progress: a state works once.
pub async fn take_login(db: &Db, state_hash: &str) -> Result<Option<SsoLoginRow>> {
    let rows: Vec<SsoLoginRow> = db
        .write_batch(
            &[crate::Statement::Delete(
                Query::delete()
                    .from_table("sso_logins")
                    .and_where(Expr::col("state_hash").eq(state_hash))
                    .returning(Query::returning().columns([
                        "provider_id",
                        "nonce",
                        "code_verifier",
                        "expires_at",
                    ]))
                    .to_owned(),
            )],
            false,
        )
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .filter(|r| r.expires_at > Utc::now()))
}
