//! A read-only view of an incoming chat-completions body. The fake accepts any JSON and reads it
//! leniently, because the point is to exercise clients, not to validate them.

use serde_json::Value;

pub(crate) struct ChatView<'a> {
    body: &'a Value,
}

impl<'a> ChatView<'a> {
    pub(crate) fn new(body: &'a Value) -> Self {
        Self { body }
    }

    pub(crate) fn messages(&self) -> &'a [Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub(crate) fn stream(&self) -> bool {
        self.body
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub(crate) fn include_usage(&self) -> bool {
        self.body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Whether the request offers a function tool with this name.
    pub(crate) fn offers_tool(&self, name: &str) -> bool {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| {
                tools.iter().any(|tool| {
                    tool.pointer("/function/name").and_then(Value::as_str) == Some(name)
                })
            })
    }

    /// Total characters of every message's text and tool-call arguments (the usage estimate).
    pub(crate) fn prompt_chars(&self) -> usize {
        self.messages()
            .iter()
            .map(|message| {
                let calls: usize = tool_calls(message)
                    .iter()
                    .filter_map(|call| call.pointer("/function/arguments"))
                    .filter_map(Value::as_str)
                    .map(|arguments| arguments.chars().count())
                    .sum();
                text(message).chars().count() + calls
            })
            .sum()
    }

    /// How many tool calls assistant messages already made; numbers new call ids so they stay
    /// unique within a conversation without any server-side state.
    pub(crate) fn prior_tool_calls(&self) -> usize {
        self.messages()
            .iter()
            .filter(|message| role(message) == "assistant")
            .map(|message| tool_calls(message).len())
            .sum()
    }
}

pub(crate) fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// The text of a message: a plain string, or the `text` parts of a content array.
pub(crate) fn text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn tool_calls(message: &Value) -> &[Value] {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fields_leniently() {
        let body = json!({
            "model": "m",
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "calculator"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "ab"}, {"type": "text", "text": "cd"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "x", "type": "function", "function": {"name": "f", "arguments": "123"}}
                ]},
                {"role": "tool", "tool_call_id": "x", "content": "4"}
            ]
        });
        let view = ChatView::new(&body);
        assert!(view.stream());
        assert!(view.include_usage());
        assert!(view.offers_tool("calculator"));
        assert!(!view.offers_tool("search"));
        assert_eq!(view.prompt_chars(), 4 + 3 + 1);
        assert_eq!(view.prior_tool_calls(), 1);
        assert_eq!(text(&view.messages()[0]), "abcd");

        let empty = json!({});
        let view = ChatView::new(&empty);
        assert!(view.messages().is_empty());
        assert!(!view.stream());
        assert_eq!(view.prompt_chars(), 0);
    }
}
