//! Approvals: the people side of workflow runs. A decision is single use: of concurrent
//! decisions exactly one wins (the rest get 409), and a decision after the deadline gets 410.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::service::principal::Principal;
use agentry_core::ErrorCode;
use agentry_core::authz::Role;
use agentry_core::scope::WorkspaceScope;
use agentry_store::approvals::{self, DecideOutcome, Decision, Filter};
use serde_json::Value;
use uuid::Uuid;

pub use agentry_store::approvals::ApprovalRow;

pub async fn list(
    platform: &Platform,
    scope: WorkspaceScope,
    mut filter: Filter,
) -> ServiceResult<Vec<ApprovalRow>> {
    filter.limit = filter.limit.clamp(1, 200);
    Ok(approvals::list(&platform.db, scope, &filter).await?)
}

pub async fn get(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
) -> ServiceResult<ApprovalRow> {
    approvals::get(&platform.db, scope, id)
        .await?
        .ok_or_else(|| not_found(id))
}

pub struct Decide {
    pub approved: bool,
    pub comment: Option<String>,
    /// A JSON merge patch applied to the run's state with the decision (an object).
    pub state_patch: Option<Value>,
}

/// Decides an approval. The caller's role in the workspace must be at least the approval's
/// assignee role.
pub async fn decide(
    platform: &Platform,
    principal: &Principal,
    scope: WorkspaceScope,
    id: Uuid,
    request: Decide,
) -> ServiceResult<ApprovalRow> {
    let current = get(platform, scope, id).await?;
    let needed = Role::parse(&current.assignee_role).unwrap_or(Role::Owner);
    if principal
        .role_in(scope.workspace_id)
        .is_none_or(|r| r < needed)
    {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            format!(
                "this approval is assigned to the {} role; your role here is lower",
                current.assignee_role
            ),
        ));
    }
    if let Some(patch) = &request.state_patch
        && !patch.is_object()
    {
        return Err(ServiceError::validation(vec![
            agentry_core::agent::FieldError::new(
                "state_patch",
                "must be an object (a JSON merge patch of the run's state)",
            ),
        ]));
    }
    if request.comment.as_ref().is_some_and(|c| c.len() > 4000) {
        return Err(ServiceError::validation(vec![
            agentry_core::agent::FieldError::new("comment", "must be at most 4000 characters"),
        ]));
    }
    let outcome = approvals::decide(
        &platform.db,
        scope,
        id,
        Decision {
            approved: request.approved,
            decided_by: principal.actor.label(),
            comment: request.comment,
            state_patch: request.state_patch,
        },
    )
    .await?;
    match outcome {
        DecideOutcome::Decided(row) => {
            platform.notifier.job_enqueued();
            Ok(row)
        }
        DecideOutcome::AlreadyDecided(row) => Err(ServiceError::new(
            ErrorCode::ApprovalAlreadyDecided,
            format!(
                "approval {id} was already decided: {}{}",
                row.status,
                row.decided_by
                    .as_deref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ),
        )),
        DecideOutcome::Expired(_) => Err(ServiceError::new(
            ErrorCode::ApprovalExpired,
            format!("approval {id} expired; its timeout outcome applies"),
        )),
        DecideOutcome::NotFound => Err(not_found(id)),
    }
}

fn not_found(id: Uuid) -> ServiceError {
    ServiceError::new(
        ErrorCode::ApprovalNotFound,
        format!("no approval with id {id}"),
    )
}
