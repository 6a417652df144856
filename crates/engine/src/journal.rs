//! The agent loop as a pure function of its journal. Given the recorded steps, [`next_action`]
//! says what to do next; the executor performs it, records the outcome, and asks again. Because
//! the decision depends only on what was committed, a restarted worker makes the same decision
//! and never repeats a recorded model call or tool call.
//!
//! Step indexes are fixed by position: a model step at index `i` that asks for `n` tool calls
//! owns indexes `i+1 ..= i+n` for their results (in call order, even though they run
//! concurrently and commit in any order), and the next model step is `i+n+1`.

use agentry_core::ErrorCode;
use agentry_core::chat::{Message, Role, ToolCall};
use agentry_core::run::StepRecord;

#[derive(Debug, Clone, PartialEq)]
pub enum NextAction {
    /// Ask the model; record the reply at `step`.
    CallModel {
        step: i64,
    },
    /// Run these tool calls (those of the model step not yet recorded).
    RunTools {
        calls: Vec<PendingCall>,
    },
    /// The model answered without tool calls.
    Complete {
        output: String,
    },
    Fail {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingCall {
    /// Where the result is recorded.
    pub step: i64,
    /// Position of the call in the model's reply.
    pub call_index: usize,
    pub call: ToolCall,
}

/// A recorded step with its index.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub step: i64,
    pub record: StepRecord,
}

pub fn next_action(journal: &[JournalEntry], max_steps: u32) -> NextAction {
    // The last model step decides; tool steps after it are its results. A repair request
    // after it asks the model again.
    let last_turn = journal
        .iter()
        .filter(|e| {
            matches!(
                e.record,
                StepRecord::Llm { .. } | StepRecord::Feedback { .. }
            )
        })
        .max_by_key(|e| e.step);
    let Some(last_model) = last_turn else {
        return NextAction::CallModel { step: 0 };
    };
    if matches!(last_model.record, StepRecord::Feedback { .. }) {
        return NextAction::CallModel {
            step: last_model.step + 1,
        };
    }
    let StepRecord::Llm {
        content,
        tool_calls,
        ..
    } = &last_model.record
    else {
        return NextAction::CallModel { step: 0 };
    };
    if tool_calls.is_empty() {
        return NextAction::Complete {
            output: content.clone().unwrap_or_default(),
        };
    }
    let model_calls = journal
        .iter()
        .filter(|e| matches!(e.record, StepRecord::Llm { .. }))
        .count();
    if model_calls as u32 >= max_steps {
        return NextAction::Fail {
            code: ErrorCode::MaxStepsExceeded,
            message: format!(
                "the agent made {model_calls} model calls (max_steps = {max_steps}) and still asked for tools"
            ),
        };
    }
    let pending: Vec<PendingCall> = tool_calls
        .iter()
        .enumerate()
        .map(|(i, call)| PendingCall {
            step: last_model.step + 1 + i as i64,
            call_index: i,
            call: call.clone(),
        })
        .filter(|p| !journal.iter().any(|e| e.step == p.step))
        .collect();
    if pending.is_empty() {
        NextAction::CallModel {
            step: last_model.step + 1 + tool_calls.len() as i64,
        }
    } else {
        NextAction::RunTools { calls: pending }
    }
}

/// The messages a journal contributes to the conversation, in step order.
pub fn journal_messages(journal: &[JournalEntry]) -> Vec<Message> {
    let mut entries: Vec<&JournalEntry> = journal.iter().collect();
    entries.sort_by_key(|e| e.step);
    entries
        .into_iter()
        .map(|e| match &e.record {
            StepRecord::Llm {
                content,
                tool_calls,
                ..
            } => Message {
                role: Role::Assistant,
                content: content.clone(),
                tool_calls: tool_calls.clone(),
                tool_call_id: None,
            },
            StepRecord::Feedback { content } => Message::user(content.clone()),
            StepRecord::Tool {
                call_id,
                result,
                error,
                ..
            } => {
                let content = match (result, error) {
                    (_, Some(err)) => {
                        serde_json::json!({"error": {"code": err.code, "message": err.message}})
                            .to_string()
                    }
                    (Some(value), None) => value.to_string(),
                    (None, None) => "null".to_string(),
                };
                Message::tool_result(call_id.clone(), content)
            }
        })
        .collect()
}

/// Whether the journal's messages form a valid conversation: every tool result answers a
/// tool call of a model step (not so for multi-agent steps a model never asked for).
pub fn is_replayable(journal: &[JournalEntry]) -> bool {
    journal.iter().all(|e| match &e.record {
        StepRecord::Tool { call_id, .. } => journal.iter().any(|m| match &m.record {
            StepRecord::Llm { tool_calls, .. } => {
                m.step < e.step && tool_calls.iter().any(|c| &c.id == call_id)
            }
            _ => false,
        }),
        _ => true,
    })
}

/// Keeps at most `window` trailing messages of a thread's history, never starting with an
/// orphaned tool result or assistant turn.
pub fn window_history(mut history: Vec<Message>, window: usize) -> Vec<Message> {
    if history.len() > window {
        history.drain(..history.len() - window);
    }
    let first_user = history
        .iter()
        .position(|m| m.role == Role::User)
        .unwrap_or(history.len());
    history.drain(..first_user);
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::chat::Usage;

    fn llm(step: i64, calls: &[&str], content: Option<&str>) -> JournalEntry {
        JournalEntry {
            step,
            record: StepRecord::Llm {
                model: "m".into(),
                content: content.map(String::from),
                tool_calls: calls
                    .iter()
                    .enumerate()
                    .map(|(i, name)| ToolCall {
                        id: format!("c{step}_{i}"),
                        name: (*name).into(),
                        arguments: "{}".into(),
                    })
                    .collect(),
                finish_reason: "stop".into(),
                usage: Usage::default(),
                usage_reported: true,
            },
        }
    }

    fn tool(step: i64, call_id: &str) -> JournalEntry {
        JournalEntry {
            step,
            record: StepRecord::Tool {
                call_id: call_id.into(),
                name: "calculator".into(),
                arguments: serde_json::json!({}),
                result: Some(serde_json::json!({"result": 1})),
                error: None,
                child_run_id: None,
            },
        }
    }

    #[test]
    fn empty_journal_calls_the_model() {
        assert_eq!(next_action(&[], 5), NextAction::CallModel { step: 0 });
    }

    #[test]
    fn final_answer_completes() {
        let j = [llm(0, &[], Some("hi"))];
        assert_eq!(
            next_action(&j, 5),
            NextAction::Complete {
                output: "hi".into()
            }
        );
    }

    #[test]
    fn only_unrecorded_tool_calls_run_again() {
        // Two parallel calls; the second one committed first, then the worker died.
        let j = [llm(0, &["a", "b"], None), tool(2, "c0_1")];
        let NextAction::RunTools { calls } = next_action(&j, 5) else {
            panic!("expected tools")
        };
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].step, 1);
        assert_eq!(calls[0].call.id, "c0_0");
    }

    #[test]
    fn all_tools_recorded_calls_model_at_next_index() {
        let j = [llm(0, &["a", "b"], None), tool(1, "c0_0"), tool(2, "c0_1")];
        assert_eq!(next_action(&j, 5), NextAction::CallModel { step: 3 });
    }

    #[test]
    fn max_steps_stops_before_running_more_tools() {
        let j = [llm(0, &["a"], None), tool(1, "c0_0"), llm(2, &["a"], None)];
        assert!(matches!(
            next_action(&j, 2),
            NextAction::Fail {
                code: ErrorCode::MaxStepsExceeded,
                ..
            }
        ));
        assert!(matches!(next_action(&j, 3), NextAction::RunTools { .. }));
    }

    #[test]
    fn messages_follow_step_order_and_errors_are_shown_to_the_model() {
        let mut failing = tool(1, "c0_0");
        if let StepRecord::Tool { result, error, .. } = &mut failing.record {
            *result = None;
            *error = Some(agentry_core::run::ToolErrorRecord {
                code: "invalid_arguments".into(),
                message: "bad".into(),
            });
        }
        let j = [failing, llm(0, &["a"], None)];
        let msgs = journal_messages(&j);
        assert_eq!(msgs[0].role, Role::Assistant);
        assert_eq!(msgs[1].role, Role::Tool);
        assert!(
            msgs[1]
                .content
                .as_deref()
                .unwrap_or("")
                .contains("invalid_arguments")
        );
    }

    #[test]
    fn only_tool_results_a_model_asked_for_replay_as_a_conversation() {
        assert!(is_replayable(&[llm(0, &["a"], None), tool(1, "c0_0")]));
        // A sequential crew's member step: no model call asked for it.
        assert!(!is_replayable(&[tool(0, "member-0")]));
        assert!(is_replayable(&[]));
    }

    #[test]
    fn history_window_starts_at_a_user_turn() {
        let h = vec![
            Message::user("1"),
            Message::assistant("a"),
            Message::tool_result("x", "r"),
            Message::user("2"),
            Message::assistant("b"),
        ];
        let w = window_history(h, 3);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].content.as_deref(), Some("2"));
    }

    #[test]
    fn a_repair_request_asks_the_model_again_and_reads_as_a_user_message() {
        let journal = vec![
            JournalEntry {
                step: 0,
                record: StepRecord::Llm {
                    model: "m".into(),
                    content: Some("not json".into()),
                    tool_calls: vec![],
                    finish_reason: "stop".into(),
                    usage: Default::default(),
                    usage_reported: true,
                },
            },
            JournalEntry {
                step: 1,
                record: StepRecord::Feedback {
                    content: "answer with JSON".into(),
                },
            },
        ];
        assert_eq!(next_action(&journal, 10), NextAction::CallModel { step: 2 });
        let messages = journal_messages(&journal);
        assert_eq!(messages[1], Message::user("answer with JSON"));
        assert_eq!(
            next_action(&journal[..1], 10),
            NextAction::Complete {
                output: "not json".into()
            }
        );
    }
}
