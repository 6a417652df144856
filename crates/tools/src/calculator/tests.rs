//! Calculator behaviour: precedence, associativity, functions, errors and output format.

use super::*;

fn eval_ok(expr: &str) -> f64 {
    match evaluate(expr) {
        Ok(v) => v,
        Err(e) => panic!("{expr}: {e}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A tiny deterministic xorshift generator: property-style tests without an extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A small non-zero integer in -9..=9.
    fn operand(&mut self) -> f64 {
        let n = (self.next() % 9 + 1) as f64;
        if self.next().is_multiple_of(2) { n } else { -n }
    }
}

/// Writes a number so the parser reads it back as one operand (negatives in parentheses).
fn lit(n: f64) -> String {
    if n < 0.0 {
        format!("({n})")
    } else {
        format!("{n}")
    }
}

#[test]
fn basic_arithmetic() {
    let cases = [
        ("1 + 2", 3.0),
        ("7 - 10", -3.0),
        ("6 * 7", 42.0),
        ("7 / 2", 3.5),
        ("7 % 3", 1.0),
        ("-7 % 3", -1.0),
        ("2 ^ 10", 1024.0),
        ("2 ** 10", 1024.0),
        ("1.5e3 + .5", 1500.5),
        ("2.5E-1", 0.25),
        ("-(3)", -3.0),
        ("+3", 3.0),
        ("--3", 3.0),
        ("-+-3", 3.0),
        ("((((1))))", 1.0),
        ("  1\t+\n2 ", 3.0),
    ];
    for (expr, expected) in cases {
        assert!(close(eval_ok(expr), expected), "{expr}");
    }
}

#[test]
fn precedence_and_associativity() {
    let cases = [
        ("2 + 3 * 4", 14.0),
        ("(2 + 3) * 4", 20.0),
        ("10 - 4 - 3", 3.0),
        ("100 / 10 / 5", 2.0),
        ("2 * 3 % 4", 2.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("2 ** 3 ** 2", 512.0),
        ("(2 ^ 3) ^ 2", 64.0),
        ("-2 ^ 2", -4.0),
        ("(-2) ^ 2", 4.0),
        ("2 ^ -1", 0.5),
        ("2 ^ -1 ^ 2", 0.5),
        ("-2 * -3", 6.0),
        ("3 - -2", 5.0),
        ("2 * 3 ^ 2", 18.0),
        ("1 + 2 ^ 2 * 3", 13.0),
    ];
    for (expr, expected) in cases {
        assert!(close(eval_ok(expr), expected), "{expr}");
    }
}

#[test]
fn property_left_associative_operators() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..500 {
        let (a, b, c) = (rng.operand(), rng.operand(), rng.operand());
        let (la, lb, lc) = (lit(a), lit(b), lit(c));
        assert!(close(eval_ok(&format!("{la} - {lb} - {lc}")), (a - b) - c));
        assert!(close(eval_ok(&format!("{la} / {lb} / {lc}")), (a / b) / c));
        assert!(close(eval_ok(&format!("{la} % {lb} % {lc}")), (a % b) % c));
        assert!(close(eval_ok(&format!("{la} - {lb} + {lc}")), (a - b) + c));
        assert!(close(eval_ok(&format!("{la} / {lb} * {lc}")), (a / b) * c));
    }
}

#[test]
fn property_precedence_levels() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..500 {
        let (a, b, c) = (rng.operand(), rng.operand(), rng.operand());
        let (la, lb, lc) = (lit(a), lit(b), lit(c));
        assert!(close(eval_ok(&format!("{la} + {lb} * {lc}")), a + b * c));
        assert!(close(eval_ok(&format!("{la} * {lb} + {lc}")), a * b + c));
        assert!(close(eval_ok(&format!("{la} - {lb} / {lc}")), a - b / c));
        assert!(close(eval_ok(&format!("{la} * {lb} ^ 2")), a * b.powi(2)));
        assert!(close(eval_ok(&format!("-{} ^ 2", a.abs())), -(a * a)));
    }
}

#[test]
fn property_power_is_right_associative() {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..300 {
        let a = (rng.next() % 3 + 1) as f64;
        let b = (rng.next() % 3) as f64;
        let c = (rng.next() % 3) as f64;
        let got = eval_ok(&format!("{a} ^ {b} ^ {c}"));
        assert!(close(got, a.powf(b.powf(c))), "{a}^{b}^{c} = {got}");
        assert!(close(eval_ok(&format!("{a} ** {b} ** {c}")), got));
    }
}

#[test]
fn constants_and_functions() {
    let cases = [
        ("pi", std::f64::consts::PI),
        ("e", std::f64::consts::E),
        ("PI * 2", std::f64::consts::TAU),
        ("sqrt(16)", 4.0),
        ("abs(-2.5)", 2.5),
        ("ln(e)", 1.0),
        ("log10(1000)", 3.0),
        ("log(100)", 2.0),
        ("log(8, 2)", 3.0),
        ("exp(0)", 1.0),
        ("sin(pi / 2)", 1.0),
        ("cos(0)", 1.0),
        ("tan(0)", 0.0),
        ("floor(-2.5)", -3.0),
        ("ceil(2.1)", 3.0),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("min(3, 1, 2)", 1.0),
        ("max(3, 1, 2, 10 - 1)", 9.0),
        ("min(4)", 4.0),
        ("sqrt(abs(-9)) + max(1, min(5, 2))", 5.0),
    ];
    for (expr, expected) in cases {
        assert!(close(eval_ok(expr), expected), "{expr}");
    }
}

#[test]
fn syntax_errors_are_invalid_expression_with_position() {
    let cases = [
        ("", "empty"),
        ("   ", "empty"),
        ("1 +", "position 4"),
        ("1 + 2)", "position 6"),
        ("(1 + 2", "position 7"),
        ("2 3", "position 3"),
        ("2e", "position 2"),
        ("foo(1)", "unknown identifier 'foo'"),
        ("x + 1", "position 1"),
        ("1 $ 2", "unexpected character '$' at position 3"),
        ("sqrt", "position 1"),
        ("max(1,)", "position 7"),
        ("log(1, 2, 3)", "position 1"),
        ("* 2", "position 1"),
    ];
    for (expr, needle) in cases {
        let err = evaluate(expr).expect_err(expr);
        assert_eq!(err.code(), codes::INVALID_EXPRESSION, "{expr}: {err}");
        assert!(err.to_string().contains(needle), "{expr}: {err}");
    }
}

#[test]
fn math_errors() {
    let cases = [
        ("1 / 0", "division by zero at position 3"),
        ("5 % (2 - 2)", "division by zero at position 3"),
        ("1 / (0 * 5)", "division by zero"),
        ("sqrt(-1)", "square root of a negative number"),
        ("ln(0)", "non-positive"),
        ("log10(-1)", "non-positive"),
        ("log(8, 1)", "base"),
        ("10 ^ 400", "not a finite number"),
        ("exp(1000)", "exp() is not a finite number"),
        ("1e308 * 10", "'*' is not a finite number at position 7"),
        ("1e999", "too large"),
        ("(-8) ^ 0.5", "not a finite number"),
    ];
    for (expr, needle) in cases {
        let err = evaluate(expr).expect_err(expr);
        assert_eq!(err.code(), codes::MATH_ERROR, "{expr}: {err}");
        assert!(err.to_string().contains(needle), "{expr}: {err}");
    }
}

#[test]
fn syntax_errors_win_over_math_errors() {
    let err = evaluate("1 / 0 +").expect_err("invalid");
    assert_eq!(err.code(), codes::INVALID_EXPRESSION);
}

#[test]
fn limits_on_length_and_depth() {
    let long = format!("1{}", "+1".repeat(500));
    assert_eq!(
        evaluate(&long),
        Err(CalcError::TooLong {
            len: 1001,
            max: MAX_EXPRESSION_CHARS
        })
    );
    // Just under the limit: a long flat sum is fine (it is not nesting).
    let flat = format!("1{}", "+1".repeat(499));
    assert_eq!(evaluate(&flat), Ok(500.0));

    let deep = format!("{}1{}", "(".repeat(65), ")".repeat(65));
    let err = evaluate(&deep).expect_err("too deep");
    assert_eq!(err.code(), codes::INVALID_EXPRESSION);
    assert!(err.to_string().contains("position 65"), "{err}");
    let ok = format!("{}1{}", "(".repeat(64), ")".repeat(64));
    assert_eq!(evaluate(&ok), Ok(1.0));
}

#[test]
fn json_numbers_hide_float_noise_and_show_integers_plainly() {
    assert_eq!(to_json_number(4.0), Some(json!(4)));
    assert_eq!(to_json_number(-0.0), Some(json!(0)));
    assert_eq!(to_json_number(0.1 + 0.2), Some(json!(0.3)));
    assert_eq!(to_json_number(1.1 * 1000.0), Some(json!(1100)));
    assert_eq!(to_json_number(3.5), Some(json!(3.5)));
    assert_eq!(
        to_json_number(9_007_199_254_740_991.0),
        Some(json!(9_007_199_254_740_991_i64))
    );
    assert_eq!(to_json_number(1e20), Some(json!(1e20)));
    assert_eq!(to_json_number(f64::NAN), None);
    assert_eq!(
        to_json_number(1.0 / 3.0),
        Some(json!(0.333_333_333_333_333))
    );
}

#[tokio::test]
async fn tool_call_returns_result_object() {
    let ctx = ToolContext {
        idempotency_key: "k".into(),
    };
    let tool = CalculatorTool;
    assert_eq!(
        tool.call(json!({"expression": "2 + 3 * 4"}), &ctx).await,
        Ok(json!({"result": 14}))
    );
    assert_eq!(
        tool.call(json!({"expression": "7 / 2"}), &ctx).await,
        Ok(json!({"result": 3.5}))
    );
    let err = tool
        .call(json!({"expression": "1/0"}), &ctx)
        .await
        .expect_err("division by zero");
    assert_eq!(err.code, codes::MATH_ERROR);
    assert!(err.message.contains("position 2"), "{}", err.message);
    let err = tool
        .call(json!({"expr": "1"}), &ctx)
        .await
        .expect_err("wrong field");
    assert_eq!(err.code, codes::INVALID_ARGUMENTS);
}
