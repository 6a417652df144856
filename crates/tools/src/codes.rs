//! The `ToolError::code` values this crate produces. Kept as constants so the engine, tests and
//! docs spell them the same way; they are part of what the model sees.

/// The arguments are not valid JSON or do not match the tool's schema.
pub const INVALID_ARGUMENTS: &str = "invalid_arguments";
/// No tool with that name is registered.
pub const UNKNOWN_TOOL: &str = "unknown_tool";
/// `calculator`: the expression does not parse (or is too long / too deeply nested).
pub const INVALID_EXPRESSION: &str = "invalid_expression";
/// `calculator`: the expression parses but has no finite value (division by zero, overflow…).
pub const MATH_ERROR: &str = "math_error";
/// `current_time`: the time zone is not an IANA name.
pub const INVALID_TIMEZONE: &str = "invalid_timezone";
/// The URL's host or one of its addresses is in a refused range.
pub const BLOCKED_ADDRESS: &str = "blocked_address";
/// The URL does not parse, has a refused scheme, no host, or embedded credentials.
pub const INVALID_URL: &str = "invalid_url";
/// More redirects than the configured maximum (redirect loops end here too).
pub const TOO_MANY_REDIRECTS: &str = "too_many_redirects";
/// The request did not finish within the configured total timeout.
pub const TIMEOUT: &str = "timeout";
/// The request could not be made or completed (DNS, connect, TLS, protocol errors).
pub const REQUEST_FAILED: &str = "request_failed";
