//! Agentry's built-in tools and the SSRF-guarded HTTP client.
//!
//! - [`ToolRegistry`] is what the engine talks to: it lists tools, hands out their specs and
//!   invokes them with the raw JSON arguments a model produced (parse, schema-validate, call).
//! - [`GuardedHttpClient`] is THE way Agentry makes outbound requests to user-chosen URLs. Every
//!   feature that fetches a URL someone else typed goes through it, so the SSRF rules live in one
//!   place.
//! - The tools themselves: [`CalculatorTool`], [`CurrentTimeTool`], [`HttpRequestTool`].

pub mod calculator;
pub mod codes;
pub mod current_time;
pub mod guard;
pub mod http_request;
pub mod registry;
pub mod schema;

pub use calculator::CalculatorTool;
pub use current_time::CurrentTimeTool;
pub use guard::{
    BlockReason, BlockedBy, GuardConfig, GuardError, GuardedHttpClient, GuardedRequest,
    GuardedResponse,
};
pub use http_request::HttpRequestTool;
pub use registry::{RegistryError, ToolRegistry, ToolsConfig};
