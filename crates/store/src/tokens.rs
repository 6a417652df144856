//! Single-use tokens sent by link: invitations and password resets. Only SHA-256 digests are
//! stored; redeeming is one conditional UPDATE, so of two concurrent redemptions exactly one wins.

use crate::db::Db;
use crate::error::Result;
use agentry_core::ids::{UserId, WorkspaceId};
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub email: String,
    pub role: String,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const INVITATION_COLUMNS: [&str; 10] = [
    "id",
    "org_id",
    "workspace_id",
    "email",
    "role",
    "invited_by",
    "created_at",
    "expires_at",
    "accepted_at",
    "revoked_at",
];

pub struct NewInvitation<'a> {
    pub workspace_id: Option<WorkspaceId>,
    pub email: &'a str,
    pub role: &'a str,
    pub token_hash: &'a str,
    pub invited_by: Option<UserId>,
    pub expires_at: DateTime<Utc>,
}

pub async fn create_invitation(
    db: &Db,
    scope: OrgScope,
    inv: NewInvitation<'_>,
) -> Result<InvitationRow> {
    let row = InvitationRow {
        id: Uuid::now_v7(),
        org_id: scope.org_id.0,
        workspace_id: inv
            .workspace_id
            .map(|w| w.0)
            .unwrap_or(crate::users::ORG_LEVEL),
        email: crate::users::normalize_email(inv.email),
        role: inv.role.to_string(),
        invited_by: inv.invited_by.map(|u| u.0),
        created_at: Utc::now(),
        expires_at: inv.expires_at,
        accepted_at: None,
        revoked_at: None,
    };
    db.execute(
        Query::insert()
            .into_table("invitations")
            .columns([
                "id",
                "org_id",
                "workspace_id",
                "email",
                "role",
                "token_hash",
                "invited_by",
                "created_at",
                "expires_at",
            ])
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.workspace_id.into(),
                row.email.clone().into(),
                row.role.clone().into(),
                inv.token_hash.into(),
                row.invited_by.into(),
                row.created_at.into(),
                row.expires_at.into(),
            ]),
    )
    .await?;
    Ok(row)
}

/// Pending invitations of the org.
pub async fn list_invitations(db: &Db, scope: OrgScope) -> Result<Vec<InvitationRow>> {
    db.fetch_all(
        Query::select()
            .columns(INVITATION_COLUMNS)
            .from("invitations")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("accepted_at").is_null())
            .and_where(Expr::col("revoked_at").is_null())
            .order_by("id", Order::Desc),
    )
    .await
}

pub async fn revoke_invitation(db: &Db, scope: OrgScope, id: Uuid) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("invitations")
                .value("revoked_at", Utc::now())
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("accepted_at").is_null())
                .and_where(Expr::col("revoked_at").is_null()),
        )
        .await?;
    Ok(n == 1)
}

/// System function (the invitee has no account yet): a pending, unexpired invitation by token.
pub async fn find_invitation(db: &Db, token_hash: &str) -> Result<Option<InvitationRow>> {
    db.fetch_optional(
        Query::select()
            .columns(INVITATION_COLUMNS)
            .from("invitations")
            .and_where(Expr::col("token_hash").eq(token_hash))
            .and_where(Expr::col("accepted_at").is_null())
            .and_where(Expr::col("revoked_at").is_null())
            .and_where(Expr::col("expires_at").gt(Utc::now())),
    )
    .await
}

/// Marks the invitation accepted; false when another request already used it.
pub async fn accept_invitation(db: &Db, id: Uuid) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("invitations")
                .value("accepted_at", Utc::now())
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("accepted_at").is_null())
                .and_where(Expr::col("revoked_at").is_null())
                .and_where(Expr::col("expires_at").gt(Utc::now())),
        )
        .await?;
    Ok(n == 1)
}

pub async fn create_reset(
    db: &Db,
    user: UserId,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("password_resets")
            .columns(["id", "user_id", "token_hash", "created_at", "expires_at"])
            .values_panic([
                Uuid::now_v7().into(),
                user.0.into(),
                token_hash.into(),
                Utc::now().into(),
                expires_at.into(),
            ]),
    )
    .await?;
    Ok(())
}

/// Redeems a reset token: marks it used and returns its user, or `None` when it is unknown,
/// used or expired. One statement, so a token works exactly once.
pub async fn redeem_reset(db: &Db, token_hash: &str) -> Result<Option<UserId>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: Uuid,
    }
    let now = Utc::now();
    let rows: Vec<Row> = db
        .write_batch(
            &[crate::Statement::Update(
                Query::update()
                    .table("password_resets")
                    .value("used_at", now)
                    .and_where(Expr::col("token_hash").eq(token_hash))
                    .and_where(Expr::col("used_at").is_null())
                    .and_where(Expr::col("expires_at").gt(now))
                    .returning(Query::returning().column("user_id"))
                    .to_owned(),
            )],
            false,
        )
        .await?;
    Ok(rows.into_iter().next().map(|r| UserId(r.user_id)))
}

/// Ends every outstanding reset link of the user (after a successful reset or password change).
pub async fn expire_resets(db: &Db, user: UserId) -> Result<()> {
    db.execute(
        Query::update()
            .table("password_resets")
            .value("used_at", Utc::now())
            .and_where(Expr::col("user_id").eq(user.0))
            .and_where(Expr::col("used_at").is_null()),
    )
    .await?;
    Ok(())
}
