//! Tool steps: concurrent calls, each result committed as it finishes, with a stable
//! idempotency key per call. A crew manager's `delegate_to_<member>` calls start child runs
//! (`crew.rs`) before the calls run, and wait for them as their "tool call".

use super::crew::{self, Delegation, Started};
use super::*;

/// The idempotency key a tool call carries: stable across retries and restarts.
pub(super) fn tool_idempotency_key(run_id: uuid::Uuid, step: i64, call_index: usize) -> String {
    let mut h = Sha256::new();
    h.update(format!("{run_id}:{step}:{call_index}").as_bytes());
    hex::encode(&h.finalize()[..16])
}

pub(super) async fn run_tools(
    exec: &mut Execution,
    spec: &AgentSpec,
    calls: Vec<PendingCall>,
) -> Result<(), ExecError> {
    // After a restart the calls were announced by an earlier execution: announce the retry.
    let started = exec.announce(&calls);
    if !started.is_empty() {
        exec.commit(vec![], started, RunChange::None).await?;
    }

    // Delegations first, one at a time: the limits are checked and the child runs created (or
    // found again) and announced before anything waits.
    let mut delegated: HashMap<i64, Started> = HashMap::new();
    for p in &calls {
        if let Some(member) = spec.delegate_for_tool(&p.call.name) {
            let started = delegate(exec, spec, member, p).await?;
            delegated.insert(p.step, started);
        }
    }

    let platform = exec.platform.clone();
    let run_id = exec.run_id;
    let scope = exec.scope;
    let mut running: FuturesUnordered<_> = calls
        .into_iter()
        .map(|p| {
            let platform = platform.clone();
            let allowed = spec.tools.iter().any(|t| t == &p.call.name);
            let delegation = delegated.remove(&p.step);
            async move {
                let started_at = Utc::now();
                if let Some(started) = delegation {
                    let (outcome, child) = match started {
                        Started::Refused(e) => (Err(e), None),
                        Started::Child { member, row } => {
                            match crew::wait_child(platform.clone(), scope, run_id, row.id).await {
                                Ok(ended) => {
                                    (crew::child_outcome(&member, &ended), Some((member, ended)))
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    };
                    return Ok((p, started_at, outcome, child));
                }
                let outcome = if allowed {
                    let ctx = ToolContext {
                        idempotency_key: tool_idempotency_key(run_id, p.step, p.call_index),
                    };
                    platform
                        .tools
                        .invoke(&p.call.name, &p.call.arguments, &ctx)
                        .await
                } else {
                    Err(agentry_core::tool::ToolError::new(
                        "unknown_tool",
                        format!(
                            "this agent has no tool named '{}'; its tools are: {}",
                            p.call.name,
                            spec.tools.join(", ")
                        ),
                    ))
                };
                Ok((p, started_at, outcome, None))
            }
        })
        .collect();
    // Each result commits as soon as it is ready, so a crash never loses a finished call.
    while let Some(finished) = running.next().await {
        let (p, started_at, outcome, child) = finished?;
        let (result, error) = match outcome {
            Ok(v) => (Some(v), None),
            Err(e) => (
                None,
                Some(ToolErrorRecord {
                    code: e.code,
                    message: e.message,
                }),
            ),
        };
        let outcome_label = if error.is_some() { "error" } else { "ok" };
        metrics::counter!("agentry_tool_calls_total", "tool" => tool_label(&p.call.name, spec), "outcome" => outcome_label).increment(1);
        let record = StepRecord::Tool {
            call_id: p.call.id.clone(),
            name: p.call.name.clone(),
            arguments: parse_arguments(&p.call.arguments),
            result: result.clone(),
            error: error.clone(),
            child_run_id: child.as_ref().map(|(_, row)| row.id),
        };
        let mut data = json!({"step": p.step, "call_id": p.call.id, "name": p.call.name});
        match (&result, &error) {
            (_, Some(err)) => data["error"] = json!(err),
            (Some(v), None) => data["result"] = v.clone(),
            (None, None) => {}
        }
        let ev = exec.event(event::TOOL_COMPLETED, data);
        let mut events = vec![ev];
        if let Some((member, row)) = &child {
            events.push(crew::completed_event(exec, p.step, member, row));
        }
        if exec.guard.has_tool_result_rules()
            && let Some(v) = &result
        {
            let checked = exec.guard.check_tool_result(&p.call.name, &v.to_string());
            let found = guardrail_events(exec, Some(p.step), &checked.events);
            events.extend(found);
        }
        let step_row = NewStep {
            idx: p.step,
            kind: "tool",
            record: serde_json::to_value(&record)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            started_at,
            ended_at: Utc::now(),
        };
        exec.commit(vec![step_row], events, RunChange::None).await?;
        exec.journal.push(JournalEntry {
            step: p.step,
            record,
        });
    }
    Ok(())
}

/// Checks a manager's delegation call (arguments, max_delegations) and starts the child run.
async fn delegate(
    exec: &mut Execution,
    spec: &AgentSpec,
    member: &str,
    p: &PendingCall,
) -> Result<Started, ExecError> {
    let Some(crew_spec) = &spec.crew else {
        return Ok(Started::Refused(agentry_core::tool::ToolError::new(
            "unknown_tool",
            "this agent has no crew",
        )));
    };
    let task = serde_json::from_str::<Value>(&p.call.arguments)
        .ok()
        .and_then(|v| v.get("task").and_then(Value::as_str).map(str::to_string))
        .filter(|t| !t.trim().is_empty());
    let Some(task) = task else {
        return Ok(Started::Refused(agentry_core::tool::ToolError::new(
            "invalid_arguments",
            format!(
                "{} takes {{\"task\": \"<what the agent should do>\"}}",
                p.call.name
            ),
        )));
    };
    let before = crew::delegations_before(spec, &exec.journal, p.step);
    if before >= crew_spec.max_delegations {
        return Ok(Started::Refused(agentry_core::tool::ToolError::new(
            ErrorCode::DelegationLimitExceeded.as_str(),
            format!(
                "this run already made {before} delegations (max_delegations = {}); answer with what you have",
                crew_spec.max_delegations
            ),
        )));
    }
    crew::start_child(
        exec,
        Delegation {
            member,
            input: RunInput::Text(task),
            step: p.step,
            call_index: p.call_index,
            max_depth: crew_spec.max_depth,
        },
    )
    .await
}

/// Tool names the model invents must not become metric labels (unbounded cardinality).
pub(super) fn tool_label(name: &str, spec: &AgentSpec) -> String {
    if spec.tools.iter().any(|t| t == name) || spec.delegate_for_tool(name).is_some() {
        name.to_string()
    } else {
        "unknown".to_string()
    }
}

/// The model's arguments as JSON when they parse, else the raw text (recorded as given).
pub(super) fn parse_arguments(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}
