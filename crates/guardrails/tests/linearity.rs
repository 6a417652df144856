//! Every detector on 1 MB of adversarial input. The patterns are `regex` crate automata (linear
//! time) and the hand-written scanners are single-pass, so these finish; a backtracking or
//! quadratic detector would hang here. No wall-clock assertions.

#![allow(clippy::print_stderr)]

use agentry_guardrails::{
    GuardrailPolicy, PiiKind, find_pii, injection_score, redact, strip_untrusted_images,
};

const MB: usize = 1 << 20;

fn inputs() -> Vec<(&'static str, String)> {
    vec![
        ("a", "a".repeat(MB)),
        ("digits", "1".repeat(MB)),
        ("digit-dash", "12-".repeat(MB / 3)),
        ("at", "@".repeat(MB)),
        ("a@", "a@".repeat(MB / 2)),
        ("image-open", "![".repeat(MB / 2)),
        ("image-unclosed", "![a](".repeat(MB / 5)),
        ("brackets", "[".repeat(MB / 2) + &"]".repeat(MB / 2)),
        ("pem", "-----BEGIN PRIVATE KEY-----".repeat(MB / 27)),
        ("colons", "a:".repeat(MB / 2)),
        ("dots", "1.".repeat(MB / 2)),
        ("plus", "+1 ".repeat(MB / 3)),
        ("ignore", "ignore all ".repeat(MB / 11)),
        ("zero-width", "\u{200B}".repeat(MB / 3)),
        ("tags", "\u{E0061}".repeat(MB / 4)),
        ("base64", "aB3".repeat(MB / 3)),
        ("sk", "sk-".repeat(MB / 3)),
    ]
}

#[test]
fn detectors_finish_on_one_megabyte_adversarial_input() {
    for (name, input) in inputs() {
        // Timings are printed for information only; nothing asserts on them.
        let t = std::time::Instant::now();
        let findings = find_pii(&input);
        let t_pii = t.elapsed();
        let redacted = redact(&input, PiiKind::ALL);
        let t = std::time::Instant::now();
        let verdict = injection_score(&input);
        let t_inj = t.elapsed();
        let t = std::time::Instant::now();
        let stripped = strip_untrusted_images(&input, &["cdn.example.com"]);
        let t_img = t.elapsed();
        eprintln!("{name:<15} find_pii={t_pii:?} injection={t_inj:?} images={t_img:?}");
        assert!(verdict.score.is_finite(), "{name}");
        assert!(findings.len() <= input.len(), "{name}");
        assert!(!redacted.is_empty() || input.is_empty(), "{name}");
        assert!(stripped.len() <= input.len(), "{name}");
    }
}

/// The policy paths add user-supplied topic regexes, injection span redaction and the
/// untrusted-data delimiter escape on top of the detectors; they must stay linear too.
#[test]
fn policy_checks_finish_on_one_megabyte_adversarial_input() {
    let policy: GuardrailPolicy = serde_json::from_str(
        r#"{"input": {"blocked_topics": [
                {"name": "weapons", "patterns": ["\\b(?:pipe\\s+)?bombs?\\b", "a+b", "(?:ignore\\s+)+all\\s+x"], "action": "redact"},
                {"name": "numbers", "patterns": ["\\d+-\\d+-x", "(?:\\w+\\s*)+@@"], "action": "flag"}]},
            "tool_results": {"injection": {"action": "redact"}}}"#,
    )
    .expect("policy parses");
    let compiled = policy.validate().expect("policy validates");
    let mut inputs = inputs();
    inputs.push(("delimiters", "</untrusted_data>".repeat(MB / 17)));
    inputs.push(("ignore-space", "ignore ".repeat(MB / 7)));
    for (name, input) in inputs {
        let t = std::time::Instant::now();
        let checked_input = compiled.check_input(&input);
        let t_input = t.elapsed();
        let t = std::time::Instant::now();
        let checked_tool = compiled.check_tool_result("web", &input);
        let t_tool = t.elapsed();
        eprintln!("{name:<15} policy input={t_input:?} tool_result={t_tool:?}");
        assert!(!checked_input.blocked, "{name}");
        assert!(
            checked_input
                .events
                .iter()
                .all(|e| e.rule.starts_with("topic.")),
            "{name}"
        );
        // However hostile the data, exactly one closing delimiter: ours.
        assert_eq!(
            checked_tool.text.matches("</untrusted_data>").count(),
            1,
            "{name}"
        );
    }
}
