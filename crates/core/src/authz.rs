//! Roles, actions and the one permission matrix (role × action). Every API route declares the
//! action it performs through a typed guard in the HTTP layer; this table is the only place that
//! decides which role may perform it. `docs/permissions.md` is generated from it and a test keeps
//! the two in step.

use serde::{Deserialize, Serialize};

/// A member's role. Ordered: each role can do everything the roles before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything in its scope, changes nothing.
    Viewer,
    /// Builds and runs: agents, runs, threads.
    Member,
    /// Administers: providers, members, API keys, SSO, audit log, workspaces.
    Admin,
    /// Owns the organization: everything, including owners, export and deletion.
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an action applies: to the organization as a whole, or inside one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Org,
    Workspace,
}

macro_rules! actions {
    ($( $variant:ident => ($name:literal, $level:ident, $min:ident, $doc:literal), )*) => {
        /// Something a caller wants to do. Each has a level and the least role that may do it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $( #[doc = $doc] $variant, )*
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The action's stable name (`agents:write`), as documented and as written in the
            /// OpenAPI document's security scopes.
            pub fn as_str(self) -> &'static str {
                match self { $( Action::$variant => $name, )* }
            }

            pub fn level(self) -> Level {
                match self { $( Action::$variant => Level::$level, )* }
            }

            /// The least role allowed to perform the action.
            pub fn min_role(self) -> Role {
                match self { $( Action::$variant => Role::$min, )* }
            }

            pub fn description(self) -> &'static str {
                match self { $( Action::$variant => $doc, )* }
            }

            pub fn parse(s: &str) -> Option<Action> {
                match s { $( $name => Some(Action::$variant), )* _ => None }
            }
        }
    };
}

actions! {
    OrgRead => ("org:read", Org, Viewer, "See the organization, its workspaces and members."),
    OrgManage => ("org:manage", Org, Owner, "Rename, export or delete the organization; manage owners."),
    WorkspacesManage => ("workspaces:manage", Org, Admin, "Create, rename and delete workspaces."),
    MembersManage => ("members:manage", Org, Admin, "Invite members, change roles, disable members, revoke their sessions."),
    ProvidersRead => ("providers:read", Org, Viewer, "List model providers (never their keys)."),
    ProvidersManage => ("providers:manage", Org, Admin, "Register, change and delete model providers and their keys."),
    ApiKeysManage => ("api_keys:manage", Org, Admin, "Create, list and revoke API keys."),
    SsoManage => ("sso:manage", Org, Admin, "Configure OpenID Connect sign-in."),
    AuditRead => ("audit:read", Org, Admin, "Read and export the audit log."),
    CostsRead => ("costs:read", Org, Admin, "Read cost reports, budgets and prices."),
    BudgetsManage => ("budgets:manage", Org, Admin, "Create, change and delete budgets and price overrides."),
    GuardrailsManage => ("guardrails:manage", Org, Admin, "Set the organization's guardrail policy."),
    AgentsRead => ("agents:read", Workspace, Viewer, "Read agents and their versions."),
    AgentsWrite => ("agents:write", Workspace, Member, "Create, change and delete agents; apply configuration."),
    RunsRead => ("runs:read", Workspace, Viewer, "Read runs, their steps and event streams."),
    RunsExecute => ("runs:execute", Workspace, Member, "Start and cancel runs."),
    WorkflowsRead => ("workflows:read", Workspace, Viewer, "Read workflows, their versions, runs, approvals and triggers."),
    WorkflowsWrite => ("workflows:write", Workspace, Member, "Create, version and delete workflows and their triggers."),
    WorkflowsRun => ("workflows:run", Workspace, Member, "Start, cancel, re-run and retry workflow runs."),
    ApprovalsDecide => ("approvals:decide", Workspace, Member, "Decide pending approvals (the approval's assignee role is checked too)."),
}

impl Action {
    /// The one permission check: may `role` perform this action?
    pub fn allowed_for(self, role: Role) -> bool {
        role >= self.min_role()
    }
}

/// The permission matrix as a Markdown table (docs/permissions.md).
pub fn permissions_markdown() -> String {
    let mut out = String::from(
        "# Permissions\n\n\
         Generated from `crates/core/src/authz.rs`; a test keeps this file in step with the code.\n\n\
         Roles are ordered: viewer < member < admin < owner. An org-level role applies to the\n\
         organization and to every workspace in it; a workspace-level role applies to that\n\
         workspace only, and a member's role in a workspace is the higher of the two. API keys\n\
         carry a role too: an org-scoped key acts with it everywhere in the organization, a\n\
         workspace-scoped key only inside its workspace (it has no org-level permissions).\n\n\
         | action | level | viewer | member | admin | owner | what it allows |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for action in Action::ALL {
        let level = match action.level() {
            Level::Org => "org",
            Level::Workspace => "workspace",
        };
        let cells: Vec<&str> = Role::ALL
            .iter()
            .map(|r| if action.allowed_for(*r) { "yes" } else { "—" })
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            action.as_str(),
            level,
            cells.join(" | "),
            action.description()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Viewer < Role::Member && Role::Member < Role::Admin);
        assert!(Role::Admin < Role::Owner);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn viewers_only_read_and_members_build_and_run() {
        for action in Action::ALL {
            // The audit log and the org's spending are for admins.
            let admin_only = [Action::AuditRead, Action::CostsRead];
            let reads = action.as_str().ends_with(":read") && !admin_only.contains(action);
            assert_eq!(action.allowed_for(Role::Viewer), reads, "{action:?}");
            assert!(action.allowed_for(Role::Owner), "{action:?}");
        }
        assert!(Action::RunsExecute.allowed_for(Role::Member));
        assert!(Action::AgentsWrite.allowed_for(Role::Member));
        assert!(!Action::ProvidersManage.allowed_for(Role::Member));
        assert!(!Action::AuditRead.allowed_for(Role::Member));
        assert!(!Action::OrgManage.allowed_for(Role::Admin));
    }

    #[test]
    fn names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(*action));
        }
    }

    #[test]
    fn docs_match_the_matrix() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/permissions.md");
        let expected = permissions_markdown();
        if std::env::var_os("AGENTRY_WRITE_DOCS").is_some() {
            std::fs::write(path, &expected).expect("write docs/permissions.md");
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            actual, expected,
            "docs/permissions.md is out of date; run the test with AGENTRY_WRITE_DOCS=1"
        );
    }
}
