//! Who is calling and what they may do. A [`Principal`] is built by authentication (an API key
//! or a browser session) and is the only way to obtain a tenancy scope for a request: every
//! scope a handler uses comes out of [`Principal::authorize_org`] or
//! [`Principal::authorize_workspace`], which apply the one permission matrix
//! ([`agentry_core::authz`]).

use crate::error::{ServiceError, ServiceResult};
use agentry_core::ErrorCode;
use agentry_core::authz::{Action, Level, Role};
use agentry_core::ids::{OrgId, SessionId, UserId, WorkspaceId};
use agentry_core::scope::{OrgScope, WorkspaceScope};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User { id: UserId, email: String },
    ApiKey { id: Uuid, prefix: String },
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::ApiKey { .. } => "api_key",
            Actor::System => "system",
        }
    }

    pub fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id, .. } => Some(id.0),
            Actor::ApiKey { id, .. } => Some(*id),
            Actor::System => None,
        }
    }

    /// How the actor is shown in the audit log (never a secret: keys by their public prefix).
    pub fn label(&self) -> String {
        match self {
            Actor::User { email, .. } => email.clone(),
            Actor::ApiKey { prefix, .. } => format!("key {prefix}…"),
            Actor::System => "system".into(),
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// The authenticated caller, with their roles in one organization.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    pub org_id: OrgId,
    /// The role that applies to the whole organization (and all its workspaces), if any.
    pub org_role: Option<Role>,
    /// Roles granted in single workspaces.
    pub workspace_roles: Vec<(WorkspaceId, Role)>,
    /// The workspace used when a request names none.
    pub default_workspace: Option<WorkspaceId>,
    /// Set for browser sessions.
    pub session_id: Option<SessionId>,
}

impl Principal {
    pub fn org(&self) -> OrgScope {
        OrgScope {
            org_id: self.org_id,
        }
    }

    /// The caller's effective role in a workspace of their org: the higher of the org-level
    /// role and a workspace grant.
    pub fn role_in(&self, workspace: WorkspaceId) -> Option<Role> {
        let granted = self
            .workspace_roles
            .iter()
            .filter(|(w, _)| *w == workspace)
            .map(|(_, r)| *r)
            .max();
        self.org_role.max(granted)
    }

    /// Authorizes an org-level action and hands out the org scope for it.
    pub fn authorize_org(&self, action: Action) -> ServiceResult<OrgScope> {
        debug_assert_eq!(action.level(), Level::Org);
        match self.org_role {
            Some(role) if action.allowed_for(role) => Ok(self.org()),
            _ => Err(forbidden(action)),
        }
    }

    /// Authorizes a workspace-level action in `workspace` (already checked to belong to the
    /// org) or, when `None`, in the caller's default workspace. A workspace the caller has no
    /// role in answers "not found", exactly like one that does not exist.
    pub fn authorize_workspace(
        &self,
        action: Action,
        workspace: Option<WorkspaceId>,
    ) -> ServiceResult<WorkspaceScope> {
        debug_assert_eq!(action.level(), Level::Workspace);
        let Some(workspace) = workspace.or(self.default_workspace) else {
            return Err(ServiceError::new(
                ErrorCode::WorkspaceNotFound,
                "you are not a member of any workspace of this organization",
            ));
        };
        match self.role_in(workspace) {
            None => Err(ServiceError::new(
                ErrorCode::WorkspaceNotFound,
                format!("no workspace with id {}", workspace.0),
            )),
            Some(role) if action.allowed_for(role) => Ok(WorkspaceScope {
                org_id: self.org_id,
                workspace_id: workspace,
            }),
            Some(_) => Err(forbidden(action)),
        }
    }

    /// The highest role the caller holds anywhere in the org (for "may they see this page").
    pub fn highest_role(&self) -> Option<Role> {
        self.workspace_roles
            .iter()
            .map(|(_, r)| *r)
            .max()
            .max(self.org_role)
    }
}

fn forbidden(action: Action) -> ServiceError {
    ServiceError::new(
        ErrorCode::Forbidden,
        format!(
            "your role does not allow '{}' (needs {} or higher)",
            action.as_str(),
            action.min_role()
        ),
    )
    .with_details(
        serde_json::json!({ "action": action.as_str(), "required_role": action.min_role() }),
    )
}

/// What an audit entry needs to know about the request that caused a change.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(org_role: Option<Role>, ws: Vec<(WorkspaceId, Role)>) -> Principal {
        Principal {
            actor: Actor::System,
            org_id: OrgId::new(),
            org_role,
            default_workspace: ws.first().map(|(w, _)| *w),
            workspace_roles: ws,
            session_id: None,
        }
    }

    #[test]
    fn workspace_role_is_the_higher_of_org_and_workspace_grants() {
        let w1 = WorkspaceId::new();
        let w2 = WorkspaceId::new();
        let p = principal(Some(Role::Viewer), vec![(w1, Role::Member)]);
        assert_eq!(p.role_in(w1), Some(Role::Member));
        assert_eq!(p.role_in(w2), Some(Role::Viewer));
        assert!(p.authorize_workspace(Action::RunsExecute, Some(w1)).is_ok());
        let e = p
            .authorize_workspace(Action::RunsExecute, Some(w2))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
    }

    #[test]
    fn a_workspace_without_a_role_is_not_found_not_forbidden() {
        let w1 = WorkspaceId::new();
        let p = principal(None, vec![(w1, Role::Owner)]);
        let e = p
            .authorize_workspace(Action::AgentsRead, Some(WorkspaceId::new()))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::WorkspaceNotFound);
        // Workspace-only members have no org-level permissions at all.
        assert_eq!(
            p.authorize_org(Action::ProvidersRead).unwrap_err().code,
            ErrorCode::Forbidden
        );
    }
}
