//! The audit log: who changed what, when, from where. Entries are written by every mutation
//! (through [`record`]) and can be read and exported, never changed or deleted through any API.
//! Secret-looking fields are masked before anything is stored.

use crate::error::ServiceResult;
use crate::platform::Platform;
use crate::service::principal::{Actor, RequestMeta};
use agentry_core::ids::WorkspaceId;
use agentry_core::scope::OrgScope;
use agentry_store::audit::{self, AuditFilter, AuditRow};
use chrono::Utc;
use serde_json::Value;

/// One change to record.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<String>,
    pub workspace: Option<WorkspaceId>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    pub fn new(action: &'static str, target_type: &'static str, target_id: impl ToString) -> Self {
        Self {
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            ..Self::default()
        }
    }

    pub fn in_workspace(mut self, ws: WorkspaceId) -> Self {
        self.workspace = Some(ws);
        self
    }

    pub fn before(mut self, v: Value) -> Self {
        self.before = Some(v);
        self
    }

    pub fn after(mut self, v: Value) -> Self {
        self.after = Some(v);
        self
    }
}

/// Field names whose values are never stored in the audit log.
const SECRET_FIELDS: [&str; 9] = [
    "api_key",
    "key",
    "password",
    "secret",
    "client_secret",
    "token",
    "totp_secret",
    "authorization",
    "master_key",
];

/// Replaces the value of every secret-looking field (at any depth) with `"***"`.
pub fn mask_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_FIELDS
                    .iter()
                    .any(|s| lower == *s || lower.ends_with(&format!("_{s}")))
                {
                    if !v.is_null() {
                        *v = Value::String("***".into());
                    }
                } else {
                    mask_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// Writes one entry. A failure is logged and counted but does not undo the change it records
/// (the change has already committed).
pub async fn record(
    platform: &Platform,
    org: OrgScope,
    actor: &Actor,
    meta: &RequestMeta,
    mut change: Change,
) {
    if let Some(v) = change.before.as_mut() {
        mask_secrets(v);
    }
    if let Some(v) = change.after.as_mut() {
        mask_secrets(v);
    }
    let row = AuditRow {
        id: audit::new_id(),
        org_id: org.org_id.0,
        workspace_id: change.workspace.map(|w| w.0),
        actor_type: actor.kind().into(),
        actor_id: actor.id(),
        actor_label: actor.label(),
        action: change.action.into(),
        target_type: change.target_type.into(),
        target_id: change.target_id,
        before: change.before,
        after: change.after,
        ip: meta.ip.clone(),
        user_agent: meta
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(300).collect()),
        request_id: meta.request_id.clone(),
        at: Utc::now(),
    };
    if let Err(e) = audit::append(&platform.db, &row).await {
        metrics::counter!("agentry_audit_write_errors_total").increment(1);
        tracing::error!(error = %e, action = row.action, "audit entry could not be written");
    }
}

pub async fn list(
    platform: &Platform,
    scope: OrgScope,
    filter: &AuditFilter,
) -> ServiceResult<Vec<AuditRow>> {
    Ok(audit::list(&platform.db, scope, filter).await?)
}

/// Deletes entries older than the configured retention (the worker calls this hourly).
pub async fn sweep(platform: &Platform) -> ServiceResult<u64> {
    let Some(keep) = platform.config.identity.audit_retention else {
        return Ok(0);
    };
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(365));
    Ok(audit::sweep_older_than(&platform.db, Utc::now() - keep).await?)
}

/// A cell for a CSV export: quoted, and neutralised when a spreadsheet would read it as a
/// formula (`=`, `+`, `-`, `@`, tab, carriage return at the start; OWASP's CSV-injection rule).
pub fn csv_cell(text: &str) -> String {
    let risky = text
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let text = if risky {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

pub const CSV_HEADER: &str = "id,at,actor_type,actor_id,actor_label,action,target_type,target_id,workspace_id,ip,user_agent,request_id,before,after";

pub fn csv_row(row: &AuditRow) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
    [
        row.id.to_string(),
        row.at.to_rfc3339(),
        row.actor_type.clone(),
        row.actor_id.map(|u| u.to_string()).unwrap_or_default(),
        row.actor_label.clone(),
        row.action.clone(),
        row.target_type.clone(),
        opt(&row.target_id),
        row.workspace_id.map(|u| u.to_string()).unwrap_or_default(),
        opt(&row.ip),
        opt(&row.user_agent),
        opt(&row.request_id),
        json(&row.before),
        json(&row.after),
    ]
    .iter()
    .map(|c| csv_cell(c))
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let mut v = serde_json::json!({
            "name": "p", "api_key": "sk-1", "nested": {"client_secret": "x", "list": [{"password": "p"}]},
            "provider_api_key": "sk-2", "key_prefix": "agt_1234"
        });
        mask_secrets(&mut v);
        assert_eq!(v["api_key"], "***");
        assert_eq!(v["nested"]["client_secret"], "***");
        assert_eq!(v["nested"]["list"][0]["password"], "***");
        assert_eq!(v["provider_api_key"], "***");
        assert_eq!(v["key_prefix"], "agt_1234");
        assert_eq!(v["name"], "p");
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(
            csv_cell("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(csv_cell("+cmd|' /C calc'!A0"), "\"'+cmd|' /C calc'!A0\"");
        assert_eq!(csv_cell("@SUM(1)"), "\"'@SUM(1)\"");
        assert_eq!(csv_cell("-1"), "\"'-1\"");
        assert_eq!(csv_cell("plain"), "\"plain\"");
    }
}
