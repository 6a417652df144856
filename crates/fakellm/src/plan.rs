//! Turns a [`Reply`] and the request it answers into a [`Plan`]: the exact pieces, ids, token
//! counts and delays the renderer writes. Pure, so the wire-level choices are unit-testable.

use crate::reply::{Failure, Reply, ReplyKind, StreamErrorBody};
use crate::request::ChatView;
use std::collections::BTreeMap;
use std::time::Duration;

/// Text used for `stream_error` pieces when the script gives none.
const DEFAULT_PARTIAL_TEXT: &str = "This answer will fail partway through the stream.";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) body: PlanBody,
    pub(crate) delay: Duration,
    pub(crate) pacing: Pacing,
}

/// How a streamed body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pacing {
    /// Wait between written pieces.
    pub(crate) chunk_delay: Duration,
    /// Precede every SSE event with a comment line.
    pub(crate) sse_comments: bool,
    /// Cut the body into pieces of at most this many bytes.
    pub(crate) byte_chunks: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PlanBody {
    Complete(Completion),
    Error {
        status: u16,
        body: Option<String>,
        headers: BTreeMap<String, String>,
    },
    StreamError {
        pieces: Vec<String>,
        error: StreamErrorBody,
        /// Usage reported at the start of the stream (Anthropic's `message_start`, Gemini's
        /// chunks) before the error; only with an explicit usage override.
        usage: Option<(u64, u64)>,
    },
    Cut {
        text: String,
        pieces: Vec<String>,
        /// As for `StreamError`.
        usage: Option<(u64, u64)>,
    },
    Failure(Failure),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Completion {
    pub(crate) text: Option<String>,
    /// The stream pieces of `text`.
    pub(crate) pieces: Vec<String>,
    pub(crate) calls: Vec<PlannedCall>,
    pub(crate) finish_reason: &'static str,
    /// `(prompt_tokens, completion_tokens)`, `None` when omitted.
    pub(crate) usage: Option<(u64, u64)>,
    /// `(cache_creation_input_tokens, cache_read_input_tokens)`, Anthropic only.
    pub(crate) cache: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
    /// The argument fragments a stream sends, in order; they join to `arguments`.
    pub(crate) fragments: Vec<String>,
}

/// An answer the content filter emptied: no text, no calls, `content_filter`.
pub(crate) fn filtered_completion() -> Completion {
    Completion {
        text: None,
        pieces: Vec::new(),
        calls: Vec::new(),
        finish_reason: "content_filter",
        usage: None,
        cache: None,
    }
}

/// Delays that apply when the reply sets none (from the model name's modifiers).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DefaultDelays {
    pub(crate) latency_ms: Option<u64>,
    pub(crate) chunk_delay_ms: Option<u64>,
}

pub(crate) fn plan(reply: Reply, view: &ChatView<'_>, defaults: DefaultDelays) -> Plan {
    let options = reply.options;
    let delay = options.delay_ms.or(defaults.latency_ms).unwrap_or(0);
    let chunk_delay = options
        .chunk_delay_ms
        .or(defaults.chunk_delay_ms)
        .unwrap_or(0);
    let usage = |output_chars: usize| -> Option<(u64, u64)> {
        if options.omit_usage {
            return None;
        }
        Some(match options.usage {
            Some(usage) => (usage.prompt_tokens, usage.completion_tokens),
            None => (
                view.prompt_chars().div_ceil(4) as u64 + 1,
                (output_chars / 4) as u64 + 1,
            ),
        })
    };
    // Streams that fail report usage early only when the script asks for specific numbers,
    // so existing scripts keep their exact wire output.
    let early_usage = options
        .usage
        .filter(|_| !options.omit_usage)
        .map(|usage| (usage.prompt_tokens, usage.completion_tokens));
    let cache = options
        .cache_usage
        .filter(|_| !options.omit_usage)
        .map(|cache| {
            (
                cache.cache_creation_input_tokens,
                cache.cache_read_input_tokens,
            )
        });
    let body = match reply.kind {
        ReplyKind::Text { text, chunks } => {
            let pieces = match chunks {
                Some(n) => split_even(&text, n),
                None => split_words(&text),
            };
            PlanBody::Complete(Completion {
                usage: usage(text.chars().count()),
                cache,
                text: Some(text),
                pieces,
                calls: Vec::new(),
                finish_reason: "stop",
            })
        }
        ReplyKind::ToolCalls { calls } => {
            let first = view.prior_tool_calls() + 1;
            let calls: Vec<PlannedCall> = calls
                .into_iter()
                .enumerate()
                .map(|(i, call)| PlannedCall {
                    id: format!("call_{}", first + i),
                    fragments: split_fragments(&call.arguments),
                    name: call.name,
                    arguments: call.arguments,
                })
                .collect();
            let output_chars = calls
                .iter()
                .map(|call| call.name.chars().count() + call.arguments.chars().count())
                .sum();
            PlanBody::Complete(Completion {
                text: None,
                pieces: Vec::new(),
                calls,
                finish_reason: "tool_calls",
                usage: usage(output_chars),
                cache,
            })
        }
        ReplyKind::Error {
            status,
            body,
            headers,
        } => PlanBody::Error {
            status,
            body,
            headers,
        },
        ReplyKind::StreamError {
            after_chunks,
            error,
            text,
        } => {
            let text = text.unwrap_or_else(|| DEFAULT_PARTIAL_TEXT.to_string());
            PlanBody::StreamError {
                pieces: first_pieces(&text, after_chunks),
                error,
                usage: early_usage,
            }
        }
        ReplyKind::Cut { text, after_chunks } => PlanBody::Cut {
            pieces: first_pieces(&text, after_chunks),
            text,
            usage: early_usage,
        },
        ReplyKind::Failure { failure } => PlanBody::Failure(failure),
        ReplyKind::ContentFiltered => PlanBody::Complete(Completion {
            usage: usage(0),
            cache,
            ..filtered_completion()
        }),
    };
    Plan {
        body,
        delay: Duration::from_millis(delay),
        pacing: Pacing {
            chunk_delay: Duration::from_millis(chunk_delay),
            sse_comments: options.sse_comments,
            byte_chunks: options.byte_chunks.map(|bytes| bytes.max(1)),
        },
    }
}

/// Splits text into word-sized pieces that keep their leading whitespace, like model tokens
/// (`"You said: hi"` → `["You", " said:", " hi"]`). The pieces join back to the text.
pub(crate) fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            pieces.push(std::mem::take(&mut current));
            in_word = false;
        }
        if !c.is_whitespace() {
            in_word = true;
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Splits text into `n` pieces of near-equal length in characters (fewer if it is shorter).
fn split_even(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    let pieces: Vec<String> = chars
        .chunks(size)
        .map(|chunk| chunk.iter().collect())
        .collect();
    if pieces.is_empty() {
        vec![String::new()]
    } else {
        pieces
    }
}

/// Splits tool-call arguments into fragments of at most 8 characters, the way real servers
/// stream them a few tokens at a time.
fn split_fragments(arguments: &str) -> Vec<String> {
    const FRAGMENT_CHARS: usize = 8;
    let chars: Vec<char> = arguments.chars().collect();
    chars
        .chunks(FRAGMENT_CHARS)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

/// The first `n` word pieces of `text`, repeating a filler word when the text is too short.
fn first_pieces(text: &str, n: usize) -> Vec<String> {
    let mut pieces: Vec<String> = split_words(text).into_iter().take(n).collect();
    while pieces.len() < n {
        pieces.push(" more".to_string());
    }
    pieces
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan_for(reply: Reply, body: serde_json::Value) -> Plan {
        plan(reply, &ChatView::new(&body), DefaultDelays::default())
    }

    fn completion(plan: Plan) -> Completion {
        match plan.body {
            PlanBody::Complete(completion) => completion,
            other => panic!("expected completion, got {other:?}"),
        }
    }

    #[test]
    fn word_pieces_join_back() {
        let text = "You said:  héllo\nworld ";
        let pieces = split_words(text);
        assert_eq!(pieces, ["You", " said:", "  héllo", "\nworld", " "]);
        assert_eq!(pieces.concat(), text);
        assert!(split_words("").is_empty());
    }

    #[test]
    fn even_pieces_join_back() {
        assert_eq!(split_even("abcdef", 3), ["ab", "cd", "ef"]);
        assert_eq!(split_even("abc", 10), ["a", "b", "c"]);
        assert_eq!(split_even("abc", 0), ["abc"]);
        assert_eq!(split_even("", 4), [""]);
        assert_eq!(split_even("ééé", 2).concat(), "ééé");
    }

    #[test]
    fn default_usage_is_deterministic() {
        // 10 prompt chars → ceil(10/4)+1 = 4; 9 output chars → 9/4+1 = 3.
        let body = json!({"messages": [{"role": "user", "content": "0123456789"}]});
        let plan = completion(plan_for(Reply::text("123456789"), body.clone()));
        assert_eq!(plan.usage, Some((4, 3)));
        assert_eq!(plan.finish_reason, "stop");

        let overridden = completion(plan_for(Reply::text("x").with_usage(7, 8), body.clone()));
        assert_eq!(overridden.usage, Some((7, 8)));
        let omitted = completion(plan_for(Reply::text("x").without_usage(), body));
        assert_eq!(omitted.usage, None);
    }

    #[test]
    fn tool_calls_get_conversation_unique_ids_and_fragments() {
        let body = json!({"messages": [
            {"role": "assistant", "tool_calls": [{"id": "call_1"}, {"id": "call_2"}]},
        ]});
        let args = r#"{"expression":"1+1"}"#;
        let plan = completion(plan_for(
            Reply::tool_calls([("calculator", args), ("other", "")]),
            body,
        ));
        assert_eq!(plan.finish_reason, "tool_calls");
        assert_eq!(plan.calls[0].id, "call_3");
        assert_eq!(plan.calls[1].id, "call_4");
        assert!(plan.calls[0].fragments.len() >= 3);
        assert_eq!(plan.calls[0].fragments.concat(), args);
        assert!(plan.calls[1].fragments.is_empty());
    }

    #[test]
    fn delays_prefer_the_reply_then_the_model_name() {
        let body = json!({});
        let defaults = DefaultDelays {
            latency_ms: Some(10),
            chunk_delay_ms: Some(2),
        };
        let from_name = plan(Reply::text("a"), &ChatView::new(&body), defaults);
        assert_eq!(from_name.delay, Duration::from_millis(10));
        assert_eq!(from_name.pacing.chunk_delay, Duration::from_millis(2));
        let from_reply = plan(
            Reply::text("a").with_delay_ms(0).with_chunk_delay_ms(5),
            &ChatView::new(&body),
            defaults,
        );
        assert_eq!(from_reply.delay, Duration::ZERO);
        assert_eq!(from_reply.pacing.chunk_delay, Duration::from_millis(5));
    }

    #[test]
    fn partial_pieces_pad_short_text() {
        assert_eq!(first_pieces("a b", 1), ["a"]);
        assert_eq!(first_pieces("a", 3), ["a", " more", " more"]);
    }
}
