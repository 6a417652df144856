//! `/api/v1` handlers. Each: extract → authorize → one service call → map the result.

pub mod agents;
pub mod api_keys;
pub mod apply;
pub mod events;
pub mod providers;
pub mod runs;
pub mod system;
