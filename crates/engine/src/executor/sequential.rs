//! A sequential crew: the members run in order as child runs, without a manager model call.
//! Member 1 gets the run's input, each next member the previous member's answer; the crew's
//! output is the last answer. Member `i`'s outcome is journaled at step `i`, so a restarted
//! execution skips finished members and finds an in-flight one again by its idempotency key.

use super::crew::{self, Delegation, Started};
use super::*;

pub(super) async fn run_sequential(
    exec: &mut Execution,
    spec: &AgentSpec,
) -> Result<(), ExecError> {
    let Some(crew_spec) = spec.crew.clone() else {
        return Ok(());
    };
    let mut input: RunInput = serde_json::from_value(exec.run.input.0.clone())
        .map_err(|e| StoreError::Corrupt(format!("run input: {e}")))?;
    for (i, member) in crew_spec.members.iter().enumerate() {
        if exec.cancel_requested {
            exec.end(RunStatus::Cancelled, None, None).await?;
            return Ok(());
        }
        let step = i as i64;
        let recorded = exec
            .journal
            .iter()
            .find(|e| e.step == step)
            .map(|e| e.record.clone());
        let record = match recorded {
            Some(record) => record,
            None => run_member(exec, member, input.clone(), step, crew_spec.max_depth).await?,
        };
        match record {
            StepRecord::Tool {
                result: Some(result),
                error: None,
                ..
            } => {
                let output = result["output"].as_str().unwrap_or_default().to_string();
                input = RunInput::Text(output);
            }
            StepRecord::Tool { error: Some(e), .. } => {
                let code = ErrorCode::parse(&e.code).unwrap_or(ErrorCode::DelegationFailed);
                exec.fail(code, format!("crew member {}: {}", i + 1, e.message))
                    .await?;
                return Ok(());
            }
            _ => {
                exec.fail(
                    ErrorCode::DelegationFailed,
                    format!("crew member {} left no result", i + 1),
                )
                .await?;
                return Ok(());
            }
        }
    }
    let output = match input {
        RunInput::Text(t) => t,
        RunInput::Messages(_) => String::new(),
    };
    exec.end(RunStatus::Completed, Some(output), None).await?;
    Ok(())
}

/// Starts (or finds again) member `step`'s run, waits for it, and journals its outcome.
async fn run_member(
    exec: &mut Execution,
    member: &str,
    input: RunInput,
    step: i64,
    max_depth: u32,
) -> Result<StepRecord, ExecError> {
    let started_at = Utc::now();
    let arguments = json!({"input": input});
    let started = crew::start_child(
        exec,
        Delegation {
            member,
            input,
            step,
            call_index: 0,
            max_depth,
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
        format!("member-{step}"),
        agentry_core::crew::delegate_tool_name(member),
        arguments,
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
    exec.journal.push(JournalEntry {
        step,
        record: record.clone(),
    });
    Ok(record)
}
