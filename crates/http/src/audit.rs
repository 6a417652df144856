//! Recording changes made through the API in the audit log.

use crate::AppState;
use crate::guard::Caller;
use agentry_core::scope::OrgScope;
use agentry_engine::service::audit::{self, Change};

/// Writes the audit entry for a change `caller` just made in `org`.
pub async fn record(state: &AppState, caller: &Caller, org: OrgScope, change: Change) {
    audit::record(
        &state.platform,
        org,
        &caller.principal.actor,
        &caller.meta,
        change,
    )
    .await;
}
