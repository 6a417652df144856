//! Agentry's domain vocabulary: ids, tenancy scopes, error codes, agent/run types, the chat-model
//! and tool traits, and the clock.
//!
//! Architecture Invariant: this crate performs no I/O and knows nothing of HTTP, SQL or any
//! provider's wire format. Every other crate speaks these types.

pub mod agent;
pub mod authz;
pub mod chat;
pub mod clock;
pub mod crew;
pub mod embedding;
pub mod error;
pub mod ids;
pub mod run;
pub mod scope;
pub mod tool;

pub use error::ErrorCode;
