//! A network: for each message (run), the router agent's model picks the member that answers
//! (its `route_to` tool), then the member answers as a child run given the thread's
//! conversation so far; the member's answer is the network run's output.
//!
//! Journal: the router's reply at step 0 (billed to this run), the member's outcome at step 1.
//! A choice that names no member falls back to the first member with a warning event: a
//! confused router must not cost the user their answer.

use super::crew::{self, Delegation, Started};
use super::*;
use agentry_core::chat::Role;
use agentry_core::crew::{MAX_MAX_DEPTH, NetworkSpec, ROUTE_TOOL};

pub(super) async fn run_network(
    exec: &mut Execution,
    spec: &AgentSpec,
    base: &[Message],
    mut resumed: bool,
) -> Result<(), ExecError> {
    let Some(network) = spec.network.clone() else {
        return Ok(());
    };
    loop {
        if exec.cancel_requested {
            exec.end(RunStatus::Cancelled, None, None).await?;
            return Ok(());
        }
        let router = exec
            .journal
            .iter()
            .filter(|e| matches!(e.record, StepRecord::Llm { .. }))
            .max_by_key(|e| e.step)
            .cloned();
        let Some(router) = router else {
            if resumed {
                let ev = exec.event(event::MESSAGE_RESET, json!({"step": 0}));
                exec.commit(vec![], vec![ev], RunChange::None).await?;
            }
            if call_model(exec, spec, base, 0).await? == Flow::Ended {
                return Ok(());
            }
            resumed = false;
            continue;
        };
        let step = router.step + 1;
        let answered = exec
            .journal
            .iter()
            .find(|e| e.step == step)
            .map(|e| e.record.clone());
        let Some(record) = answered else {
            route(exec, &network, &router.record, step).await?;
            continue;
        };
        match record {
            StepRecord::Tool {
                result: Some(result),
                error: None,
                ..
            } => {
                let output = result["output"].as_str().unwrap_or_default().to_string();
                exec.end(RunStatus::Completed, Some(output), None).await?;
            }
            StepRecord::Tool { error: Some(e), .. } => {
                let code = ErrorCode::parse(&e.code).unwrap_or(ErrorCode::DelegationFailed);
                exec.fail(code, e.message).await?;
            }
            _ => {
                exec.fail(
                    ErrorCode::DelegationFailed,
                    "the network's routing step left no result".into(),
                )
                .await?;
            }
        }
        return Ok(());
    }
}

/// The member the router named (through `route_to`, or as its whole text answer).
fn chosen_member(router: &StepRecord) -> (Option<String>, String) {
    let StepRecord::Llm {
        content,
        tool_calls,
        ..
    } = router
    else {
        return (None, "route".into());
    };
    if let Some(call) = tool_calls.iter().find(|c| c.name == ROUTE_TOOL) {
        let member = serde_json::from_str::<Value>(&call.arguments)
            .ok()
            .and_then(|v| v.get("member").and_then(Value::as_str).map(str::to_string));
        return (member, call.id.clone());
    }
    let text = content.as_deref().map(str::trim).filter(|t| !t.is_empty());
    (text.map(str::to_string), "route".into())
}

async fn route(
    exec: &mut Execution,
    network: &NetworkSpec,
    router: &StepRecord,
    step: i64,
) -> Result<(), ExecError> {
    let started_at = Utc::now();
    let (choice, call_id) = chosen_member(router);
    let known = choice
        .as_ref()
        .filter(|c| network.members.iter().any(|m| m == *c));
    let Some(member) = known.cloned().or_else(|| network.members.first().cloned()) else {
        exec.fail(
            ErrorCode::DelegationFailed,
            "the network has no members".into(),
        )
        .await?;
        return Ok(());
    };
    let mut events = Vec::new();
    if known.is_none() {
        events.push(exec.event(
            event::NETWORK_ROUTE_FALLBACK,
            json!({"step": step, "chosen": choice, "member": member,
                   "warning": format!("the router named no member of the network; '{member}' answers")}),
        ));
    }
    events.push(exec.event(
        event::NETWORK_ROUTED,
        json!({"step": step, "member": member, "fallback": known.is_none()}),
    ));
    exec.commit(vec![], events, RunChange::None).await?;

    let conversation = conversation(exec).await?;
    let started = crew::start_child(
        exec,
        Delegation {
            member: &member,
            input: RunInput::Messages(conversation),
            step,
            call_index: 0,
            max_depth: MAX_MAX_DEPTH,
        },
    )
    .await?;
    let (outcome, child) = match started {
        Started::Refused(e) => (Err(e), None),
        Started::Child { member, row } => {
            let ended =
                crew::wait_child(exec.platform.clone(), exec.scope, exec.run_id, row.id).await?;
            (crew::child_outcome(&member, &ended), Some((member, ended)))
        }
    };
    let record = crew::member_record(
        call_id,
        ROUTE_TOOL.to_string(),
        json!({"member": member}),
        outcome,
        child.as_ref().map(|(_, row)| row.id),
    );
    let mut events = Vec::new();
    if let Some((member, row)) = &child {
        events.push(crew::completed_event(exec, step, member, row));
    }
    let row = NewStep {
        idx: step,
        kind: "tool",
        record: serde_json::to_value(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        started_at,
        ended_at: Utc::now(),
    };
    exec.commit(vec![row], events, RunChange::None).await?;
    exec.journal.push(JournalEntry { step, record });
    Ok(())
}

/// The thread so far as the member sees it: each earlier message of the thread with the
/// network's answer to it, then this run's message. (The router's own tool calls are not the
/// member's business.)
async fn conversation(exec: &Execution) -> Result<Vec<Message>, StoreError> {
    let mut messages = Vec::new();
    if let Some(thread) = &exec.run.thread_id {
        let window = exec.platform.config.thread_window;
        let earlier = runs::thread_runs(
            &exec.platform.db,
            exec.scope,
            thread,
            RunId(exec.run_id),
            window as u64,
        )
        .await?;
        let mut history = Vec::new();
        for prior in earlier {
            history.extend(input_messages(&prior, &exec.guard));
            if let Some(output) = prior.output {
                history.push(Message::assistant(output));
            }
        }
        messages.extend(window_history(history, window));
    }
    messages.extend(
        input_messages(&exec.run, &exec.guard)
            .into_iter()
            .filter(|m| m.role != Role::System),
    );
    Ok(messages)
}
