//! Organizations and workspaces: creation, the caller's orgs, workspaces, and the owner's
//! export and deletion of a whole organization (as queued tasks).

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::ids::{OrgId, UserId, WorkspaceId};
use agentry_core::scope::OrgScope;
use agentry_store::org_tasks::{self, OrgTaskRow};
use agentry_store::orgs::{self, OrgRow, WorkspaceRow};
use agentry_store::users;
use serde_json::{Value, json};
use uuid::Uuid;

fn check_name(name: &str) -> ServiceResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ServiceError::validation(vec![FieldError::new(
            "name",
            "must be 1-200 characters",
        )]));
    }
    Ok(name.to_string())
}

/// Creates an organization with one workspace; `owner` becomes its owner.
pub async fn create_org(
    platform: &Platform,
    name: &str,
    owner: Option<UserId>,
) -> ServiceResult<OrgScope> {
    let name = check_name(name)?;
    let scope = orgs::create_org(&platform.db, &name).await?;
    if let Some(owner) = owner {
        users::set_membership(&platform.db, scope.org(), None, owner, "owner").await?;
    }
    Ok(scope.org())
}

/// The orgs a user belongs to.
pub async fn orgs_of(platform: &Platform, user: UserId) -> ServiceResult<Vec<OrgRow>> {
    let mut ids: Vec<Uuid> = users::memberships_of(&platform.db, user)
        .await?
        .iter()
        .map(|m| m.org_id)
        .collect();
    ids.dedup();
    Ok(orgs::get_many(&platform.db, &ids).await?)
}

pub async fn get(platform: &Platform, scope: OrgScope) -> ServiceResult<OrgRow> {
    orgs::get(&platform.db, scope).await?.ok_or_else(|| {
        ServiceError::new(
            ErrorCode::OrgNotFound,
            format!("no organization with id {}", scope.org_id.0),
        )
    })
}

pub async fn rename(platform: &Platform, scope: OrgScope, name: &str) -> ServiceResult<OrgRow> {
    let name = check_name(name)?;
    orgs::rename(&platform.db, scope, &name).await?;
    get(platform, scope).await
}

pub async fn workspaces(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<WorkspaceRow>> {
    Ok(orgs::workspaces(&platform.db, scope).await?)
}

/// A workspace of the org, or "not found" (also for another org's workspace).
pub async fn workspace(
    platform: &Platform,
    scope: OrgScope,
    id: WorkspaceId,
) -> ServiceResult<WorkspaceRow> {
    orgs::workspace(&platform.db, scope, id)
        .await?
        .ok_or_else(|| {
            ServiceError::new(
                ErrorCode::WorkspaceNotFound,
                format!("no workspace with id {}", id.0),
            )
        })
}

pub async fn create_workspace(
    platform: &Platform,
    scope: OrgScope,
    name: &str,
) -> ServiceResult<WorkspaceRow> {
    let name = check_name(name)?;
    Ok(orgs::create_workspace(&platform.db, scope, &name).await?)
}

pub async fn delete_workspace(
    platform: &Platform,
    scope: OrgScope,
    id: WorkspaceId,
) -> ServiceResult<()> {
    let all = orgs::workspaces(&platform.db, scope).await?;
    if all.first().map(|w| w.id) == Some(id.0) {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "the organization's first (default) workspace cannot be deleted",
        ));
    }
    if orgs::delete_workspace(&platform.db, scope, id).await? {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::WorkspaceNotFound,
            format!("no workspace with id {}", id.0),
        ))
    }
}

/// Queues an export or the deletion of the whole org; answered with 202 and the task.
pub async fn request_task(
    platform: &Platform,
    scope: OrgScope,
    kind: &str,
    requested_by: Option<Uuid>,
) -> ServiceResult<OrgTaskRow> {
    Ok(org_tasks::create(&platform.db, scope, kind, requested_by).await?)
}

pub async fn task(platform: &Platform, scope: OrgScope, id: Uuid) -> ServiceResult<OrgTaskRow> {
    org_tasks::get(&platform.db, scope, id)
        .await?
        .ok_or_else(|| ServiceError::new(ErrorCode::RouteNotFound, format!("no task with id {id}")))
}

/// Executes a queued org task (called by a worker).
pub(crate) async fn execute_task(platform: &Platform, task_id: Uuid) -> ServiceResult<()> {
    let Some(task) = org_tasks::get_for_job(&platform.db, task_id).await? else {
        return Ok(());
    };
    if task.status != "queued" {
        return Ok(());
    }
    let scope = OrgScope {
        org_id: OrgId(task.org_id),
    };
    let outcome = match task.kind.as_str() {
        "export" => export_org(platform, scope).await.map(Some),
        "delete" => orgs::delete_org_data(&platform.db, scope)
            .await
            .map(|_| None)
            .map_err(ServiceError::from),
        other => Err(ServiceError::new(
            ErrorCode::Internal,
            format!("unknown org task {other}"),
        )),
    };
    match outcome {
        Ok(result) => org_tasks::finish(&platform.db, task_id, result, None).await?,
        Err(e) => org_tasks::finish(&platform.db, task_id, None, Some(&e.message)).await?,
    }
    Ok(())
}

/// The org's configuration and members as JSON. Secrets are never exported: provider keys and
/// SSO client secrets appear only as "set".
async fn export_org(platform: &Platform, scope: OrgScope) -> ServiceResult<Value> {
    let org = get(platform, scope).await?;
    let workspaces = orgs::workspaces(&platform.db, scope).await?;
    let members = users::members(&platform.db, scope).await?;
    let providers = agentry_store::providers::list(&platform.db, scope).await?;
    let mut agents = Vec::new();
    for ws in &workspaces {
        let ws_scope = agentry_core::scope::WorkspaceScope {
            org_id: scope.org_id,
            workspace_id: WorkspaceId(ws.id),
        };
        for a in crate::service::agents::list(platform, ws_scope).await? {
            agents.push(json!({"workspace_id": ws.id, "version": a.version, "spec": a.spec}));
        }
    }
    Ok(json!({
        "org": {"id": org.id, "name": org.name, "created_at": org.created_at},
        "workspaces": workspaces.iter().map(|w| json!({"id": w.id, "name": w.name})).collect::<Vec<_>>(),
        "members": members.iter().map(|m| json!({"user_id": m.user_id, "email": m.email, "name": m.name,
            "workspace_id": (m.workspace_id != users::ORG_LEVEL).then_some(m.workspace_id), "role": m.role})).collect::<Vec<_>>(),
        "providers": providers.iter().map(|p| json!({"name": p.name, "kind": p.kind, "base_url": p.base_url,
            "api_key_set": p.api_key_encrypted.is_some()})).collect::<Vec<_>>(),
        "agents": agents,
    }))
}
