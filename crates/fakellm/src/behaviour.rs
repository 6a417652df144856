//! Built-in behaviours used when no script is queued for a model. They are computed only from
//! the request's messages, never from server state, so a platform that restarts mid-run sees the
//! same answers it would have seen without the restart.
//!
//! Model-name grammar: `<behaviour>[+latency=<ms>][+chunk_delay=<ms>]`.
//! - `tool-loop-N`: call `calculator` until the conversation holds N tool results, then answer
//!   `done after N tool calls`.
//! - `capable-N` (N = 0, 1, 2: a model tier): answers `done by tier N` unless the last user
//!   message carries a marker `[needs:K]` with K > N, then declines ("I can't help with that").
//!   Routing benchmarks use it as a model that fails tasks above its tier.
//! - anything else (`echo`): compute with `calculator` when offered and the last user message
//!   holds an arithmetic expression, report a tool result, or echo the last user message.

use crate::reply::Reply;
use crate::request::{ChatView, role, text};
use serde_json::json;

/// The parsed model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModelSpec {
    pub(crate) behaviour: Behaviour,
    /// Delay before the response starts (`+latency=<ms>`).
    pub(crate) latency_ms: Option<u64>,
    /// Delay between stream chunks (`+chunk_delay=<ms>`).
    pub(crate) chunk_delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    ToolLoop(usize),
    Capable(u8),
    Echo,
}

impl ModelSpec {
    /// Parses a model name. Unknown modifiers are ignored, so model names stay forgiving.
    pub(crate) fn parse(model: &str) -> Self {
        let mut parts = model.split('+');
        let name = parts.next().unwrap_or("").trim();
        let behaviour =
            if let Some(n) = name.strip_prefix("tool-loop-").and_then(|n| n.parse().ok()) {
                Behaviour::ToolLoop(n)
            } else if let Some(n) = name.strip_prefix("capable-").and_then(|n| n.parse().ok()) {
                Behaviour::Capable(n)
            } else {
                Behaviour::Echo
            };
        let mut spec = Self {
            behaviour,
            latency_ms: None,
            chunk_delay_ms: None,
        };
        for modifier in parts {
            let Some((key, value)) = modifier.split_once('=') else {
                continue;
            };
            let Ok(ms) = value.trim().parse::<u64>() else {
                continue;
            };
            match key.trim() {
                "latency" => spec.latency_ms = Some(ms),
                "chunk_delay" => spec.chunk_delay_ms = Some(ms),
                _ => {}
            }
        }
        spec
    }
}

/// The reply a built-in behaviour gives to this request.
pub(crate) fn builtin_reply(behaviour: Behaviour, view: &ChatView<'_>) -> Reply {
    match behaviour {
        Behaviour::ToolLoop(n) => tool_loop(n, view),
        Behaviour::Capable(n) => capable(n, view),
        Behaviour::Echo => echo(view),
    }
}

fn capable(tier: u8, view: &ChatView<'_>) -> Reply {
    let messages = view.messages();
    let needs = messages
        .iter()
        .rev()
        .find(|message| role(message) == "user")
        .map(text)
        .and_then(|said| {
            let start = said.find("[needs:")? + "[needs:".len();
            said[start..].chars().next()?.to_digit(10)
        })
        .unwrap_or(0);
    if needs > u32::from(tier) {
        Reply::text("I can't help with that; it is beyond what I can do reliably.")
    } else {
        Reply::text(format!("done by tier {tier}"))
    }
}

fn tool_loop(n: usize, view: &ChatView<'_>) -> Reply {
    let results = view
        .messages()
        .iter()
        .filter(|message| role(message) == "tool")
        .count();
    if results < n {
        let k = results + 1;
        calculator(&format!("{k}+{k}"))
    } else {
        Reply::text(format!("done after {n} tool calls"))
    }
}

fn echo(view: &ChatView<'_>) -> Reply {
    let messages = view.messages();
    if let Some(last) = messages.last()
        && role(last) == "tool"
    {
        return Reply::text(format!("The answer is {}.", text(last)));
    }
    let last_user = messages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, message)| role(message) == "user");
    let Some((position, user)) = last_user else {
        return Reply::text("You said: ");
    };
    let said = text(user);
    let answered = messages[position + 1..]
        .iter()
        .any(|message| role(message) == "tool");
    if view.offers_tool("calculator")
        && !answered
        && let Some(expression) = find_expression(&said)
    {
        return calculator(&expression);
    }
    Reply::text(format!("You said: {said}"))
}

fn calculator(expression: &str) -> Reply {
    Reply::tool_call(
        "calculator",
        json!({ "expression": expression }).to_string(),
    )
}

fn is_expression_char(c: char) -> bool {
    c.is_ascii_digit() || " +-*/%^().".contains(c)
}

/// Finds the first run of digits and operators that holds at least `<digit> <op> <digit>`,
/// e.g. `6*7` in "what is 6*7?".
pub(crate) fn find_expression(text: &str) -> Option<String> {
    text.split(|c: char| !is_expression_char(c))
        .map(|run| {
            run.trim_start_matches(|c: char| !(c.is_ascii_digit() || c == '(' || c == '-'))
                .trim_end_matches(|c: char| !(c.is_ascii_digit() || c == ')'))
        })
        .find(|run| has_binary_operation(run))
        .map(str::to_string)
}

fn has_binary_operation(run: &str) -> bool {
    let compact: Vec<char> = run.chars().filter(|c| !c.is_whitespace()).collect();
    compact.windows(2).enumerate().any(|(i, pair)| {
        let seen_digit = compact[..=i].iter().any(char::is_ascii_digit);
        let operator = "+-*/%^".contains(pair[1]);
        let digit_follows = compact[i + 2..]
            .iter()
            .find(|c| **c != '(' && **c != '-')
            .is_some_and(char::is_ascii_digit);
        seen_digit && (pair[0].is_ascii_digit() || pair[0] == ')') && operator && digit_follows
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::reply::ReplyKind;
    use serde_json::{Value, json};

    fn reply_for(model: &str, body: Value) -> Reply {
        let spec = ModelSpec::parse(model);
        builtin_reply(spec.behaviour, &ChatView::new(&body))
    }

    fn text_of(reply: &Reply) -> &str {
        match &reply.kind {
            ReplyKind::Text { text, .. } => text,
            other => panic!("expected text, got {other:?}"),
        }
    }

    fn call_of(reply: &Reply) -> (&str, Value) {
        match &reply.kind {
            ReplyKind::ToolCalls { calls } if calls.len() == 1 => (
                &calls[0].name,
                serde_json::from_str(&calls[0].arguments).unwrap(),
            ),
            other => panic!("expected one tool call, got {other:?}"),
        }
    }

    const CALCULATOR: &str =
        r#"[{"type":"function","function":{"name":"calculator","parameters":{}}}]"#;

    fn tools() -> Value {
        serde_json::from_str(CALCULATOR).unwrap()
    }

    #[test]
    fn parses_model_names() {
        assert_eq!(
            ModelSpec::parse("tool-loop-3+latency=20+chunk_delay=5"),
            ModelSpec {
                behaviour: Behaviour::ToolLoop(3),
                latency_ms: Some(20),
                chunk_delay_ms: Some(5),
            }
        );
        assert_eq!(ModelSpec::parse("echo").behaviour, Behaviour::Echo);
        assert_eq!(ModelSpec::parse("gpt-4o").behaviour, Behaviour::Echo);
        assert_eq!(ModelSpec::parse("tool-loop-x").behaviour, Behaviour::Echo);
        let odd = ModelSpec::parse("echo+latency=abc+bogus+chunk_delay=7");
        assert_eq!(odd.latency_ms, None);
        assert_eq!(odd.chunk_delay_ms, Some(7));
    }

    #[test]
    fn tool_loop_calls_until_n_results_then_answers() {
        let first = reply_for(
            "tool-loop-2",
            json!({"messages": [{"role": "user", "content": "go"}]}),
        );
        assert_eq!(
            call_of(&first),
            ("calculator", json!({"expression": "1+1"}))
        );

        let second = reply_for(
            "tool-loop-2",
            json!({"messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "function": {"name": "calculator", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "2"}
            ]}),
        );
        assert_eq!(
            call_of(&second),
            ("calculator", json!({"expression": "2+2"}))
        );

        let done = reply_for(
            "tool-loop-2+latency=1",
            json!({"messages": [
                {"role": "user", "content": "go"},
                {"role": "tool", "content": "2"},
                {"role": "tool", "content": "4"}
            ]}),
        );
        assert_eq!(text_of(&done), "done after 2 tool calls");
    }

    #[test]
    fn echo_repeats_the_last_user_message() {
        let reply = reply_for(
            "echo",
            json!({"messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "hello there"}
            ]}),
        );
        assert_eq!(text_of(&reply), "You said: hello there");
    }

    #[test]
    fn echo_uses_the_calculator_only_when_offered() {
        let messages = json!([{"role": "user", "content": "what is 6*7?"}]);
        let with_tool = reply_for("echo", json!({"messages": messages, "tools": tools()}));
        assert_eq!(
            call_of(&with_tool),
            ("calculator", json!({"expression": "6*7"}))
        );
        let without = reply_for("echo", json!({"messages": messages}));
        assert_eq!(text_of(&without), "You said: what is 6*7?");
        let no_math = reply_for(
            "echo",
            json!({"messages": [{"role": "user", "content": "hi 42"}], "tools": tools()}),
        );
        assert_eq!(text_of(&no_math), "You said: hi 42");
    }

    #[test]
    fn echo_reports_a_tool_result() {
        let reply = reply_for(
            "echo",
            json!({"tools": tools(), "messages": [
                {"role": "user", "content": "what is 6*7?"},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "function": {"name": "calculator", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ]}),
        );
        assert_eq!(text_of(&reply), "The answer is 42.");

        // A tool result already answered the question, but the model spoke after it: echo.
        let after = reply_for(
            "echo",
            json!({"tools": tools(), "messages": [
                {"role": "user", "content": "what is 6*7?"},
                {"role": "tool", "content": "42"},
                {"role": "assistant", "content": "The answer is 42."}
            ]}),
        );
        assert_eq!(text_of(&after), "You said: what is 6*7?");
    }

    #[test]
    fn echo_without_user_message() {
        let reply = reply_for("echo", json!({"messages": []}));
        assert_eq!(text_of(&reply), "You said: ");
    }

    #[test]
    fn finds_arithmetic_expressions() {
        assert_eq!(find_expression("what is 6*7?").as_deref(), Some("6*7"));
        assert_eq!(
            find_expression("compute (2 + 3) * 4 please").as_deref(),
            Some("(2 + 3) * 4")
        );
        assert_eq!(find_expression("1.5 / -3").as_deref(), Some("1.5 / -3"));
        assert_eq!(find_expression("is 10 - 4 six").as_deref(), Some("10 - 4"));
        assert_eq!(find_expression("route 66"), None);
        assert_eq!(find_expression("a well-known thing"), None);
        assert_eq!(find_expression("-5"), None);
        assert_eq!(find_expression("3 +"), None);
        assert_eq!(find_expression(""), None);
    }

    #[test]
    fn capable_models_decline_tasks_above_their_tier() {
        assert_eq!(
            ModelSpec::parse("capable-1").behaviour,
            Behaviour::Capable(1)
        );
        let ask = |model: &str, said: &str| {
            reply_for(
                model,
                json!({"messages": [{"role": "user", "content": said}]}),
            )
        };
        assert_eq!(
            text_of(&ask("capable-0", "easy [needs:0]")),
            "done by tier 0"
        );
        assert_eq!(
            text_of(&ask("capable-2", "hard [needs:2]")),
            "done by tier 2"
        );
        assert!(text_of(&ask("capable-0", "hard [needs:2]")).starts_with("I can't help"));
        assert_eq!(text_of(&ask("capable-1", "no marker")), "done by tier 1");
    }
}
