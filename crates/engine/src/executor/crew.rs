//! Multi-agent runs: a member agent's work is a CHILD run (own journal, events, cost ledger)
//! that the parent starts under the idempotency key `delegate:{parent}:{step}:{call_index}`, so
//! a step re-executed after a crash finds the child it started before instead of a second one.
//!
//! Waiting: the parent keeps its worker task while it waits, and claims the child's job itself
//! to execute it in that same task (`jobs::claim_target`). A chain of delegations therefore
//! needs one worker slot, never one per level, and a small pool cannot deadlock. When another
//! worker (or replica) already holds the child, the parent waits for its end (notice or poll).

use super::*;
use agentry_core::crew::{MAX_MAX_DEPTH, ROUTE_TOOL, delegate_tool_name};
use agentry_core::tool::ToolError;

/// How often a waiting parent looks at a child another replica executes.
const CHILD_POLL: Duration = Duration::from_millis(500);

/// The tools a manager or router is offered on top of its own: `delegate_to_<member>` per
/// member of a hierarchical crew, or the router's `route_to`.
pub(super) async fn member_tools(
    platform: &Platform,
    scope: WorkspaceScope,
    spec: &AgentSpec,
) -> Result<Vec<agentry_core::chat::ToolSpec>, StoreError> {
    let describe = |slug: &str, agent: Option<agentry_core::agent::Agent>| match agent {
        Some(a) => a
            .spec
            .description
            .filter(|d| !d.trim().is_empty())
            .unwrap_or(a.spec.name),
        None => format!("the agent '{slug}'"),
    };
    let mut tools = Vec::new();
    if let Some(crew) = &spec.crew
        && crew.process == agentry_core::crew::CrewProcess::Hierarchical
    {
        for slug in &crew.members {
            let agent = agents::get(&platform.db, scope, slug).await?;
            tools.push(agentry_core::chat::ToolSpec {
                name: delegate_tool_name(slug),
                description: format!(
                    "Delegate a task to {}. Returns that agent's answer.",
                    describe(slug, agent)
                ),
                parameters: json!({
                    "type": "object",
                    "properties": {"task": {"type": "string", "description": "What the agent should do, with everything it needs to know."}},
                    "required": ["task"],
                    "additionalProperties": false,
                }),
            });
        }
    }
    if let Some(network) = &spec.network {
        let mut lines = Vec::new();
        for slug in &network.members {
            let agent = agents::get(&platform.db, scope, slug).await?;
            lines.push(format!("{slug}: {}", describe(slug, agent)));
        }
        tools.push(agentry_core::chat::ToolSpec {
            name: ROUTE_TOOL.to_string(),
            description: format!(
                "Choose the agent that answers the user's message. Agents: {}",
                lines.join("; ")
            ),
            parameters: json!({
                "type": "object",
                "properties": {"member": {"type": "string", "enum": network.members}},
                "required": ["member"],
                "additionalProperties": false,
            }),
        });
    }
    Ok(tools)
}

/// How many delegation calls come before the call whose result goes to `step` (in journal
/// order, so the count is the same after a restart whatever order calls finished in).
pub(super) fn delegations_before(spec: &AgentSpec, journal: &[JournalEntry], step: i64) -> u32 {
    let mut n = 0;
    for entry in journal {
        if let StepRecord::Llm { tool_calls, .. } = &entry.record {
            for (i, call) in tool_calls.iter().enumerate() {
                if entry.step + 1 + (i as i64) < step
                    && spec.delegate_for_tool(&call.name).is_some()
                {
                    n += 1;
                }
            }
        }
    }
    n
}

/// The slugs of the runs above this one and its own, top first.
async fn chain(exec: &Execution) -> Result<Vec<String>, StoreError> {
    let mut slugs = vec![exec.agent_slug.clone()];
    let mut parent = exec.run.parent_agent_run_id;
    // Depth is bounded by MAX_MAX_DEPTH; the cap only guards against a corrupt cycle.
    for _ in 0..=MAX_MAX_DEPTH + 1 {
        let Some(id) = parent else { break };
        let Some(row) = runs::get(&exec.platform.db, exec.scope, RunId(id)).await? else {
            break;
        };
        slugs.push(row.agent_slug.clone());
        parent = row.parent_agent_run_id;
    }
    slugs.reverse();
    Ok(slugs)
}

/// A delegation that was started (or found again), or refused with the error the model sees.
pub(super) enum Started {
    Child { member: String, row: Box<RunRow> },
    Refused(ToolError),
}

/// One delegation to make: which member, with what input, recorded at which step.
pub(super) struct Delegation<'a> {
    pub(super) member: &'a str,
    pub(super) input: RunInput,
    pub(super) step: i64,
    pub(super) call_index: usize,
    pub(super) max_depth: u32,
}

/// Checks loop and depth, then creates the member's run (or finds the one a crashed execution
/// created) and commits `delegation.started`.
pub(super) async fn start_child(
    exec: &mut Execution,
    d: Delegation<'_>,
) -> Result<Started, ExecError> {
    let chain = chain(exec).await?;
    if chain.iter().any(|s| s == d.member) {
        let path = format!("{} → {}", chain.join(" → "), d.member);
        return Ok(Started::Refused(ToolError::new(
            ErrorCode::DelegationLoop.as_str(),
            format!("delegating to '{}' would loop: {path}", d.member),
        )));
    }
    let depth = exec.run.delegation_depth + 1;
    let max_depth = d.max_depth.min(MAX_MAX_DEPTH);
    if depth > i64::from(max_depth) {
        return Ok(Started::Refused(ToolError::new(
            ErrorCode::DelegationDepthExceeded.as_str(),
            format!(
                "delegating to '{}' would start a run at depth {depth}; at most {max_depth} is allowed (chain: {})",
                d.member,
                chain.join(" → ")
            ),
        )));
    }
    let Some(agent) = agents::get(&exec.platform.db, exec.scope, d.member).await? else {
        return Ok(Started::Refused(ToolError::new(
            ErrorCode::AgentNotFound.as_str(),
            format!("no agent with slug '{}' exists any more", d.member),
        )));
    };
    let input = serde_json::to_value(&d.input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let outcome = runs::create_child(
        &exec.platform.db,
        exec.scope,
        runs::NewRun {
            agent_id: agent.id,
            agent_slug: agent.spec.slug.clone(),
            agent_version: agent.version,
            thread_id: None,
            input,
            idempotency_key: Some(format!(
                "delegate:{}:{}:{}",
                exec.run_id, d.step, d.call_index
            )),
            request_hash: None,
            api_key_id: exec.subject.api_key_id,
            user_id: exec.subject.user_id,
            end_user: exec.subject.end_user.clone(),
            parent_run_id: None,
        },
        Some(runs::AgentParent {
            run_id: exec.run_id,
            depth,
        }),
    )
    .await?;
    let (row, created) = match outcome {
        runs::CreateOutcome::Created(row) => (row, true),
        runs::CreateOutcome::Existing(row) => (row, false),
    };
    if created {
        metrics::counter!("agentry_delegations_total").increment(1);
    }
    let ev = exec.event(
        event::DELEGATION_STARTED,
        json!({"step": d.step, "member": d.member, "child_run_id": row.id, "depth": depth, "resumed": !created}),
    );
    exec.commit(vec![], vec![ev], RunChange::None).await?;
    Ok(Started::Child {
        member: d.member.to_string(),
        row: Box::new(row),
    })
}

/// Waits until the child run ends, executing it in this task when nobody else holds it.
pub(super) async fn wait_child(
    platform: Arc<Platform>,
    scope: WorkspaceScope,
    parent: uuid::Uuid,
    child: uuid::Uuid,
) -> Result<RunRow, StoreError> {
    let mut notices = platform.notifier.subscribe_events();
    let mut cancel_sent = false;
    loop {
        let Some(row) = runs::get(&platform.db, scope, RunId(child)).await? else {
            return Err(StoreError::Corrupt(format!("child run {child} vanished")));
        };
        if row.status().is_terminal() {
            return Ok(row);
        }
        // A cancelled parent cancels the work it is waiting for.
        if !cancel_sent && runs::cancel_requested(&platform.db, parent).await? {
            runs::request_cancel(&platform.db, scope, RunId(child)).await?;
            cancel_sent = true;
            continue;
        }
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(platform.config.lease).unwrap_or_default();
        if let Some(job) =
            jobs::claim_target(&platform.db, &platform.worker_id, child, until, now).await?
        {
            crate::worker::run_inline(platform.clone(), job).await;
            continue;
        }
        let _ = tokio::time::timeout(CHILD_POLL, async {
            loop {
                match notices.recv().await {
                    Ok(n) if n.run_id == child && n.ended => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        })
        .await;
    }
}

/// What the parent sees of a child that ended: its answer, or why it has none.
pub(super) fn child_outcome(member: &str, row: &RunRow) -> Result<Value, ToolError> {
    match row.status() {
        RunStatus::Completed => Ok(json!({
            "member": member,
            "run_id": row.id,
            "output": row.output.clone().unwrap_or_default(),
        })),
        status => {
            let cause = row
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.0.code, e.0.message))
                .unwrap_or_else(|| status.as_str().to_string());
            Err(ToolError::new(
                ErrorCode::DelegationFailed.as_str(),
                format!("'{member}' (run {}) {}: {cause}", row.id, status.as_str()),
            ))
        }
    }
}

/// `delegation.completed` for the trace.
pub(super) fn completed_event(
    exec: &mut Execution,
    step: i64,
    member: &str,
    row: &RunRow,
) -> NewEvent {
    exec.event(
        event::DELEGATION_COMPLETED,
        json!({"step": step, "member": member, "child_run_id": row.id, "status": row.status().as_str()}),
    )
}

/// The journal record of a finished member run.
pub(super) fn member_record(
    call_id: String,
    name: String,
    arguments: Value,
    outcome: Result<Value, ToolError>,
    child: Option<uuid::Uuid>,
) -> StepRecord {
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
    StepRecord::Tool {
        call_id,
        name,
        arguments,
        result,
        error,
        child_run_id: child,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::chat::ToolCall;
    use agentry_core::crew::{CrewProcess, CrewSpec};

    #[test]
    fn delegations_are_counted_in_journal_order() {
        let spec = AgentSpec {
            crew: Some(CrewSpec {
                members: vec!["r".into()],
                process: CrewProcess::Hierarchical,
                max_depth: 3,
                max_delegations: 2,
            }),
            ..Default::default()
        };
        let call = |name: &str| ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: "{}".into(),
        };
        let journal = vec![JournalEntry {
            step: 0,
            record: StepRecord::Llm {
                model: "m".into(),
                content: None,
                tool_calls: vec![
                    call("delegate_to_r"),
                    call("calculator"),
                    call("delegate_to_r"),
                ],
                finish_reason: "tool_calls".into(),
                usage: Default::default(),
                usage_reported: true,
            },
        }];
        assert_eq!(delegations_before(&spec, &journal, 1), 0);
        assert_eq!(delegations_before(&spec, &journal, 3), 1);
        assert_eq!(delegations_before(&spec, &journal, 10), 2);
    }
}
