//! Pure evaluation helpers for the future executor: minijinja conditions and templates, and jq.
//!
//! Nothing here performs I/O. The minijinja environment has no loader (so `include`, `import`
//! and `extends` cannot reach a filesystem), runs on a fuel budget and a recursion limit, and
//! rendered output is capped. jq programs get the standard library minus the filters that
//! reach outside their input (`env`, `$ENV`, `now`, local time, `input`/`inputs`,
//! `debug`/`stderr`, `halt`); module loading has no file reader.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Instructions a single template render or expression evaluation may spend. Generous for real
/// templates, small enough that `{% for %}` bombs stop in milliseconds.
pub const TEMPLATE_FUEL: u64 = 100_000;
/// Nesting depth for macros, includes and nested data walks.
pub const TEMPLATE_RECURSION_LIMIT: usize = 64;
/// Largest rendered template, in bytes. State is persisted in the journal, so outputs stay small.
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;
/// Most values a jq program may emit.
pub const MAX_JQ_OUTPUTS: usize = 10_000;
/// Largest total serialized size of a jq program's outputs, in bytes.
pub const MAX_JQ_OUTPUT_BYTES: usize = 1024 * 1024;

/// Why an evaluation failed. Messages are meant for the workflow author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("does not compile: {0}")]
    Compile(String),
    #[error("evaluation failed: {0}")]
    Eval(String),
    #[error("jq program does not parse: {0}")]
    JqParse(String),
    #[error("jq program failed: {0}")]
    JqRun(String),
    #[error("output exceeds the limit of {limit} {unit}")]
    TooLarge { limit: usize, unit: &'static str },
}

/// The one way this crate builds a minijinja environment, for validation and evaluation alike,
/// so that what validates is exactly what will later run.
pub(crate) fn sandbox() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION_LIMIT);
    // Printing an undefined value is an author error worth failing on; testing one in `if`
    // stays false so optional state keys can be checked.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env
}

/// Conditions and expressions test optional state (`verdict.ok` before `verdict` exists), so
/// undefined values chain and are falsy there instead of failing the step.
fn expression_sandbox() -> Environment<'static> {
    let mut env = sandbox();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env
}

fn context(ctx: &Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(ctx))
}

fn jinja_err(e: &minijinja::Error) -> String {
    // `Display` of minijinja errors omits the detail; include it when present.
    match e.detail() {
        Some(detail) => format!("{e}: {detail}"),
        None => e.to_string(),
    }
}

/// Compiles a minijinja expression without evaluating it.
pub fn check_expression(expr: &str) -> Result<(), EvalError> {
    let env = sandbox();
    env.compile_expression(expr)
        .map(|_| ())
        .map_err(|e| EvalError::Compile(jinja_err(&e)))
}

/// Compiles a minijinja template without rendering it.
pub fn check_template(tpl: &str) -> Result<(), EvalError> {
    let env = sandbox();
    env.template_from_str(tpl)
        .map(|_| ())
        .map_err(|e| EvalError::Compile(jinja_err(&e)))
}

/// Evaluates a minijinja expression against `ctx` (an object's keys become variables) and
/// returns its truthiness, as in `{% if %}`.
pub fn eval_condition(expr: &str, ctx: &Value) -> Result<bool, EvalError> {
    Ok(eval_jinja(expr, ctx)?.is_true())
}

/// Compiles and evaluates one expression in the sandbox.
fn eval_jinja(expr: &str, ctx: &Value) -> Result<minijinja::Value, EvalError> {
    let env = expression_sandbox();
    let compiled = env
        .compile_expression(expr)
        .map_err(|e| EvalError::Compile(jinja_err(&e)))?;
    compiled
        .eval(context(ctx))
        .map_err(|e| EvalError::Eval(jinja_err(&e)))
}

/// Evaluates a minijinja expression to JSON (used for `map.items` and `wait.until_expr`).
pub fn eval_expression(expr: &str, ctx: &Value) -> Result<Value, EvalError> {
    let value = eval_jinja(expr, ctx)?;
    serde_json::to_value(&value).map_err(|e| EvalError::Eval(e.to_string()))
}

/// Renders a minijinja template against `ctx`, refusing output larger than
/// [`MAX_RENDERED_BYTES`].
pub fn render_template(tpl: &str, ctx: &Value) -> Result<String, EvalError> {
    let env = sandbox();
    let template = env
        .template_from_str(tpl)
        .map_err(|e| EvalError::Compile(jinja_err(&e)))?;
    let out = template
        .render(context(ctx))
        .map_err(|e| EvalError::Eval(jinja_err(&e)))?;
    if out.len() > MAX_RENDERED_BYTES {
        return Err(EvalError::TooLarge {
            limit: MAX_RENDERED_BYTES,
            unit: "bytes",
        });
    }
    Ok(out)
}

type D = data::JustLut<Val>;

/// Native jq filters that observe or affect the world outside their input: the process
/// environment, the clock, the local time zone (read from the system), stderr and the log,
/// and process exit. A workflow step must be a pure function of the state so that replaying
/// the journal gives the same result.
const DENIED_FUNS: &[&str] = &[
    "env",
    "now",
    "localtime",
    "strflocaltime",
    "debug_empty",
    "stderr_empty",
    "halt",
];
/// Library definitions built on the denied natives; loading them would fail to compile.
const DENIED_DEFS: &[&str] = &["stderr", "debug", "halt", "halt_error"];

fn compile_jq(program: &str) -> Result<jaq_core::Filter<D>, EvalError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .filter(|d| !DENIED_DEFS.contains(&d.name));
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|f| !DENIED_FUNS.contains(&f.0));
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let file = File {
        code: program,
        path: (),
    };
    let modules = loader
        .load(&arena, file)
        .map_err(|errs| EvalError::JqParse(format!("{errs:?}")))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| EvalError::JqParse(format!("{errs:?}")))
}

/// Parses and compiles a jq program without running it.
pub fn check_jq(program: &str) -> Result<(), EvalError> {
    compile_jq(program).map(|_| ())
}

/// Compiled programs kept per thread: compiling means loading jq's standard library, which
/// costs far more than running a small program, and a workflow runs the same programs again
/// and again. Bounded; cleared when full.
const JQ_CACHE_SIZE: usize = 512;

thread_local! {
    static JQ_CACHE: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<jaq_core::Filter<D>>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn cached_jq(program: &str) -> Result<std::rc::Rc<jaq_core::Filter<D>>, EvalError> {
    if let Some(hit) = JQ_CACHE.with(|c| c.borrow().get(program).cloned()) {
        return Ok(hit);
    }
    let filter = std::rc::Rc::new(compile_jq(program)?);
    JQ_CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= JQ_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(program.to_owned(), filter.clone());
    });
    Ok(filter)
}

/// Runs a jq program on `input` and collects its outputs, at most [`MAX_JQ_OUTPUTS`] values and
/// [`MAX_JQ_OUTPUT_BYTES`] bytes of JSON. jq has no fuel: the caller must still bound wall time
/// (run it on a blocking thread under the node's timeout).
pub fn run_jq(program: &str, input: &Value) -> Result<Vec<Value>, EvalError> {
    let filter = cached_jq(program)?;
    // jaq has its own value type; JSON text is the lossless bridge that needs no extra features.
    let text = input.to_string();
    let input = jaq_json::read::parse_single(text.as_bytes())
        .map_err(|e| EvalError::JqRun(format!("input: {e:?}")))?;
    let ctx = Ctx::<D>::new(&filter.lut, Vars::new([]));
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in filter.id.run((ctx, input)).map(jaq_core::unwrap_valr) {
        let val = item.map_err(|e| EvalError::JqRun(e.to_string()))?;
        if out.len() >= MAX_JQ_OUTPUTS {
            return Err(EvalError::TooLarge {
                limit: MAX_JQ_OUTPUTS,
                unit: "values",
            });
        }
        let json = val.to_string();
        bytes = bytes.saturating_add(json.len());
        if bytes > MAX_JQ_OUTPUT_BYTES {
            return Err(EvalError::TooLarge {
                limit: MAX_JQ_OUTPUT_BYTES,
                unit: "bytes",
            });
        }
        let value = serde_json::from_str(&json)
            .map_err(|e| EvalError::JqRun(format!("output {json} is not JSON: {e}")))?;
        out.push(value);
    }
    Ok(out)
}

/// Renders a JSON value whose string leaves may be templates. A string that is exactly one
/// `{{ expression }}` keeps the expression's JSON type (a number stays a number, an object an
/// object); any other string with template syntax renders to a string; the rest is unchanged.
pub fn render_value(value: &Value, ctx: &Value) -> Result<Value, EvalError> {
    match value {
        Value::String(s) => render_string(s, ctx),
        Value::Array(items) => items
            .iter()
            .map(|v| render_value(v, ctx))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| render_value(v, ctx).map(|v| (k.clone(), v)))
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

fn render_string(s: &str, ctx: &Value) -> Result<Value, EvalError> {
    if !s.contains("{{") && !s.contains("{%") {
        return Ok(Value::String(s.to_owned()));
    }
    let trimmed = s.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
    {
        return eval_expression(inner.trim(), ctx);
    }
    render_template(s, ctx).map(Value::String)
}

#[cfg(test)]
mod render_value_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_expressions_keep_their_type_and_mixed_text_renders() {
        let ctx = json!({"input": {"n": 2, "tags": ["a"]}, "name": "x"});
        let rendered = render_value(
            &json!({"n": "{{ input.n }}", "tags": "{{ input.tags }}", "s": "hi {{ name }}", "k": 1}),
            &ctx,
        )
        .unwrap_or_default();
        assert_eq!(
            rendered,
            json!({"n": 2, "tags": ["a"], "s": "hi x", "k": 1})
        );
    }
}
