//! Pseudo-random inputs mixing multi-byte characters with the bytes the detectors care about:
//! nothing panics, findings are sorted, non-overlapping and on char boundaries, and redaction /
//! image stripping only ever remove or replace text.

use agentry_guardrails::{
    GuardrailPolicy, PiiKind, find_pii, injection_score, redact, strip_untrusted_images,
};

const POOL: &[&str] = &[
    "a",
    "Z",
    "0",
    "4",
    "9",
    " ",
    "-",
    ".",
    ":",
    "@",
    "+",
    "(",
    ")",
    "[",
    "]",
    "!",
    "\\",
    "\"",
    "'",
    "\n",
    "é",
    "€",
    "😀",
    "\u{200B}",
    "\u{200D}",
    "\u{E0041}",
    "\u{FEFF}",
    "“",
    "”",
    "sk-",
    "ghp_",
    "AKIA",
    "DE89",
    "4111",
    "https://",
    "evil.example",
    "?q=",
    "![",
    "](",
    "<img src=",
    "ignore previous instructions",
    "-----BEGIN PRIVATE KEY-----",
    "::",
    "192.168.",
];

fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn random_inputs_are_handled() {
    let policy: GuardrailPolicy = serde_json::from_str(
        r#"{"input": {"injection": {"action": "redact", "threshold": 0.2},
                      "blocked_topics": [{"name": "t", "patterns": ["ignore", "\\d+"], "action": "redact"}],
                      "max_chars": {"limit": 40, "action": "redact"}},
            "output": {"pii": {"default_action": "redact"}, "images": {"allow_hosts": ["cdn.example.com"]}},
            "tool_results": {"injection": {"action": "redact", "threshold": 0.2}}}"#,
    )
    .expect("policy parses");
    let policy = policy.validate().expect("policy validates");
    let mut state = 0x5eed_u64;
    for _ in 0..3000 {
        let len = (next(&mut state) % 60) as usize;
        let mut text = String::new();
        for _ in 0..len {
            text.push_str(POOL[(next(&mut state) as usize) % POOL.len()]);
        }
        let findings = find_pii(&text);
        let mut last_end = 0;
        for f in &findings {
            assert!(
                f.start >= last_end && f.start < f.end,
                "{text:?} {findings:?}"
            );
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            last_end = f.end;
        }
        let redacted = redact(&text, PiiKind::ALL);
        assert_eq!(findings.is_empty(), redacted == text, "{text:?}");
        let v = injection_score(&text);
        assert!((0.0..=1.0).contains(&v.score));
        assert_eq!(v.flagged, v.score >= agentry_guardrails::FLAG_THRESHOLD);
        let stripped = strip_untrusted_images(&text, &["cdn.example.com"]);
        assert!(stripped.len() <= text.len());
        // Policies splice placeholders into the text at detector offsets: no panic, and the
        // tool-result wrapper always ends with the one real closing delimiter.
        let input = policy.check_input(&text);
        assert!(!input.blocked);
        let output = policy.check_output(&text);
        assert_eq!(output.events.is_empty(), output.text == text, "{text:?}");
        let tool = policy.check_tool_result("t", &text);
        assert_eq!(
            tool.text.matches("</untrusted_data>").count(),
            1,
            "{text:?}"
        );
    }
}
