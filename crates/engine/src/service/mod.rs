//! Service functions: one per user-visible operation. Every front door (REST, CLI, dashboard)
//! calls these; none of them talks to the store directly.

pub mod agents;
pub mod api_keys;
pub mod apply;
pub mod providers;
pub mod runs;
