#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn ask(text: &str) -> RouteInput {
    RouteInput {
        messages: vec![Message::new("user", text)],
        tool_count: 0,
    }
}

fn route(text: &str) -> RouteDecision {
    classify(&ask(text), &RouterRules::default())
}

fn has_reason(d: &RouteDecision, prefix: &str) -> bool {
    d.reasons.iter().any(|r| r.contains(prefix))
}

#[test]
fn tiers_are_ordered_and_escalate_one_step() {
    assert!(Tier::Fast < Tier::Standard && Tier::Standard < Tier::Premium);
    assert_eq!(Tier::Fast.next(), Some(Tier::Standard));
    assert_eq!(Tier::Standard.next(), Some(Tier::Premium));
    assert_eq!(Tier::Premium.next(), None);
    assert_eq!(
        serde_json::to_string(&Tier::Premium).unwrap(),
        "\"premium\""
    );
    assert_eq!(
        serde_json::from_str::<Tier>("\"standard\"").unwrap(),
        Tier::Standard
    );
}

#[test]
fn escalation_depends_on_the_reason() {
    assert_eq!(
        escalate(Tier::Fast, EscalationReason::InvalidOutput),
        Some(Tier::Standard)
    );
    assert_eq!(
        escalate(Tier::Standard, EscalationReason::BadToolCall),
        Some(Tier::Premium)
    );
    assert_eq!(escalate(Tier::Premium, EscalationReason::Refusal), None);
    // A bigger model does not fix a rate limit or an outage.
    assert_eq!(escalate(Tier::Fast, EscalationReason::Transient), None);
}

#[test]
fn trivial_requests_stay_fast() {
    for text in [
        "",
        "What is the capital of France?",
        "Write a haiku about rain.",
    ] {
        let d = route(text);
        assert_eq!(d.tier, Tier::Fast, "{text}: {d:?}");
        assert_eq!(d.score, 0.0);
        assert!(d.reasons.is_empty());
    }
}

#[test]
fn length_counts_every_message() {
    let rules = RouterRules::default();
    let long = "word ".repeat(600); // 3,000 chars
    let d = classify(&ask(&long), &rules);
    assert_eq!(d.tier, Tier::Standard);
    assert!(has_reason(&d, "long context: 3000 chars"), "{d:?}");
    // Split across a system prompt and the question, the total still counts.
    let input = RouteInput {
        messages: vec![
            Message::new("system", "word ".repeat(300)),
            Message::new("user", "word ".repeat(300)),
        ],
        tool_count: 0,
    };
    assert!(has_reason(&classify(&input, &rules), "long context"));
    let d = classify(&ask(&"word ".repeat(4_000)), &rules);
    assert!(has_reason(&d, "very long context"), "{d:?}");
    assert!(!has_reason(&d, "+2.0 long context"));
}

#[test]
fn tools_offered_raise_the_tier() {
    let rules = RouterRules::default();
    let with = |n| RouteInput {
        tool_count: n,
        ..ask("Do it.")
    };
    assert_eq!(classify(&with(1), &rules).score, 0.5);
    assert_eq!(classify(&with(3), &rules).tier, Tier::Standard);
    let d = classify(&with(9), &rules);
    assert_eq!(d.score, 3.0);
    assert!(has_reason(&d, "tools: 9 offered"));
}

#[test]
fn code_signals() {
    let d = route("What does this print?\n```\nx = 1\n```");
    assert_eq!(d.tier, Tier::Standard);
    assert!(has_reason(&d, "fenced block"), "{d:?}");
    let d = route("why is const f = (a) => a.b::c(); wrong");
    assert!(has_reason(&d, "syntax"), "{d:?}");
    let d = route("Write a bash script to rotate logs");
    assert!(
        has_reason(&d, "code: script, bash") || has_reason(&d, "bash"),
        "{d:?}"
    );
    // One code signal or three: the weight is added once.
    let d = route("```python\ndef f(): return 1\n```\nrefactor this python function");
    assert_eq!(d.score, 2.0, "{d:?}");
    let d = route("Explain the race condition in this deadlock");
    assert!(has_reason(&d, "hard systems topic"), "{d:?}");
}

#[test]
fn maths_signals_take_the_strongest_category() {
    let d = route("Prove that the sum of two even numbers is even.");
    assert_eq!(d.tier, Tier::Premium, "{d:?}");
    assert!(has_reason(&d, "+5.0 proof: prove"));
    let d = route("Solve for x: 2x + 3 = 11");
    assert_eq!(d.tier, Tier::Standard, "{d:?}");
    assert!(
        has_reason(&d, "+2.0 basic maths: solve for, equation syntax"),
        "{d:?}"
    );
    let d = route("Compute the integral of x^2 and check the equation");
    assert!(has_reason(&d, "+3.5 advanced maths: integral*"), "{d:?}");
    assert!(
        has_reason(&d, "+1.0 maths combined with basic maths"),
        "{d:?}"
    );
    // Whole words only: proofreading is not a proof, `x^` in prose-free text is an exponent.
    assert_eq!(route("Please proofread my letter.").tier, Tier::Fast);
    assert!(has_equation("e^(-x)") && has_equation("a = b") && !has_equation("a=b or ^^"));
}

#[test]
fn reasoning_markers_are_capped() {
    let d = route("Compare the options.");
    assert_eq!(d.score, 1.0);
    assert_eq!(d.tier, Tier::Fast);
    let d = route(
        "Analyze, compare and evaluate the design; plan step by step and justify the strategy.",
    );
    assert_eq!(d.score, 3.0, "{d:?}");
    assert!(has_reason(
        &d,
        "reasoning: step by step, analy*, compar*, plan"
    ));
}

#[test]
fn multi_step_requests() {
    let d = route("Fetch the file, then parse it, then email me the totals.");
    assert!(
        has_reason(&d, "multi-step request: 2 step markers"),
        "{d:?}"
    );
    let d = route("Do this:\n1. fetch\n2. parse\n3. email");
    assert!(has_reason(&d, "multi-step request: 3"), "{d:?}");
    assert!(!has_reason(&route("Fetch it then stop."), "multi-step"));
}

#[test]
fn depth_counts_user_turns_and_markers_read_the_latest_request() {
    let mut messages = Vec::new();
    for i in 0..7 {
        messages.push(Message::new("user", format!("```\ncode {i}\n```")));
        messages.push(Message::new("assistant", "ok"));
    }
    messages.push(Message::new("user", "thanks, and the capital of Peru?"));
    let d = classify(
        &RouteInput {
            messages,
            tool_count: 0,
        },
        &RouterRules::default(),
    );
    assert!(has_reason(&d, "conversation: 8 user turns"), "{d:?}");
    // The earlier code blocks were routed when they were asked.
    assert!(!has_reason(&d, "code"), "{d:?}");
    assert_eq!(d.tier, Tier::Fast);
}

#[test]
fn markers_match_words_and_prefixes() {
    let n = normalise("Step-by-step: ANALYSIS of trade-offs!");
    assert_eq!(n, " step by step analysis of trade offs ");
    let list = strings(&["step by step", "analy*", "trade off*", "sis", "plan"]);
    assert_eq!(
        found(&n, &list),
        vec!["step by step", "analy*", "trade off*"]
    );
}

#[test]
fn rules_are_configurable_and_validated() {
    let rules: RouterRules =
        serde_json::from_str(r#"{"premium_at": 3.0, "markers": {"proof": ["show that"]}}"#)
            .unwrap();
    assert_eq!(rules.standard_at, 2.0);
    assert!(rules.validate().is_ok());
    let d = classify(&ask("Show that 7 is prime"), &rules);
    assert_eq!(d.tier, Tier::Premium, "{d:?}");
    // Unnamed lists keep their defaults.
    assert!(rules.markers.reasoning.contains(&"plan".to_owned()));

    assert!(serde_json::from_str::<RouterRules>(r#"{"premium": 3}"#).is_err());
    let bad = |json: &str| {
        serde_json::from_str::<RouterRules>(json)
            .unwrap()
            .validate()
            .unwrap_err()
    };
    assert_eq!(bad(r#"{"standard_at": 6.0}"#), RulesError::ThresholdOrder);
    assert_eq!(
        bad(r#"{"code_weight": -1.0}"#),
        RulesError::InvalidNumber {
            field: "code_weight"
        }
    );
    assert_eq!(
        bad(r#"{"long_chars": 20000}"#),
        RulesError::BoundOrder {
            field: "long_chars"
        }
    );
    assert_eq!(
        bad(r#"{"markers": {"maths": ["ok", " - "]}}"#),
        RulesError::EmptyMarker {
            list: "maths",
            index: 1
        }
    );
    assert_eq!(
        RulesError::EmptyMarker {
            list: "maths",
            index: 1
        }
        .to_string(),
        "markers.maths[1]: a marker needs at least one letter or digit"
    );
}

#[test]
fn decisions_serialize_for_the_trace() {
    let d = route("Prove it.");
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["tier"], "premium");
    assert_eq!(v["reasons"][0], "+5.0 proof: prove");
}
