//! Tenancy scopes. Every repository function takes one of these, so a query that forgets the
//! tenant does not compile. Scopes are only built by the authentication layer (or by the system
//! itself for its own work), never from request bodies.

use crate::ids::{OrgId, WorkspaceId};

/// Everything an organization owns: providers, API keys, members, budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgScope {
    pub org_id: OrgId,
}

/// Everything that lives in a workspace: agents, runs, threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkspaceScope {
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
}

impl WorkspaceScope {
    pub fn org(&self) -> OrgScope {
        OrgScope {
            org_id: self.org_id,
        }
    }
}
