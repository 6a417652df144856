//! Folding a chat-completions SSE stream into a response: text deltas pass through as they
//! come, tool-call fragments are joined per `index`, usage and the finish reason are kept.

use super::assemble::{PartialCall, Parts, assemble};
use super::wire::{Chunk, ToolCallDelta, error_message};
use crate::failure::AttemptFailure;
use crate::sse::SseEvent;
use crate::text::truncate;
use agentry_core::chat::{ChatResponse, Usage};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct StreamState {
    model: Option<String>,
    content: String,
    calls: BTreeMap<usize, PartialCall>,
    /// Where index-less fragments go (servers that omit `index` send calls one at a time).
    last_call: Option<usize>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamState {
    /// Applies one event and returns the text it adds, if any.
    pub(crate) fn apply(&mut self, event: &SseEvent) -> Result<Option<String>, AttemptFailure> {
        let data = event.data.trim();
        if event.event.as_deref() == Some("error") {
            return Err(AttemptFailure::ErrorEvent(error_message(data)));
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        if data.is_empty() {
            return Ok(None);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|error| {
            AttemptFailure::BadResponse(format!(
                "unparsable stream event ({error}): {}",
                truncate(data, 200)
            ))
        })?;
        if let Some(error) = chunk.error.as_ref().filter(|error| !error.is_null()) {
            return Err(AttemptFailure::ErrorEvent(
                super::wire::error_value_message(error),
            ));
        }
        if self.model.is_none() {
            self.model = chunk.model.filter(|model| !model.is_empty());
        }
        if let Some(usage) = chunk.usage.as_ref().and_then(|usage| usage.usage()) {
            self.usage = Some(usage);
        }
        let mut text = None;
        // Only the first choice matters: requests never ask for n > 1.
        let choice = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|choice| choice.index.unwrap_or(0) == 0);
        if let Some(choice) = choice {
            if let Some(delta) = choice.delta {
                if let Some(content) = delta.content.filter(|content| !content.is_empty()) {
                    self.content.push_str(&content);
                    text = Some(content);
                }
                for call in delta.tool_calls.into_iter().flatten() {
                    self.apply_call(call);
                }
            }
            if let Some(reason) = choice.finish_reason.filter(|reason| !reason.is_empty()) {
                self.finish_reason = Some(reason);
            }
        }
        Ok(text)
    }

    fn apply_call(&mut self, fragment: ToolCallDelta) {
        let id = fragment.id.filter(|id| !id.is_empty());
        let index = match (fragment.index, &id) {
            (Some(index), _) => index,
            (None, Some(id)) => self
                .calls
                .iter()
                .find(|(_, call)| call.id == *id)
                .map(|(index, _)| *index)
                .unwrap_or_else(|| self.calls.keys().next_back().map_or(0, |last| last + 1)),
            (None, None) => self.last_call.unwrap_or(0),
        };
        self.last_call = Some(index);
        let call = self.calls.entry(index).or_default();
        if let Some(id) = id
            && call.id.is_empty()
        {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name.as_ref().filter(|name| !name.is_empty())
                && call.name.is_empty()
            {
                call.name.clone_from(name);
            }
            if let Some(arguments) = function.arguments_text() {
                call.arguments.push_str(&arguments);
            }
        }
    }

    /// `[DONE]` arrived: nothing more will come.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The answer is complete once `[DONE]` or a finish reason arrived; some servers send one
    /// without the other.
    pub(crate) fn is_complete(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    pub(crate) fn finish(self, requested_model: &str) -> Result<ChatResponse, AttemptFailure> {
        if !self.is_complete() {
            return Err(AttemptFailure::Interrupted(
                "the stream ended before a finish_reason or [DONE]".to_string(),
            ));
        }
        let parts = Parts {
            model: self.model,
            content: self.content,
            calls: self.calls.into_values().collect(),
            finish_reason: self.finish_reason,
            usage: self.usage,
        };
        assemble(parts, requested_model)
    }
}

impl crate::streaming::StreamFold for StreamState {
    fn apply(&mut self, event: &SseEvent) -> Result<Option<String>, AttemptFailure> {
        StreamState::apply(self, event)
    }

    fn is_done(&self) -> bool {
        StreamState::is_done(self)
    }

    fn is_complete(&self) -> bool {
        StreamState::is_complete(self)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn finish(self, requested_model: &str) -> Result<ChatResponse, AttemptFailure> {
        StreamState::finish(self, requested_model)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::FinishReason;

    fn event(data: &str) -> SseEvent {
        SseEvent {
            data: data.to_string(),
            ..SseEvent::default()
        }
    }

    fn run(events: &[&str]) -> (Vec<String>, Result<ChatResponse, AttemptFailure>) {
        let mut state = StreamState::default();
        let mut texts = Vec::new();
        for data in events {
            match state.apply(&event(data)) {
                Ok(Some(text)) => texts.push(text),
                Ok(None) => {}
                Err(error) => return (texts, Err(error)),
            }
        }
        (texts, state.finish("requested"))
    }

    #[test]
    fn joins_text_and_reads_usage() {
        let (texts, response) = run(&[
            r#"{"id":"x","model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            "[DONE]",
        ]);
        assert_eq!(texts, ["Hel", "lo"]);
        let response = response.unwrap();
        assert_eq!(response.content.as_deref(), Some("Hello"));
        assert_eq!(response.model, "gpt-x");
        assert_eq!(response.finish_reason, FinishReason::Stop);
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: 5,
                output_tokens: 2,
                ..Default::default()
            })
        );
    }

    #[test]
    fn tolerates_missing_finish_reason_id_and_model() {
        let (_, response) = run(&[r#"{"choices":[{"delta":{"content":"hi"}}]}"#, "[DONE]"]);
        let response = response.unwrap();
        assert_eq!(response.finish_reason, FinishReason::Stop);
        assert_eq!(response.model, "requested");
        assert_eq!(response.usage, None);
        // A finish reason without [DONE] is complete too.
        let (_, response) =
            run(&[r#"{"choices":[{"delta":{"content":"x"},"finish_reason":"length"}]}"#]);
        assert_eq!(response.unwrap().finish_reason, FinishReason::Length);
    }

    #[test]
    fn joins_parallel_tool_call_fragments_by_index() {
        let (texts, response) = run(&[
            r#"{"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"calc","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"search","arguments":"{\"q"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\":\"y\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        assert!(texts.is_empty());
        let response = response.unwrap();
        assert_eq!(response.content, None);
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        let calls: Vec<(&str, &str, &str)> = response
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("call_a", "calc", r#"{"x":1}"#),
                ("call_b", "search", r#"{"q":"y"}"#)
            ]
        );
    }

    #[test]
    fn handles_index_less_and_object_arguments() {
        let (_, response) = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":{"x":1}}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{\"y\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":2}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        ]);
        let response = response.unwrap();
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(response.tool_calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(response.tool_calls[1].arguments, r#"{"y":2}"#);
    }

    #[test]
    fn error_events_fail() {
        let (texts, response) = run(&[
            r#"{"choices":[{"delta":{"content":"partial"}}]}"#,
            r#"{"error":{"message":"upstream overloaded","type":"server_error"}}"#,
        ]);
        assert_eq!(texts, ["partial"]);
        assert_eq!(
            response.unwrap_err(),
            AttemptFailure::ErrorEvent("upstream overloaded".into())
        );
        let mut state = StreamState::default();
        let named = SseEvent {
            event: Some("error".into()),
            data: r#"{"message":"bad"}"#.into(),
            id: None,
        };
        assert_eq!(
            state.apply(&named).unwrap_err(),
            AttemptFailure::ErrorEvent("bad".into())
        );
    }

    #[test]
    fn garbage_and_truncated_streams_fail() {
        let (_, response) = run(&["{not json"]);
        assert!(matches!(response, Err(AttemptFailure::BadResponse(_))));
        let (_, response) = run(&[r#"{"choices":[{"delta":{"content":"cut"}}]}"#]);
        assert!(matches!(response, Err(AttemptFailure::Interrupted(_))));
        let (_, response) = run(&[r#"{"error":null,"choices":[]}"#, "[DONE]"]);
        assert!(response.is_ok());
    }
}
