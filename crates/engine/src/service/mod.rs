//! Service functions: one per user-visible operation. Every front door (REST, CLI, dashboard)
//! calls these; none of them talks to the store directly.

pub mod account;
pub mod agents;
pub mod api_keys;
pub mod apply;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod budgets;
pub mod costs;
pub mod guardrails;
pub mod members;
pub mod orgs;
pub mod principal;
pub mod providers;
pub mod routing;
pub mod runs;
pub mod sso;
pub mod triggers;
pub mod workflow_runs;
pub mod workflows;
