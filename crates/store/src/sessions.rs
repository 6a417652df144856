//! Browser sessions. The cookie carries a random token; only its SHA-256 is stored, so a read of
//! the database does not yield live sessions.

use crate::db::Db;
use crate::error::Result;
use agentry_core::ids::{SessionId, UserId};
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub org_id: Option<Uuid>,
    pub mfa_pending: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: [&str; 10] = [
    "id",
    "user_id",
    "org_id",
    "mfa_pending",
    "ip",
    "user_agent",
    "created_at",
    "last_seen_at",
    "expires_at",
    "revoked_at",
];

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: UserId,
    pub org_id: Option<Uuid>,
    pub mfa_pending: bool,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

pub async fn create(db: &Db, s: NewSession<'_>) -> Result<SessionId> {
    let id = SessionId::new();
    let now = Utc::now();
    db.execute(
        Query::insert()
            .into_table("sessions")
            .columns([
                "id",
                "token_hash",
                "user_id",
                "org_id",
                "mfa_pending",
                "ip",
                "user_agent",
                "created_at",
                "last_seen_at",
                "expires_at",
            ])
            .values_panic([
                id.0.into(),
                s.token_hash.into(),
                s.user_id.0.into(),
                s.org_id.into(),
                s.mfa_pending.into(),
                s.ip.map(str::to_string).into(),
                s.user_agent
                    .map(|ua| ua.chars().take(300).collect::<String>())
                    .into(),
                now.into(),
                now.into(),
                s.expires_at.into(),
            ]),
    )
    .await?;
    Ok(id)
}

/// System function (authentication): a live session by the hash of its token. Expiry and idle
/// time are judged by the caller, which knows the configured timeouts.
pub async fn find_live_by_hash(db: &Db, token_hash: &str) -> Result<Option<SessionRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("sessions")
            .and_where(Expr::col("token_hash").eq(token_hash))
            .and_where(Expr::col("revoked_at").is_null()),
    )
    .await
}

pub async fn touch(db: &Db, id: SessionId, at: DateTime<Utc>) -> Result<()> {
    db.execute(
        Query::update()
            .table("sessions")
            .value("last_seen_at", at)
            .and_where(Expr::col("id").eq(id.0)),
    )
    .await?;
    Ok(())
}

pub async fn set_org(db: &Db, id: SessionId, org: Uuid) -> Result<()> {
    db.execute(
        Query::update()
            .table("sessions")
            .value("org_id", org)
            .and_where(Expr::col("id").eq(id.0)),
    )
    .await?;
    Ok(())
}

/// The user's live sessions, newest first.
pub async fn list_for_user(db: &Db, user: UserId) -> Result<Vec<SessionRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("sessions")
            .and_where(Expr::col("user_id").eq(user.0))
            .and_where(Expr::col("revoked_at").is_null())
            .and_where(Expr::col("expires_at").gt(Utc::now()))
            .order_by("id", Order::Desc),
    )
    .await
}

/// Revokes one session of the user. Returns false when it is not theirs or already ended.
pub async fn revoke(db: &Db, user: UserId, id: SessionId) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("sessions")
                .value("revoked_at", Utc::now())
                .and_where(Expr::col("id").eq(id.0))
                .and_where(Expr::col("user_id").eq(user.0))
                .and_where(Expr::col("revoked_at").is_null()),
        )
        .await?;
    Ok(n == 1)
}

/// Revokes every session of the user, except `keep` when given. Returns how many ended.
pub async fn revoke_all(db: &Db, user: UserId, keep: Option<SessionId>) -> Result<u64> {
    let mut q = Query::update();
    q.table("sessions")
        .value("revoked_at", Utc::now())
        .and_where(Expr::col("user_id").eq(user.0))
        .and_where(Expr::col("revoked_at").is_null());
    if let Some(keep) = keep {
        q.and_where(Expr::col("id").ne(keep.0));
    }
    db.execute(&q).await
}

/// A live session with its user, in one query (authentication runs it on every request).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionWithUser {
    #[sqlx(flatten)]
    pub session: SessionRow,
    pub u_email: String,
    pub u_disabled_at: Option<DateTime<Utc>>,
    pub u_erased_at: Option<DateTime<Utc>>,
}

/// System function (authentication): a live session by the hash of its token, with the state
/// of its user.
pub async fn find_live_with_user(db: &Db, token_hash: &str) -> Result<Option<SessionWithUser>> {
    let mut q = Query::select();
    for c in COLUMNS {
        q.expr_as(Expr::col(("s", c)), c);
    }
    q.expr_as(Expr::col(("u", "email")), "u_email")
        .expr_as(Expr::col(("u", "disabled_at")), "u_disabled_at")
        .expr_as(Expr::col(("u", "erased_at")), "u_erased_at")
        .from_as("sessions", "s")
        .join_as(
            sea_query::JoinType::InnerJoin,
            "users",
            "u",
            Expr::col(("u", "id")).equals(("s", "user_id")),
        )
        .and_where(Expr::col(("s", "token_hash")).eq(token_hash))
        .and_where(Expr::col(("s", "revoked_at")).is_null());
    db.fetch_optional(&q).await
}
