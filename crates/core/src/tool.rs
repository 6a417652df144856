//! The tool contract. Built-in tools live in `agentry-tools`; MCP tools will implement the same
//! trait.

use serde_json::Value;

/// What a tool knows about the call it is serving.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Stable across retries of the same call: `H(run_id, step, call_index)`. Tools with side
    /// effects pass it on (e.g. as an `Idempotency-Key` header) so a re-executed call after a crash
    /// has its effect once.
    pub idempotency_key: String,
}

/// A tool failure. It becomes an error result the model sees; the run goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolError {
    /// A short machine-readable code such as `invalid_arguments`, `blocked_address`, `timeout`.
    pub code: String,
    pub message: String,
}

impl ToolError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object. Arguments are validated against it before `call`.
    fn parameters(&self) -> Value;
    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError>;
}
