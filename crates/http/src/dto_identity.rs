//! Wire types of the identity API: sign-in, accounts, members, invitations, organizations,
//! workspaces, single sign-on and the audit log.

use agentry_store::audit::AuditRow;
use agentry_store::orgs::WorkspaceRow;
use agentry_store::sessions::SessionRow;
use agentry_store::sso::SsoProviderRow;
use agentry_store::tokens::InvitationRow;
use agentry_store::users::{MemberRow, ORG_LEVEL};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedIn {
    pub user_id: String,
    /// True: send the authenticator code to `POST /auth/mfa` to finish signing in.
    pub mfa_required: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCode {
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

/// `token` must be a string: `null`, arrays and objects are refused (422), an empty or unknown
/// token is refused (400).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    pub token: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Required for a new account; ignored when the email already has one (sign in first).
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgOut {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub name: String,
    pub totp_enabled: bool,
    /// The organization requests act in.
    pub org_id: String,
    pub org_role: Option<String>,
    pub workspace_roles: Vec<WorkspaceRole>,
    pub orgs: Vec<OrgOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceRole {
    pub workspace_id: String,
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetup {
    /// Base32; type it into the authenticator app or use the URI.
    pub secret: String,
    pub otpauth_uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableTotp {
    pub current_password: String,
    pub secret: String,
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotp {
    pub current_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchOrg {
    pub org_id: uuid::Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: String,
    pub current: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl SessionOut {
    pub fn from_row(row: SessionRow, current: Option<uuid::Uuid>) -> Self {
        Self {
            id: row.id.to_string(),
            current: current == Some(row.id),
            ip: row.ip,
            user_agent: row.user_agent,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// Null for the org-level membership.
    pub workspace_id: Option<String>,
    pub role: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<MemberRow> for MemberOut {
    fn from(m: MemberRow) -> Self {
        Self {
            user_id: m.user_id.to_string(),
            email: m.email,
            name: m.name,
            workspace_id: (m.workspace_id != ORG_LEVEL).then(|| m.workspace_id.to_string()),
            role: m.role,
            disabled: m.disabled_at.is_some(),
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: String,
    /// Set the role in one workspace; without it, the org-level role.
    #[serde(default)]
    pub workspace_id: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetLink {
    /// Single use, valid for at most 30 minutes. Hand it to the person over a trusted channel.
    pub reset_url: String,
    pub expires_in_seconds: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    pub email: String,
    pub role: String,
    #[serde(default)]
    pub workspace_id: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationOut {
    pub id: String,
    pub email: String,
    pub role: String,
    pub workspace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Only in the response to POST: the single-use link (also emailed when SMTP is set up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_url: Option<String>,
    pub emailed: bool,
}

impl InvitationOut {
    pub fn from_row(row: InvitationRow, invite_url: Option<String>, emailed: bool) -> Self {
        Self {
            id: row.id.to_string(),
            email: row.email,
            role: row.role,
            workspace_id: (row.workspace_id != ORG_LEVEL).then(|| row.workspace_id.to_string()),
            created_at: row.created_at,
            expires_at: row.expires_at,
            invite_url,
            emailed,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameInput {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceOut {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<WorkspaceRow> for WorkspaceOut {
    fn from(w: WorkspaceRow) -> Self {
        Self {
            id: w.id.to_string(),
            name: w.name,
            created_at: w.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgTaskOut {
    pub id: String,
    /// `export` or `delete`.
    pub kind: String,
    /// `queued`, `succeeded` or `failed`.
    pub status: String,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<agentry_store::org_tasks::OrgTaskRow> for OrgTaskOut {
    fn from(t: agentry_store::org_tasks::OrgTaskRow) -> Self {
        Self {
            id: t.id.to_string(),
            kind: t.kind,
            status: t.status,
            result: t.result,
            error: t.error,
            created_at: t.created_at,
            ended_at: t.ended_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSsoProvider {
    pub slug: String,
    pub display_name: String,
    pub discovery_url: String,
    pub client_id: String,
    /// Stored encrypted; never returned.
    pub client_secret: String,
    #[serde(default)]
    pub auto_join_role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SsoProviderOut {
    pub id: String,
    pub slug: String,
    pub display_name: String,
    pub discovery_url: String,
    pub client_id: String,
    pub auto_join_role: Option<String>,
    /// The redirect URI to register at the identity provider.
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
}

impl SsoProviderOut {
    pub fn from_row(row: SsoProviderRow, redirect_uri: String) -> Self {
        Self {
            id: row.id.to_string(),
            slug: row.slug,
            display_name: row.display_name,
            discovery_url: row.discovery_url,
            client_id: row.client_id,
            auto_join_role: row.auto_join_role,
            redirect_uri,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SsoPublic {
    pub slug: String,
    pub display_name: String,
    /// Open this in the browser to sign in.
    pub start_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `user`, `api_key` or `system`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_label: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub workspace_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id.to_string(),
            at: r.at,
            actor_type: r.actor_type,
            actor_id: r.actor_id.map(|u| u.to_string()),
            actor_label: r.actor_label,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            workspace_id: r.workspace_id.map(|u| u.to_string()),
            before: r.before,
            after: r.after,
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
        }
    }
}
