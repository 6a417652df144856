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

/// A live session with its user and the user's memberships, in one query (authentication runs
/// it on every cookie-authenticated request).
#[derive(Debug, Clone)]
pub struct SessionWithUser {
    pub session: SessionRow,
    pub email: String,
    pub active: bool,
    pub memberships: Vec<crate::users::MembershipRow>,
}

#[derive(sqlx::FromRow)]
struct JoinedRow {
    #[sqlx(flatten)]
    session: SessionRow,
    u_email: String,
    u_disabled_at: Option<DateTime<Utc>>,
    u_erased_at: Option<DateTime<Utc>>,
    m_org_id: Option<Uuid>,
    m_workspace_id: Option<Uuid>,
    m_role: Option<String>,
    m_created_at: Option<DateTime<Utc>>,
}

/// System function (authentication): a live session by the hash of its token, with its user's
/// state and memberships (one row per membership, folded here).
pub async fn find_live_with_user(db: &Db, token_hash: &str) -> Result<Option<SessionWithUser>> {
    let mut q = Query::select();
    for c in COLUMNS {
        q.expr_as(Expr::col(("s", c)), c);
    }
    q.expr_as(Expr::col(("u", "email")), "u_email")
        .expr_as(Expr::col(("u", "disabled_at")), "u_disabled_at")
        .expr_as(Expr::col(("u", "erased_at")), "u_erased_at")
        .expr_as(Expr::col(("m", "org_id")), "m_org_id")
        .expr_as(Expr::col(("m", "workspace_id")), "m_workspace_id")
        .expr_as(Expr::col(("m", "role")), "m_role")
        .expr_as(Expr::col(("m", "created_at")), "m_created_at")
        .from_as("sessions", "s")
        .join_as(
            sea_query::JoinType::InnerJoin,
            "users",
            "u",
            Expr::col(("u", "id")).equals(("s", "user_id")),
        )
        .join_as(
            sea_query::JoinType::LeftJoin,
            "memberships",
            "m",
            Expr::col(("m", "user_id")).equals(("s", "user_id")),
        )
        .and_where(Expr::col(("s", "token_hash")).eq(token_hash))
        .and_where(Expr::col(("s", "revoked_at")).is_null())
        .order_by(("m", "org_id"), Order::Asc);
    let rows: Vec<JoinedRow> = db.fetch_all(&q).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut found = SessionWithUser {
        session: first.session.clone(),
        email: first.u_email.clone(),
        active: first.u_disabled_at.is_none() && first.u_erased_at.is_none(),
        memberships: Vec::new(),
    };
    for r in rows {
        if let (Some(org_id), Some(workspace_id), Some(role), Some(created_at)) =
            (r.m_org_id, r.m_workspace_id, r.m_role, r.m_created_at)
        {
            found.memberships.push(crate::users::MembershipRow {
                org_id,
                workspace_id,
                user_id: r.session.user_id,
                role,
                created_at,
            });
        }
    }
    Ok(Some(found))
}
