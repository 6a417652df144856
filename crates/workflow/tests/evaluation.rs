//! The pure evaluation helpers.

use agentry_workflow::eval::{MAX_JQ_OUTPUTS, MAX_RENDERED_BYTES};
use agentry_workflow::{EvalError, eval_condition, eval_expression, render_template, run_jq};
use serde_json::json;

#[test]
fn conditions() {
    let state = json!({"verdict": {"ok": true}, "count": 3, "tags": ["a", "b"]});
    assert_eq!(eval_condition("verdict.ok", &state), Ok(true));
    assert_eq!(eval_condition("count > 5", &state), Ok(false));
    assert_eq!(
        eval_condition("'b' in tags and count == 3", &state),
        Ok(true)
    );
    // A missing key is falsy, not an error, so optional state can be tested.
    assert_eq!(eval_condition("missing", &state), Ok(false));
    assert_eq!(eval_condition("missing.deeper", &state), Ok(false));
    assert!(matches!(
        eval_condition("count ===", &state),
        Err(EvalError::Compile(_))
    ));
    assert!(matches!(
        eval_condition("count + 'x'", &state),
        Err(EvalError::Eval(_))
    ));
}

#[test]
fn expressions_give_json() {
    let ctx = json!({"input": {"langs": ["de", "fr"]}});
    assert_eq!(
        eval_expression("input.langs", &ctx),
        Ok(json!(["de", "fr"]))
    );
    assert_eq!(
        eval_expression("input.none | default([])", &ctx),
        Ok(json!([]))
    );
}

#[test]
fn templates() {
    let ctx = json!({"name": "Ada", "items": [1, 2, 3]});
    assert_eq!(
        render_template(
            "Hi {{ name }}: {% for i in items %}{{ i }}{% endfor %}",
            &ctx
        )
        .as_deref(),
        Ok("Hi Ada: 123")
    );
    assert_eq!(
        render_template("{{ items | tojson }}", &ctx).as_deref(),
        Ok("[1, 2, 3]")
    );
    // Printing an undefined value is an error rather than a silent empty string.
    assert!(matches!(
        render_template("{{ nope }}", &ctx),
        Err(EvalError::Eval(_))
    ));
}

#[test]
fn templates_are_sandboxed_and_bounded() {
    let ctx = json!({});
    // No loader: include/import cannot read files.
    assert!(render_template("{% include '/etc/passwd' %}", &ctx).is_err());
    assert!(render_template("{% import 'x.html' as x %}", &ctx).is_err());
    // Python-style escapes find nothing to escape into.
    assert!(render_template("{{ ''.__class__.__mro__ }}", &ctx).is_err());
    // Fuel stops runaway loops quickly.
    let started = std::time::Instant::now();
    let bomb = "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}";
    assert!(matches!(
        render_template(bomb, &ctx),
        Err(EvalError::Eval(_))
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Output is capped.
    let big = format!("{{{{ 'x' * {} }}}}", MAX_RENDERED_BYTES + 1);
    assert!(matches!(
        render_template(&big, &ctx),
        Err(EvalError::TooLarge { .. })
    ));
    // Recursion is capped.
    let rec = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    assert!(render_template(rec, &ctx).is_err());
}

#[test]
fn jq_basics() {
    let input = json!({"docs": [{"score": 1, "t": "a"}, {"score": 3, "t": "b"}]});
    assert_eq!(
        run_jq(".docs | sort_by(.score) | reverse | map(.t)", &input),
        Ok(vec![json!(["b", "a"])])
    );
    assert_eq!(
        run_jq(".docs[] | .score", &input),
        Ok(vec![json!(1), json!(3)])
    );
    assert_eq!(run_jq("empty", &input), Ok(vec![]));
    assert_eq!(
        run_jq("\"a,b\" | split(\",\")", &input),
        Ok(vec![json!(["a", "b"])])
    );
    assert_eq!(run_jq(".x // \"dflt\"", &input), Ok(vec![json!("dflt")]));
    assert!(matches!(
        run_jq("error(\"boom\")", &input),
        Err(EvalError::JqRun(_))
    ));
    assert!(matches!(
        run_jq(".a | (", &input),
        Err(EvalError::JqParse(_))
    ));
}

#[test]
fn jq_cannot_reach_outside() {
    let input = json!(null);
    for program in [
        "env",
        "$ENV",
        "now",
        "input",
        "inputs",
        "debug",
        "stderr",
        "halt",
        "halt_error",
        "localtime",
        "include \"etc/passwd\"; .",
        "import \"x\" as x; .",
    ] {
        assert!(
            matches!(run_jq(program, &input), Err(EvalError::JqParse(_))),
            "{program} should not compile"
        );
    }
}

#[test]
fn jq_output_is_bounded() {
    let input = json!(null);
    assert!(matches!(
        run_jq("repeat(1)", &input),
        Err(EvalError::TooLarge {
            limit: MAX_JQ_OUTPUTS,
            ..
        })
    ));
    assert!(matches!(
        run_jq("[range(200000)]", &input),
        Err(EvalError::TooLarge { unit: "bytes", .. })
    ));
}
