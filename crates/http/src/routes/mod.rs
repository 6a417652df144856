//! `/api/v1` handlers. Each: extract → authorize → one service call → map the result.

pub mod agents;
pub mod api_keys;
pub mod apply;
pub mod audit_log;
pub mod auth;
pub mod events;
pub mod me;
pub mod members;
pub mod org;
pub mod providers;
pub mod runs;
pub mod sso;
pub mod system;
