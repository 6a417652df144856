//! [`ToolRegistry`]: the tools an engine can offer, and the one entry point that runs them with
//! the raw argument text a model produced (parse, validate against the schema, call).

use crate::codes;
use crate::guard::{GuardConfig, GuardError, GuardedHttpClient};
use crate::{CalculatorTool, CurrentTimeTool, HttpRequestTool};
use agentry_core::chat::ToolSpec;
use agentry_core::clock::{SharedClock, system_clock};
use agentry_core::tool::{Tool, ToolContext, ToolError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Errors at most this many schema violations, so one bad call cannot produce a huge message.
/// What the built-in tools need from the outside.
#[derive(Debug, Clone)]
pub struct ToolsConfig {
    pub http: GuardConfig,
    pub clock: SharedClock,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            http: GuardConfig::default(),
            clock: system_clock(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("a tool named '{0}' is already registered")]
    Duplicate(String),
    #[error("the parameters schema of tool '{tool}' is invalid: {message}")]
    InvalidSchema { tool: String, message: String },
    #[error(transparent)]
    HttpClient(#[from] GuardError),
}

struct Entry {
    tool: Arc<dyn Tool>,
    /// Compiled once at registration; validating is then cheap on every call.
    validator: jsonschema::Validator,
}

/// The registered tools, by name.
#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.names())
            .finish()
    }
}

impl ToolRegistry {
    /// An empty registry (MCP or test tools are added with [`register`](Self::register)).
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in tools: `calculator`, `current_time`, `http_request`.
    ///
    /// Infallible for callers that cannot handle an error: should the HTTP client fail to build
    /// (TLS initialisation), `http_request` is left out and the failure logged, so agents that
    /// name it get `unknown_tool` rather than the process dying. Use
    /// [`try_builtin`](Self::try_builtin) to fail fast at startup instead.
    pub fn builtin(config: ToolsConfig) -> Self {
        let mut registry = Self::new();
        let http = GuardedHttpClient::new(config.http);
        let mut tools: Vec<Arc<dyn Tool>> = vec![
            Arc::new(CalculatorTool),
            Arc::new(CurrentTimeTool::new(config.clock)),
        ];
        match http {
            Ok(client) => tools.push(Arc::new(HttpRequestTool::new(Arc::new(client)))),
            Err(error) => tracing::error!(%error, "http_request tool unavailable"),
        }
        for tool in tools {
            // Built-in schemas are constants covered by tests, so this does not fail in
            // practice; if it ever did, losing one tool beats losing the process.
            if let Err(error) = registry.register(tool) {
                tracing::error!(%error, "built-in tool not registered");
            }
        }
        registry
    }

    /// The built-in tools, failing if any of them cannot be set up.
    pub fn try_builtin(config: ToolsConfig) -> Result<Self, RegistryError> {
        let mut registry = Self::new();
        let client = GuardedHttpClient::new(config.http)?;
        registry.register(Arc::new(CalculatorTool))?;
        registry.register(Arc::new(CurrentTimeTool::new(config.clock)))?;
        registry.register(Arc::new(HttpRequestTool::new(Arc::new(client))))?;
        Ok(registry)
    }

    /// Adds a tool, compiling its parameters schema.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        let name = tool.name().to_string();
        if self.tools.contains_key(&name) {
            return Err(RegistryError::Duplicate(name));
        }
        let validator = jsonschema::validator_for(&tool.parameters()).map_err(|e| {
            RegistryError::InvalidSchema {
                tool: name.clone(),
                message: e.to_string(),
            }
        })?;
        self.tools.insert(name, Entry { tool, validator });
        Ok(())
    }

    /// Tool names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|entry| &entry.tool)
    }

    /// Specs of the named tools, in the order given; unknown names and repeats are skipped (an
    /// agent's tool list is validated against [`names`](Self::names) when it is saved).
    pub fn specs(&self, names: &[String]) -> Vec<ToolSpec> {
        let mut seen = std::collections::HashSet::new();
        names
            .iter()
            .filter(|name| seen.insert(name.as_str()))
            .filter_map(|name| self.get(name))
            .map(|tool| ToolSpec {
                name: tool.name().to_string(),
                description: tool.description().to_string(),
                parameters: tool.parameters(),
            })
            .collect()
    }

    /// The `unknown_tool` error for `name`, listing what does exist.
    pub fn unknown_tool(&self, name: &str) -> ToolError {
        ToolError::new(
            codes::UNKNOWN_TOOL,
            format!(
                "there is no tool named '{name}'; available tools: {}",
                self.names().join(", ")
            ),
        )
    }

    /// Runs tool `name` with the raw JSON argument text the model produced.
    pub async fn invoke(
        &self,
        name: &str,
        raw_arguments: &str,
        ctx: &ToolContext,
    ) -> Result<Value, ToolError> {
        let entry = self
            .tools
            .get(name)
            .ok_or_else(|| self.unknown_tool(name))?;
        let arguments = parse_arguments(raw_arguments)?;
        validate(&entry.validator, &arguments)?;
        entry.tool.call(arguments, ctx).await
    }
}

/// Parses the model's argument text. Models send `""` for "no arguments" often enough that it is
/// read as `{}`.
fn parse_arguments(raw: &str) -> Result<Value, ToolError> {
    if raw.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(raw).map_err(|e| {
        ToolError::new(
            codes::INVALID_ARGUMENTS,
            format!("the arguments are not valid JSON: {e}"),
        )
    })
}

fn validate(validator: &jsonschema::Validator, arguments: &Value) -> Result<(), ToolError> {
    let violations = crate::schema::violations(validator, arguments);
    if violations.is_empty() {
        return Ok(());
    }
    Err(ToolError::new(
        codes::INVALID_ARGUMENTS,
        format!(
            "the arguments do not match the tool's schema: {}",
            violations.join("; ")
        ),
    ))
}
