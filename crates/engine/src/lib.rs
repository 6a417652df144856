//! The engine: service functions every front door calls (REST, SSE, CLI, later channels), and
//! the durable agent loop with the workers that execute it.
//!
//! Architecture Invariant: the engine knows nothing of HTTP. It speaks domain types and
//! [`ServiceError`]; the HTTP crate maps those to the wire.
//!
//! Architecture Invariant: the decision of what a run does next is a pure function of its
//! committed journal ([`journal::next_action`]); the executor only performs that decision and
//! commits its outcome (fenced by the job lease) before asking again.

pub mod budget;
pub mod config;
pub mod error;
mod executor;
pub mod journal;
pub mod mailer;
mod models;
pub mod notifier;
mod platform;
pub mod pricing;
mod response_cache;
pub mod secrets;
pub mod service;
pub mod vault;
mod worker;
mod workflow_exec;

pub use config::{EngineConfig, IdentityConfig, InstanceProvider};
pub use error::{ServiceError, ServiceResult};
pub use platform::{Platform, PlatformParts};
pub use worker::WorkerHandle;
