//! Members of the organization and invitations.

use crate::AppState;
use crate::dto::List;
use crate::dto_identity::{CreateInvitation, InvitationOut, MemberOut, ResetLink, SetRole};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use agentry_core::ErrorCode;
use agentry_core::ids::{UserId, WorkspaceId};
use agentry_engine::service::audit::Change;
use agentry_engine::service::members;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse()
        .map(UserId)
        .map_err(|_| ApiError::new(ErrorCode::UserNotFound, format!("no member with id {raw}")))
}

fn rows_json(rows: &[agentry_store::users::MemberRow]) -> serde_json::Value {
    serde_json::json!(rows
        .iter()
        .map(|m| serde_json::json!({"workspace_id": (m.workspace_id != agentry_store::users::ORG_LEVEL).then_some(m.workspace_id), "role": m.role}))
        .collect::<Vec<_>>())
}

/// Members with their roles: one entry per membership (org-level and per workspace).
#[utoipa::path(get, path = "/members", tag = "members", responses((status = 200, body = List<MemberOut>)),
    security(("bearer" = ["org:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgRead>,
) -> Result<Json<List<MemberOut>>, ApiError> {
    let rows = members::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: rows.into_iter().map(MemberOut::from).collect(),
        next_cursor: None,
    }))
}

/// Set a member's role in the org or in one workspace. Only owners grant or change `owner`.
#[utoipa::path(put, path = "/members/{user_id}/role", tag = "members", request_body = SetRole,
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn set_role(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<SetRole>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(&raw)?;
    let before = members::set_role(
        &state.platform,
        g.scope,
        g.caller.principal.org_role,
        user,
        body.workspace_id.map(WorkspaceId),
        &body.role,
    )
    .await?;
    let change = Change::new("member.role_change", "user", user.0)
        .before(rows_json(&before))
        .after(serde_json::json!({"workspace_id": body.workspace_id, "role": body.role}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member from the organization (all their roles here).
#[utoipa::path(delete, path = "/members/{user_id}", tag = "members",
    responses((status = 204), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn remove(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(&raw)?;
    let before =
        members::remove(&state.platform, g.scope, g.caller.principal.org_role, user).await?;
    let change = Change::new("member.remove", "user", user.0).before(rows_json(&before));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_disabled(
    state: &AppState,
    g: &OrgGuard<perm::MembersManage>,
    raw: &str,
    disabled: bool,
) -> Result<StatusCode, ApiError> {
    let user = user_id(raw)?;
    members::set_disabled(
        &state.platform,
        g.scope,
        g.caller.principal.org_role,
        user,
        disabled,
    )
    .await?;
    let action = if disabled {
        "member.disable"
    } else {
        "member.enable"
    };
    crate::audit::record(
        state,
        &g.caller,
        g.scope,
        Change::new(action, "user", user.0),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable a member's account: they cannot sign in and every session of theirs ends at once.
#[utoipa::path(post, path = "/members/{user_id}/disable", tag = "members",
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn disable(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_disabled(&state, &g, &raw, true).await
}

#[utoipa::path(post, path = "/members/{user_id}/enable", tag = "members",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn enable(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_disabled(&state, &g, &raw, false).await
}

/// End every session of a member.
#[utoipa::path(post, path = "/members/{user_id}/sign-out", tag = "members",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn sign_out(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(&raw)?;
    members::revoke_sessions(&state.platform, g.scope, user).await?;
    crate::audit::record(
        &state,
        &g.caller,
        g.scope,
        Change::new("member.sign_out", "user", user.0),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A single-use password reset link for a member (≤ 30 minutes), for when no email is set up.
/// Only for members who belong to no other organization.
#[utoipa::path(post, path = "/members/{user_id}/password-reset", tag = "members",
    responses((status = 201, body = ResetLink), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn reset_link(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<ResetLink>), ApiError> {
    let user = user_id(&raw)?;
    let (_, reset_url) =
        members::reset_link(&state.platform, g.scope, g.caller.principal.org_role, user).await?;
    crate::audit::record(
        &state,
        &g.caller,
        g.scope,
        Change::new("member.password_reset_link", "user", user.0),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(ResetLink {
            reset_url,
            expires_in_seconds: state.platform.config.identity.reset_link_ttl().as_secs(),
        }),
    ))
}

#[utoipa::path(get, path = "/invitations", tag = "members", responses((status = 200, body = List<InvitationOut>)),
    security(("bearer" = ["members:manage"])))]
pub async fn invitations(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
) -> Result<Json<List<InvitationOut>>, ApiError> {
    let rows = members::list_invitations(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: rows
            .into_iter()
            .map(|r| InvitationOut::from_row(r, None, false))
            .collect(),
        next_cursor: None,
    }))
}

/// Invite someone by email. The single-use link is emailed when SMTP is configured and is in
/// this response either way (shown once).
#[utoipa::path(post, path = "/invitations", tag = "members", request_body = CreateInvitation,
    responses((status = 201, body = InvitationOut), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn invite(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<InvitationOut>), ApiError> {
    let issued = members::invite(
        &state.platform,
        g.scope,
        g.caller.principal.org_role,
        g.caller.principal.actor.user_id(),
        &body.email,
        &body.role,
        body.workspace_id.map(WorkspaceId),
    )
    .await?;
    let url = state
        .platform
        .config
        .identity
        .link(&format!("/ui/invite?token={}", issued.token));
    let mut emailed = false;
    if let Some(mailer) = &state.platform.mailer {
        let text = format!(
            "You are invited to an organization on Agentry as {}.\n\nAccept the invitation here:\n{url}\n",
            issued.invitation.role
        );
        match mailer
            .send(
                &issued.invitation.email,
                "You are invited to Agentry",
                &text,
            )
            .await
        {
            Ok(()) => emailed = true,
            Err(e) => tracing::warn!(error = %e, "could not send an invitation email"),
        }
    }
    let change = Change::new("invitation.create", "invitation", issued.invitation.id).after(
        serde_json::json!({"email": issued.invitation.email, "role": issued.invitation.role,
            "workspace_id": body.workspace_id}),
    );
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok((
        StatusCode::CREATED,
        Json(InvitationOut::from_row(
            issued.invitation,
            Some(url),
            emailed,
        )),
    ))
}

#[utoipa::path(delete, path = "/invitations/{id}", tag = "members",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["members:manage"])))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    g: OrgGuard<perm::MembersManage>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: uuid::Uuid = raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvitationNotFound,
            format!("no pending invitation with id {raw}"),
        )
    })?;
    members::revoke_invitation(&state.platform, g.scope, id).await?;
    crate::audit::record(
        &state,
        &g.caller,
        g.scope,
        Change::new("invitation.revoke", "invitation", id),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
