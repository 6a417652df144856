//! Reading a non-streaming `chat.completion` object, for servers that ignore `"stream": true`
//! and answer with plain JSON.

use super::assemble::{PartialCall, Parts, assemble};
use super::wire::{Completion, error_value_message};
use crate::failure::AttemptFailure;
use crate::text::truncate;
use agentry_core::chat::ChatResponse;
use serde_json::Value;

pub(crate) fn parse(body: &[u8], requested_model: &str) -> Result<ChatResponse, AttemptFailure> {
    let completion: Completion = serde_json::from_slice(body).map_err(|error| {
        AttemptFailure::BadResponse(format!(
            "unparsable JSON answer ({error}): {}",
            truncate(&String::from_utf8_lossy(body), 200)
        ))
    })?;
    if let Some(error) = completion.error.as_ref().filter(|error| !error.is_null()) {
        return Err(AttemptFailure::ErrorEvent(error_value_message(error)));
    }
    let choice = completion
        .choices
        .into_iter()
        .flatten()
        .find(|choice| choice.index.unwrap_or(0) == 0)
        .ok_or_else(|| AttemptFailure::BadResponse("the answer has no choices".to_string()))?;
    let message = choice.message;
    let content = match message.as_ref().and_then(|m| m.content.as_ref()) {
        Some(Value::String(text)) => text.clone(),
        // Content-part arrays: keep the text parts.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    let calls = message
        .and_then(|m| m.tool_calls)
        .unwrap_or_default()
        .into_iter()
        .map(|call| PartialCall {
            id: call.id.unwrap_or_default(),
            name: call
                .function
                .as_ref()
                .and_then(|f| f.name.clone())
                .unwrap_or_default(),
            arguments: call
                .function
                .as_ref()
                .and_then(|f| f.arguments_text())
                .unwrap_or_default(),
        })
        .collect();
    let parts = Parts {
        model: completion.model,
        content,
        calls,
        finish_reason: choice.finish_reason.filter(|reason| !reason.is_empty()),
        usage: completion.usage.as_ref().and_then(|usage| usage.usage()),
    };
    assemble(parts, requested_model)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::{FinishReason, Usage};

    #[test]
    fn parses_text_and_tool_calls() {
        let body = br#"{"id":"c","object":"chat.completion","model":"llama3",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi",
              "tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{bad"}}]},
              "finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let response = parse(body, "m").unwrap();
        assert_eq!(response.model, "llama3");
        assert_eq!(response.content.as_deref(), Some("hi"));
        assert_eq!(response.tool_calls[0].arguments, "{bad");
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Default::default()
            })
        );
    }

    #[test]
    fn tolerates_sparse_answers() {
        let response = parse(br#"{"choices":[{"message":{"content":null}}]}"#, "m").unwrap();
        assert_eq!(response.content, None);
        assert_eq!(response.finish_reason, FinishReason::Stop);
        assert_eq!(response.usage, None);
    }

    #[test]
    fn rejects_errors_and_garbage() {
        assert_eq!(
            parse(br#"{"error":{"message":"nope"}}"#, "m").unwrap_err(),
            AttemptFailure::ErrorEvent("nope".into())
        );
        assert!(matches!(
            parse(br#"{"choices":[]}"#, "m"),
            Err(AttemptFailure::BadResponse(_))
        ));
        assert!(matches!(
            parse(b"{truncated", "m"),
            Err(AttemptFailure::BadResponse(_))
        ));
    }
}
