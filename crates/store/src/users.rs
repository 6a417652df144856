//! People and their memberships. Users belong to the instance (one account, many orgs);
//! memberships give them a role in an organization (org-level, workspace id = nil) or in one
//! workspace.

use crate::db::{Db, Statement};
use crate::error::Result;
use agentry_core::ids::{OrgId, UserId, WorkspaceId};
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use uuid::Uuid;

/// The workspace id of an org-level membership.
pub const ORG_LEVEL: Uuid = Uuid::nil();

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub totp_secret_encrypted: Option<String>,
    pub totp_last_step: Option<i64>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none() && self.erased_at.is_none()
    }
}

const USER_COLUMNS: [&str; 10] = [
    "id",
    "email",
    "name",
    "password_hash",
    "totp_secret_encrypted",
    "totp_last_step",
    "disabled_at",
    "erased_at",
    "created_at",
    "updated_at",
];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl MembershipRow {
    pub fn is_org_level(&self) -> bool {
        self.workspace_id == ORG_LEVEL
    }
}

/// A member of an org as listed to its admins: the user and their memberships there.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub workspace_id: Uuid,
    pub role: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Emails are compared case-insensitively: stored trimmed and lowercased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: Option<&'a str>,
}

/// The insert of a new user, for batching with its first membership.
pub fn insert_statement(id: UserId, user: &NewUser<'_>, now: DateTime<Utc>) -> Statement {
    Statement::Insert(
        Query::insert()
            .into_table("users")
            .columns([
                "id",
                "email",
                "name",
                "password_hash",
                "created_at",
                "updated_at",
            ])
            .values_panic([
                id.0.into(),
                normalize_email(user.email).into(),
                user.name.trim().into(),
                user.password_hash.map(str::to_string).into(),
                now.into(),
                now.into(),
            ])
            .to_owned(),
    )
}

/// The insert (or role change) of a membership.
pub fn membership_statement(
    org: OrgId,
    workspace: Option<WorkspaceId>,
    user: UserId,
    role: &str,
    now: DateTime<Utc>,
) -> Statement {
    Statement::Insert(
        Query::insert()
            .into_table("memberships")
            .columns(["org_id", "workspace_id", "user_id", "role", "created_at"])
            .values_panic([
                org.0.into(),
                workspace.map(|w| w.0).unwrap_or(ORG_LEVEL).into(),
                user.0.into(),
                role.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::columns(["org_id", "workspace_id", "user_id"])
                    .update_column("role")
                    .to_owned(),
            )
            .to_owned(),
    )
}

/// Creates a user, optionally with a first membership, in one transaction. A taken email is
/// [`crate::StoreError::Conflict`].
pub async fn create(
    db: &Db,
    user: NewUser<'_>,
    membership: Option<(OrgId, Option<WorkspaceId>, &str)>,
) -> Result<UserId> {
    let id = UserId::new();
    let now = Utc::now();
    let mut statements = vec![insert_statement(id, &user, now)];
    if let Some((org, ws, role)) = membership {
        statements.push(membership_statement(org, ws, id, role, now));
    }
    db.write_batch::<crate::db::NoRow>(&statements, false)
        .await?;
    Ok(id)
}

/// System function (sign-in): a user by email.
pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<UserRow>> {
    db.fetch_optional(
        Query::select()
            .columns(USER_COLUMNS)
            .from("users")
            .and_where(Expr::col("email").eq(normalize_email(email))),
    )
    .await
}

/// System function (sessions, the user's own pages): a user by id.
pub async fn get(db: &Db, id: UserId) -> Result<Option<UserRow>> {
    db.fetch_optional(
        Query::select()
            .columns(USER_COLUMNS)
            .from("users")
            .and_where(Expr::col("id").eq(id.0)),
    )
    .await
}

/// The user's memberships in every org (for authentication and "my orgs").
pub async fn memberships_of(db: &Db, user: UserId) -> Result<Vec<MembershipRow>> {
    db.fetch_all(
        Query::select()
            .columns(["org_id", "workspace_id", "user_id", "role", "created_at"])
            .from("memberships")
            .and_where(Expr::col("user_id").eq(user.0))
            .order_by("org_id", Order::Asc),
    )
    .await
}

/// The members of an org, one row per membership (org-level and workspace-level).
pub async fn members(db: &Db, scope: OrgScope) -> Result<Vec<MemberRow>> {
    db.fetch_all(
        Query::select()
            .expr_as(Expr::col(("m", "user_id")), "user_id")
            .expr_as(Expr::col(("u", "email")), "email")
            .expr_as(Expr::col(("u", "name")), "name")
            .expr_as(Expr::col(("m", "workspace_id")), "workspace_id")
            .expr_as(Expr::col(("m", "role")), "role")
            .expr_as(Expr::col(("u", "disabled_at")), "disabled_at")
            .expr_as(Expr::col(("m", "created_at")), "created_at")
            .from_as("memberships", "m")
            .join_as(
                sea_query::JoinType::InnerJoin,
                "users",
                "u",
                Expr::col(("u", "id")).equals(("m", "user_id")),
            )
            .and_where(Expr::col(("m", "org_id")).eq(scope.org_id.0))
            .order_by(("m", "user_id"), Order::Asc)
            .order_by(("m", "workspace_id"), Order::Asc),
    )
    .await
}

/// Sets (or changes) a membership.
pub async fn set_membership(
    db: &Db,
    scope: OrgScope,
    workspace: Option<WorkspaceId>,
    user: UserId,
    role: &str,
) -> Result<()> {
    db.write_batch::<crate::db::NoRow>(
        &[membership_statement(
            scope.org_id,
            workspace,
            user,
            role,
            Utc::now(),
        )],
        false,
    )
    .await?;
    Ok(())
}

/// Removes one membership (or, with `workspace: None`, every membership in the org). Returns
/// the number removed.
pub async fn remove_membership(
    db: &Db,
    scope: OrgScope,
    workspace: Option<Option<WorkspaceId>>,
    user: UserId,
) -> Result<u64> {
    let mut q = Query::delete();
    q.from_table("memberships")
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("user_id").eq(user.0));
    if let Some(ws) = workspace {
        q.and_where(Expr::col("workspace_id").eq(ws.map(|w| w.0).unwrap_or(ORG_LEVEL)));
    }
    db.execute(&q).await
}

/// Number of active org-level owners (an org must keep one).
pub async fn count_owners(db: &Db, scope: OrgScope) -> Result<i64> {
    #[derive(sqlx::FromRow)]
    struct Count {
        n: i64,
    }
    let row: Option<Count> = db
        .fetch_optional(
            Query::select()
                .expr_as(Expr::col(("m", "user_id")).count(), "n")
                .from_as("memberships", "m")
                .join_as(
                    sea_query::JoinType::InnerJoin,
                    "users",
                    "u",
                    Expr::col(("u", "id")).equals(("m", "user_id")),
                )
                .and_where(Expr::col(("m", "org_id")).eq(scope.org_id.0))
                .and_where(Expr::col(("m", "workspace_id")).eq(ORG_LEVEL))
                .and_where(Expr::col(("m", "role")).eq("owner"))
                .and_where(Expr::col(("u", "disabled_at")).is_null())
                .and_where(Expr::col(("u", "erased_at")).is_null()),
        )
        .await?;
    Ok(row.map(|r| r.n).unwrap_or(0))
}

pub async fn set_password(db: &Db, user: UserId, password_hash: &str) -> Result<()> {
    db.execute(
        Query::update()
            .table("users")
            .value("password_hash", password_hash)
            .value("updated_at", Utc::now())
            .and_where(Expr::col("id").eq(user.0)),
    )
    .await?;
    Ok(())
}

/// Stores (or clears) the encrypted TOTP secret; resets the replay guard.
pub async fn set_totp(db: &Db, user: UserId, secret_encrypted: Option<&str>) -> Result<()> {
    db.execute(
        Query::update()
            .table("users")
            .value(
                "totp_secret_encrypted",
                secret_encrypted.map(str::to_string),
            )
            .value("totp_last_step", Option::<i64>::None)
            .value("updated_at", Utc::now())
            .and_where(Expr::col("id").eq(user.0)),
    )
    .await?;
    Ok(())
}

/// Records the TOTP step just used, only if it is newer than the last one: of two concurrent
/// sign-ins with the same code, exactly one wins.
pub async fn use_totp_step(db: &Db, user: UserId, step: i64) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("users")
                .value("totp_last_step", step)
                .and_where(Expr::col("id").eq(user.0))
                .cond_where(
                    sea_query::Cond::any()
                        .add(Expr::col("totp_last_step").is_null())
                        .add(Expr::col("totp_last_step").lt(step)),
                ),
        )
        .await?;
    Ok(n == 1)
}

pub async fn set_disabled(db: &Db, user: UserId, disabled: bool) -> Result<()> {
    db.execute(
        Query::update()
            .table("users")
            .value(
                "disabled_at",
                if disabled { Some(Utc::now()) } else { None },
            )
            .value("updated_at", Utc::now())
            .and_where(Expr::col("id").eq(user.0)),
    )
    .await?;
    Ok(())
}

/// GDPR erasure: personal data replaced, credentials dropped, memberships and identities
/// removed. The row stays (with a pseudonym) so audit entries keep a stable actor id.
pub async fn erase(db: &Db, user: UserId) -> Result<()> {
    let now = Utc::now();
    let pseudonym = format!("erased-{}@erased.invalid", user.0.simple());
    db.write_batch::<crate::db::NoRow>(
        &[
            Statement::Update(
                Query::update()
                    .table("users")
                    .value("email", pseudonym)
                    .value("name", "erased user")
                    .value("password_hash", Option::<String>::None)
                    .value("totp_secret_encrypted", Option::<String>::None)
                    .value("erased_at", now)
                    .value("updated_at", now)
                    .and_where(Expr::col("id").eq(user.0))
                    .to_owned(),
            ),
            Statement::Delete(
                Query::delete()
                    .from_table("memberships")
                    .and_where(Expr::col("user_id").eq(user.0))
                    .to_owned(),
            ),
            Statement::Delete(
                Query::delete()
                    .from_table("user_identities")
                    .and_where(Expr::col("user_id").eq(user.0))
                    .to_owned(),
            ),
            Statement::Update(
                Query::update()
                    .table("sessions")
                    .value("revoked_at", now)
                    .and_where(Expr::col("user_id").eq(user.0))
                    .and_where(Expr::col("revoked_at").is_null())
                    .to_owned(),
            ),
            Statement::Update(
                Query::update()
                    .table("api_keys")
                    .value("revoked_at", now)
                    .and_where(Expr::col("created_by").eq(user.0))
                    .and_where(Expr::col("revoked_at").is_null())
                    .to_owned(),
            ),
        ],
        false,
    )
    .await?;
    Ok(())
}

/// A linked external identity (OIDC issuer + subject) → user.
pub async fn find_identity(db: &Db, issuer: &str, subject: &str) -> Result<Option<UserId>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: Uuid,
    }
    let row: Option<Row> = db
        .fetch_optional(
            Query::select()
                .column("user_id")
                .from("user_identities")
                .and_where(Expr::col("issuer").eq(issuer))
                .and_where(Expr::col("subject").eq(subject)),
        )
        .await?;
    Ok(row.map(|r| UserId(r.user_id)))
}

pub async fn link_identity(db: &Db, issuer: &str, subject: &str, user: UserId) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("user_identities")
            .columns(["issuer", "subject", "user_id", "created_at"])
            .values_panic([
                issuer.into(),
                subject.into(),
                user.0.into(),
                Utc::now().into(),
            ])
            .on_conflict(
                OnConflict::columns(["issuer", "subject"])
                    .do_nothing()
                    .to_owned(),
            ),
    )
    .await?;
    Ok(())
}

/// Identities linked to a user (for the GDPR export).
pub async fn identities_of(db: &Db, user: UserId) -> Result<Vec<(String, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        issuer: String,
        subject: String,
    }
    let rows: Vec<Row> = db
        .fetch_all(
            Query::select()
                .columns(["issuer", "subject"])
                .from("user_identities")
                .and_where(Expr::col("user_id").eq(user.0)),
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.issuer, r.subject)).collect())
}
