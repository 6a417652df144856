//! JSON Schema checks shared by tool arguments and agents' structured output: compile once,
//! report a few readable violations (path + reason) rather than the whole offending value.

use serde_json::Value;

pub use jsonschema::Validator;

const MAX_REPORTED_VIOLATIONS: usize = 5;

/// Compiles a schema; the error says why it is not a usable JSON Schema.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

/// At most five violations of `value` (then "and N more"); empty when it matches.
pub fn violations(validator: &Validator, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0;
    for error in validator.iter_errors(value) {
        total += 1;
        if out.len() < MAX_REPORTED_VIOLATIONS {
            let path = error.instance_path().as_str();
            let path = if path.is_empty() { "/" } else { path };
            out.push(format!("at {path}: {}", shorten(&error.to_string())));
        }
    }
    if total > out.len() {
        out.push(format!("and {} more", total - out.len()));
    }
    out
}

/// Validation messages quote the offending value, which can be a whole request body.
fn shorten(message: &str) -> String {
    const LIMIT: usize = 200;
    if message.chars().count() <= LIMIT {
        return message.to_string();
    }
    let cut: String = message.chars().take(LIMIT).collect();
    format!("{cut}…")
}
