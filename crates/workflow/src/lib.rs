//! Durable workflow definitions (groundwork): types, parsing, validation, pure evaluation.
//!
//! A definition is YAML or JSON:
//!
//! ```yaml
//! apiVersion: agentry/v1
//! kind: Workflow
//! metadata: {name: my-flow}
//! spec:
//!   input: {type: object}        # optional JSON Schemas: input, state, output
//!   limits: {max_steps: 500}     # optional: max_steps, max_duration_seconds, max_concurrency
//!   start: first
//!   nodes:
//!     first: {type: tool, tool: calculator, args: {expr: "{{ input.x }} * 2"}, into: y, next: done}
//!     done: {type: end, output: {y: "{{ y }}"}}
//! ```
//!
//! Node kinds are in [`model::NodeKind`]; every node may also carry `retry`,
//! `timeout_seconds`, `on_error`, `max_visits` and `description` ([`model::Common`]).
//! [`Workflow::parse_yaml`] / [`Workflow::parse_json`] check shape; [`validate()`] checks
//! meaning (references, reachability, termination, bounded loops — see the [`mod@validate`] module
//! docs for the loop rule —, templates, jq, schemas, ranges). Both collect every error, each
//! naming the node, the field path and, for YAML, the line and column.
//!
//! Nothing in this crate performs I/O or runs user code while parsing or validating: templates
//! and expressions are compiled, jq programs are parsed, JSON Schemas are compiled, and that
//! is all. The [`eval`] helpers do evaluate, but purely and under bounds.

pub mod error;
pub mod eval;
pub mod machine;
pub mod model;
mod parse;
pub mod source;
pub mod validate;

pub use error::{DefinitionError, DefinitionErrors};
pub use eval::{EvalError, eval_condition, eval_expression, render_template, render_value, run_jq};
pub use model::*;
pub use source::{Position, Seg, SourceMap};
pub use validate::{ValidatedWorkflow, validate};
