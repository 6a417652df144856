//! The `calculator` tool: evaluates an arithmetic expression with a real parser (no `eval`, no
//! code execution), so a model gets exact arithmetic instead of guessing.

mod error;
mod eval;
mod lexer;
mod parser;

pub use error::CalcError;
pub use parser::MAX_DEPTH;

use crate::codes;
use agentry_core::tool::{Tool, ToolContext, ToolError};
use serde::Deserialize;
use serde_json::{Value, json};

/// Longest expression accepted, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 1_000;

/// Evaluates `expression` to a finite number.
pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
    let len = expression.chars().count();
    if len > MAX_EXPRESSION_CHARS {
        return Err(CalcError::TooLong {
            len,
            max: MAX_EXPRESSION_CHARS,
        });
    }
    if expression.trim().is_empty() {
        return Err(CalcError::Empty);
    }
    let tokens = lexer::tokenize(expression)?;
    let tree = parser::parse(&tokens)?;
    eval::eval(&tree)
}

/// 2^53: up to here every whole f64 is an exactly representable integer.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Turns a result into a JSON number. Rounds to 15 significant digits first, which hides binary
/// floating-point noise (`0.1 + 0.2` gives `0.3`, not `0.30000000000000004`) while staying within
/// what an `f64` represents exactly; then writes whole numbers as integers (`4`, not `4.0`).
pub fn to_json_number(value: f64) -> Option<Value> {
    if !value.is_finite() {
        return None;
    }
    // Whole numbers are exact already; rounding them would damage 16-digit integers.
    let rounded = if value.fract() == 0.0 {
        value
    } else {
        format!("{value:.14e}").parse().unwrap_or(value)
    };
    // Adding 0.0 turns -0.0 into 0.0, so `-0` is never shown.
    let rounded = rounded + 0.0;
    if rounded.fract() == 0.0 && rounded.abs() <= MAX_EXACT_INTEGER {
        return Some(Value::from(rounded as i64));
    }
    serde_json::Number::from_f64(rounded).map(Value::Number)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CalculatorTool;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    expression: String,
}

#[async_trait::async_trait]
impl Tool for CalculatorTool {
    fn name(&self) -> &str {
        "calculator"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression exactly. Supports + - * / % (remainder), ^ or ** \
         (power, right-associative), unary minus, parentheses, decimals and scientific notation \
         (1e3), the constants pi and e, and the functions sqrt, abs, ln, log10, log (log(x) is \
         base 10, log(x, b) is base b), exp, sin, cos, tan (radians), floor, ceil, round, min and \
         max (any number of arguments). Returns {\"result\": number}."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The expression, e.g. \"(2 + 3) * sqrt(16) / 2^3\". At most 1000 characters."
                }
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    }

    async fn call(&self, arguments: Value, _context: &ToolContext) -> Result<Value, ToolError> {
        let args: Args = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new(codes::INVALID_ARGUMENTS, e.to_string()))?;
        let value =
            evaluate(&args.expression).map_err(|e| ToolError::new(e.code(), e.to_string()))?;
        let result = to_json_number(value).ok_or_else(|| {
            ToolError::new(codes::MATH_ERROR, "the result is not a finite number")
        })?;
        Ok(json!({ "result": result }))
    }
}

#[cfg(test)]
mod tests;
