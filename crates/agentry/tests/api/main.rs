//! Integration tests: the real `agentry serve` process driven over HTTP. One test binary (link
//! time on 2 cores); each test starts its own server and fake model server.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod harness;

mod agent_runs;
mod api_errors;
mod audit;
mod auth_flows;
mod browser;
mod browser_identity;
mod cli;
mod crews;
mod durability;
mod guardrails;
mod limits;
mod model_reliability;
mod money;
mod regressions;
mod routing;
mod secrets;
mod sso;
mod streaming;
mod system;
mod tenancy;
mod triggers;
mod workflow_crashes;
mod workflows;
