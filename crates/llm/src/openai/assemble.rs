//! Building the final [`ChatResponse`] from collected parts, shared by the streaming and the
//! non-streaming paths so both normalise the same way.

use crate::failure::AttemptFailure;
use agentry_core::chat::{ChatResponse, FinishReason, ToolCall, Usage};
use rand::distr::{Alphanumeric, SampleString};

/// A tool call being collected from fragments.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PartialCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
}

pub(crate) struct Parts {
    pub(crate) model: Option<String>,
    pub(crate) content: String,
    /// In call-index order.
    pub(crate) calls: Vec<PartialCall>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) usage: Option<Usage>,
}

pub(crate) fn assemble(
    parts: Parts,
    requested_model: &str,
) -> Result<ChatResponse, AttemptFailure> {
    let mut tool_calls = Vec::with_capacity(parts.calls.len());
    for (position, call) in parts.calls.into_iter().enumerate() {
        if call.name.is_empty() {
            return Err(AttemptFailure::BadResponse(format!(
                "tool call #{position} has no function name"
            )));
        }
        let id = if call.id.is_empty() {
            // llama.cpp and older Ollama builds send no ids, but tool results must answer one.
            format!("call_{}", Alphanumeric.sample_string(&mut rand::rng(), 24))
        } else {
            call.id
        };
        tool_calls.push(ToolCall {
            id,
            name: call.name,
            arguments: call.arguments,
        });
    }
    let finish_reason = match parts.finish_reason.as_deref().map(FinishReason::parse) {
        // Some servers (older Ollama) say "stop" while calling tools; callers branch on
        // `ToolCalls`, so report what actually happened.
        Some(FinishReason::Stop) | None if !tool_calls.is_empty() => FinishReason::ToolCalls,
        Some(reason) => reason,
        None => FinishReason::Stop,
    };
    if finish_reason == FinishReason::ContentFilter
        && parts.content.is_empty()
        && tool_calls.is_empty()
    {
        // Nothing usable came back: an error the caller can act on, not an empty answer.
        // With partial text the answer is kept (and was already shown) and the finish reason
        // tells the caller it was cut.
        return Err(AttemptFailure::ContentFiltered(
            "the answer ended with finish reason `content_filter` and no content".to_string(),
        ));
    }
    Ok(ChatResponse {
        model: parts
            .model
            .filter(|model| !model.is_empty())
            .unwrap_or_else(|| requested_model.to_string()),
        content: (!parts.content.is_empty()).then_some(parts.content),
        tool_calls,
        finish_reason,
        usage: parts.usage,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(calls: Vec<PartialCall>, finish: Option<&str>) -> Parts {
        Parts {
            model: None,
            content: String::new(),
            calls,
            finish_reason: finish.map(str::to_string),
            usage: None,
        }
    }

    fn call(id: &str, name: &str) -> PartialCall {
        PartialCall {
            id: id.into(),
            name: name.into(),
            arguments: "{}".into(),
        }
    }

    #[test]
    fn infers_and_normalises_finish_reasons() {
        let text = assemble(parts(vec![], None), "m").unwrap();
        assert_eq!(text.finish_reason, FinishReason::Stop);
        assert_eq!(text.model, "m");
        assert_eq!(text.content, None);
        let tools = assemble(parts(vec![call("a", "f")], Some("stop")), "m").unwrap();
        assert_eq!(tools.finish_reason, FinishReason::ToolCalls);
        let length = assemble(parts(vec![], Some("length")), "m").unwrap();
        assert_eq!(length.finish_reason, FinishReason::Length);
        let odd = assemble(parts(vec![], Some("eos_token")), "m").unwrap();
        assert_eq!(odd.finish_reason, FinishReason::Other("eos_token".into()));
    }

    #[test]
    fn an_empty_content_filtered_answer_is_an_error() {
        assert!(matches!(
            assemble(parts(vec![], Some("content_filter")), "m"),
            Err(AttemptFailure::ContentFiltered(_))
        ));
        let mut partial = parts(vec![], Some("content_filter"));
        partial.content = "Here is".into();
        let partial = assemble(partial, "m").unwrap();
        assert_eq!(partial.finish_reason, FinishReason::ContentFilter);
        assert_eq!(partial.content.as_deref(), Some("Here is"));
    }

    #[test]
    fn generates_missing_ids_and_rejects_nameless_calls() {
        let response = assemble(parts(vec![call("", "f"), call("", "g")], None), "m").unwrap();
        let ids: Vec<&str> = response.tool_calls.iter().map(|c| c.id.as_str()).collect();
        assert!(
            ids.iter()
                .all(|id| id.starts_with("call_") && id.len() == 29)
        );
        assert_ne!(ids[0], ids[1]);
        assert!(matches!(
            assemble(parts(vec![call("a", "")], None), "m"),
            Err(AttemptFailure::BadResponse(_))
        ));
    }
}
