//! Storage for Agentry on SQLite (embedded default) and PostgreSQL (scale-out), with ONE set of
//! queries and migrations: statements are built with sea-query and rendered per dialect.
//!
//! Architecture Invariant: every repository function that reads or writes tenant data takes an
//! [`agentry_core::scope::OrgScope`] or [`agentry_core::scope::WorkspaceScope`]. The only
//! unscoped functions are the ones the system uses for its own work (bootstrap, API-key lookup by
//! hash, the job queue), and they are named so.
//!
//! Architecture Invariant: no SQL leaves this crate; callers see domain types and [`StoreError`].

pub mod agents;
pub mod api_keys;
pub mod approvals;
pub mod audit;
pub mod budgets;
pub mod costs;
mod db;
pub mod error;
pub mod jobs;
mod migrations;
mod migrations_crews;
mod migrations_identity;
mod migrations_money;
mod migrations_workflows;
pub mod org_keys;
pub mod org_settings;
pub mod org_tasks;
pub mod orgs;
pub mod prices;
pub mod providers;
pub mod runs;
pub mod sessions;
pub mod sso;
pub mod tokens;
pub mod triggers;
pub mod users;
pub mod workflow_runs;
pub mod workflows;
pub mod writer;

pub use db::{Db, Dialect, NoRow, Statement, Tx, redact_url};
pub use error::StoreError;
/// JSON columns (so the engine builds rows without importing sqlx).
pub use sqlx::types::Json;
