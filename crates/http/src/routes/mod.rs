//! `/api/v1` handlers. Each: extract → authorize → one service call → map the result.

pub mod agents;
pub mod api_keys;
pub mod apply;
pub mod approvals;
pub mod audit_log;
pub mod auth;
pub mod budgets;
pub mod costs;
pub mod events;
pub mod guardrails;
pub mod me;
pub mod members;
pub mod org;
pub mod providers;
pub mod routing;
pub mod runs;
pub mod sso;
pub mod system;
pub mod triggers;
pub mod workflow_runs;
pub mod workflows;

#[cfg(test)]
mod tests {
    /// Every route that changes something writes an audit entry: each non-GET handler's body
    /// records one (directly or through its module's helper). A new handler that forgets fails
    /// here; the few that change nothing a tenant owns are listed with the reason.
    #[test]
    fn every_mutating_route_writes_an_audit_entry() {
        let sources = [
            ("agents", include_str!("agents.rs")),
            ("api_keys", include_str!("api_keys.rs")),
            ("apply", include_str!("apply.rs")),
            ("audit_log", include_str!("audit_log.rs")),
            ("auth", include_str!("auth.rs")),
            ("budgets", include_str!("budgets.rs")),
            ("costs", include_str!("costs.rs")),
            ("events", include_str!("events.rs")),
            ("guardrails", include_str!("guardrails.rs")),
            ("me", include_str!("me.rs")),
            ("members", include_str!("members.rs")),
            ("org", include_str!("org.rs")),
            ("providers", include_str!("providers.rs")),
            ("routing", include_str!("routing.rs")),
            ("runs", include_str!("runs.rs")),
            ("sso", include_str!("sso.rs")),
            ("workflows", include_str!("workflows.rs")),
            ("workflow_runs", include_str!("workflow_runs.rs")),
            ("approvals", include_str!("approvals.rs")),
            ("triggers", include_str!("triggers.rs")),
        ];
        // (module, handler): why no entry.
        let exempt = [
            ("me", "totp_setup"),      // returns a fresh secret; nothing is stored
            ("me", "switch_org"),      // a preference of the caller's own session
            ("workflows", "validate"), // checks a definition; stores nothing
        ];
        let mut checked = 0;
        for (module, text) in sources {
            for chunk in text.split("#[utoipa::path(").skip(1) {
                let method = chunk.split(',').next().unwrap_or("").trim();
                let name = chunk
                    .split("pub async fn ")
                    .nth(1)
                    .and_then(|rest| rest.split('(').next())
                    .unwrap_or("")
                    .to_string();
                if method == "get" || exempt.contains(&(module, name.as_str())) {
                    continue;
                }
                checked += 1;
                let records = [
                    "audit::record(",
                    "record(",
                    "record_for_user(",
                    "set_disabled(",
                    "queue_task(",
                ]
                .iter()
                .any(|call| chunk.contains(call));
                assert!(records, "{module}::{name} ({method}) writes no audit entry");
            }
        }
        assert!(checked > 30, "only {checked} mutating handlers found");
    }
}
