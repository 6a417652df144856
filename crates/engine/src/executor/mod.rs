//! Executes one claimed run: asks [`next_action`] what to do, does it, commits the outcome with
//! its events (fenced by the job lease), and repeats until the run ends.
//!
//! Streaming text is buffered and stored as `message.delta` events every [`DELTA_FLUSH`], so a
//! reader sees text live while the database sees a handful of writes per model call.

use crate::budget::{self, Held, RunBudgets};
use crate::journal::{
    JournalEntry, NextAction, PendingCall, journal_messages, next_action, window_history,
};
use crate::platform::Platform;
use crate::pricing::{Price, PriceSource};
use crate::response_cache;
use crate::service::routing::RoutingConfig;
use agentry_core::ErrorCode;
use agentry_core::agent::DEFAULT_MAX_OUTPUT_TOKENS;
use agentry_core::agent::ModelRef;
use agentry_core::agent::{AgentSpec, split_model};
use agentry_core::chat::{
    ChatModel, ChatRequest, ChatResponse, DeltaSink, Message, ProviderError, Usage,
};
use agentry_core::ids::{AgentId, RunId};
use agentry_core::run::{RunError, RunInput, RunStatus, StepRecord, ToolErrorRecord, event};
use agentry_core::scope::WorkspaceScope;
use agentry_core::tool::ToolContext;
use agentry_guardrails::{CompiledPolicy, GuardrailEvent};
use agentry_routing::Tier;
use agentry_store::jobs::{ClaimedJob, Lease};
use agentry_store::runs::{self, Commit, NewEvent, NewStep, RunChange, RunRow};
use agentry_store::{StoreError, agents, budgets, costs, jobs};
use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod answer;
mod attempt;
mod crew;
mod guard;
mod model_step;
mod network;
mod route;
mod sequential;
mod tool_step;

use answer::*;
use attempt::*;
use guard::*;
use model_step::*;
use route::*;
use tool_step::*;

const DELTA_FLUSH: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Service(#[from] crate::ServiceError),
}

/// The state of one execution: where the journal is, which event sequence comes next.
struct Execution {
    platform: Arc<Platform>,
    lease: Lease,
    run_id: uuid::Uuid,
    org_id: uuid::Uuid,
    scope: WorkspaceScope,
    /// The agent's slug: event triggers listen to it.
    agent_slug: String,
    next_seq: i64,
    usage: Usage,
    journal: Vec<JournalEntry>,
    /// Learned from every commit: someone asked to cancel the run.
    cancel_requested: bool,
    /// Tool steps whose `tool.started` this execution already committed.
    announced: std::collections::HashSet<i64>,
    /// Who the run's costs are attributed to.
    subject: RunSubject,
    /// Providers resolved by this execution (one lookup and key decryption each).
    models: HashMap<String, Arc<dyn ChatModel>>,
    /// Prices looked up by this execution, per `provider/model`.
    prices: HashMap<String, Option<(Price, PriceSource)>>,
    /// The answered attempt's ledger and settlement statements and events, for the step's
    /// commit.
    pending_extra: Vec<agentry_store::Statement>,
    pending_events: Vec<NewEvent>,
    last_call: Option<CallCost>,
    /// The run's guardrails (the org's and the agent's policies merged).
    guard: Arc<CompiledPolicy>,
    /// The workflow run waiting for this run, if a workflow's `agent` node started it.
    parent_run_id: Option<uuid::Uuid>,
    /// The run as loaded (its input, thread and place in a delegation chain).
    run: RunRow,
    /// Tools a crew manager or network router is offered besides its own (`crew.rs`).
    member_tools: Vec<agentry_core::chat::ToolSpec>,
}

/// The run's attribution, copied into every cost event.
struct RunSubject {
    workspace_id: uuid::Uuid,
    agent_id: uuid::Uuid,
    agent_version: i64,
    api_key_id: Option<uuid::Uuid>,
    user_id: Option<uuid::Uuid>,
    end_user: Option<String>,
}

impl RunSubject {
    fn budget_subject(&self) -> budgets::Subject {
        budgets::Subject {
            workspace_id: self.workspace_id,
            agent_id: self.agent_id,
            api_key_id: self.api_key_id,
            end_user: self.end_user.clone(),
        }
    }
}

impl Execution {
    fn event(&mut self, name: &'static str, data: Value) -> NewEvent {
        let e = NewEvent {
            seq: self.next_seq,
            name,
            data,
        };
        self.next_seq += 1;
        e
    }

    async fn commit(
        &mut self,
        steps: Vec<NewStep>,
        events: Vec<NewEvent>,
        change: RunChange,
    ) -> Result<(), StoreError> {
        self.commit_with(steps, events, change, Vec::new()).await
    }

    /// A commit that also writes `extra` statements (cost ledger, budget settlement).
    async fn commit_with(
        &mut self,
        steps: Vec<NewStep>,
        events: Vec<NewEvent>,
        change: RunChange,
        mut extra: Vec<agentry_store::Statement>,
    ) -> Result<(), StoreError> {
        let ended = match &change {
            RunChange::Ended { status, output, .. } => Some((*status, output.clone())),
            _ => None,
        };
        // A workflow's `agent` node waits for this run: its end wakes the workflow, in the
        // same transaction, so the wake-up cannot be lost.
        if ended.is_some()
            && let Some(parent) = self.parent_run_id
        {
            extra.extend(agentry_store::workflow_runs::wake_statements(
                parent,
                Utc::now(),
            ));
        }
        let outcome = runs::commit(
            &self.platform.db,
            &self.lease,
            Commit {
                run_id: self.run_id,
                org_id: self.org_id,
                steps,
                events,
                change,
                extra,
            },
        )
        .await?;
        self.cancel_requested = outcome.cancel_requested;
        self.platform
            .notifier
            .run_events_stored(self.run_id, ended.is_some());
        if let Some((status, output)) = ended {
            self.announce_end(status, output).await;
        }
        Ok(())
    }

    /// Fires the event triggers listening to this agent, once the run's end is committed. A
    /// failure is logged and counted, never the run's: it ended already. A crash before this
    /// point is covered by the triggers' sweep.
    async fn announce_end(&self, status: RunStatus, output: Option<String>) {
        let fired = crate::service::triggers::on_run_ended(
            &self.platform,
            self.scope,
            crate::service::triggers::config::RunKind::Agent,
            &self.agent_slug,
            status.as_str(),
            self.run_id,
            output.map(Value::String),
        )
        .await;
        if let Err(e) = fired {
            metrics::counter!("agentry_trigger_event_errors_total").increment(1);
            tracing::warn!(run_id = %self.run_id, error = %e.message, "firing event triggers failed; the sweep will retry");
        }
    }

    /// The terminal event and run change for an ending.
    fn ending(
        &mut self,
        status: RunStatus,
        output: Option<String>,
        error: Option<RunError>,
    ) -> (NewEvent, RunChange) {
        let ev = match (&status, &error) {
            (RunStatus::Completed, _) => self.event(
                event::RUN_COMPLETED,
                json!({"output": output, "usage": self.usage}),
            ),
            (RunStatus::Cancelled, _) => self.event(event::RUN_CANCELLED, json!({})),
            (_, err) => self.event(event::RUN_FAILED, json!({"error": err})),
        };
        if let Some(err) = &error {
            tracing::info!(run_id = %self.run_id, code = %err.code, "run failed: {}", err.message);
        }
        metrics::counter!("agentry_runs_finished_total", "status" => status.as_str()).increment(1);
        let change = RunChange::Ended {
            status,
            output,
            error,
            input_tokens: self.usage.input_tokens as i64,
            output_tokens: self.usage.output_tokens as i64,
            at: Utc::now(),
        };
        (ev, change)
    }

    async fn end(
        &mut self,
        status: RunStatus,
        output: Option<String>,
        error: Option<RunError>,
    ) -> Result<(), StoreError> {
        let (ev, change) = self.ending(status, output, error);
        self.commit(vec![], vec![ev], change).await
    }

    /// Ends the run as failed, committing `events` (the step's trace so far) with the ending.
    async fn fail_with(
        &mut self,
        mut events: Vec<NewEvent>,
        code: ErrorCode,
        message: String,
    ) -> Result<(), StoreError> {
        let (ev, change) = self.ending(RunStatus::Failed, None, Some(RunError { code, message }));
        events.push(ev);
        self.commit(vec![], events, change).await
    }

    async fn fail(&mut self, code: ErrorCode, message: String) -> Result<(), StoreError> {
        self.end(RunStatus::Failed, None, Some(RunError { code, message }))
            .await
    }

    /// `tool.started` events for calls not announced yet by this execution.
    fn announce(&mut self, calls: &[PendingCall]) -> Vec<NewEvent> {
        let mut events = Vec::new();
        for p in calls {
            if self.announced.insert(p.step) {
                events.push(self.event(
                    event::TOOL_STARTED,
                    json!({"step": p.step, "call_id": p.call.id, "name": p.call.name, "arguments": parse_arguments(&p.call.arguments)}),
                ));
            }
        }
        events
    }
}

/// Runs a claimed job to its end (or until the lease is lost).
pub(crate) async fn execute(platform: Arc<Platform>, job: ClaimedJob) -> Result<(), ExecError> {
    let lease = job.lease();
    let Some(run) = runs::load_for_execution(&platform.db, job.target_id).await? else {
        finish_orphan_job(&platform, &lease).await?;
        return Ok(());
    };
    if run.status().is_terminal() {
        finish_orphan_job(&platform, &lease).await?;
        return Ok(());
    }
    let scope = run.scope();
    let next_seq = runs::last_event_seq(&platform.db, run.id).await? + 1;
    let mut exec = Execution {
        platform: platform.clone(),
        lease,
        run_id: run.id,
        org_id: run.org_id,
        scope,
        agent_slug: run.agent_slug.clone(),
        next_seq,
        usage: Usage {
            input_tokens: run.input_tokens.max(0) as u64,
            output_tokens: run.output_tokens.max(0) as u64,
            ..Default::default()
        },
        journal: Vec::new(),
        cancel_requested: run.cancel_requested,
        announced: std::collections::HashSet::new(),
        subject: RunSubject {
            workspace_id: run.workspace_id,
            agent_id: run.agent_id,
            agent_version: run.agent_version,
            api_key_id: run.api_key_id,
            user_id: run.user_id,
            end_user: run.end_user.clone(),
        },
        models: HashMap::new(),
        prices: HashMap::new(),
        pending_extra: Vec::new(),
        pending_events: Vec::new(),
        last_call: None,
        guard: Arc::new(CompiledPolicy::none()),
        parent_run_id: run.parent_run_id,
        run: run.clone(),
        member_tools: Vec::new(),
    };
    let resumed = run.status() == RunStatus::Running;
    if !resumed {
        let ev = exec.event(
            event::RUN_STARTED,
            json!({"run_id": run.id, "agent": run.agent_slug, "agent_version": run.agent_version, "worker": platform.worker_id}),
        );
        exec.commit(vec![], vec![ev], RunChange::Started { at: Utc::now() })
            .await?;
    } else {
        tracing::info!(run_id = %run.id, attempt = job.attempts, "resuming run from its journal");
    }

    let Some(spec) = agents::get_version(
        &platform.db,
        scope,
        AgentId(run.agent_id),
        run.agent_version,
    )
    .await?
    else {
        exec.fail(
            ErrorCode::AgentUnavailable,
            format!("agent version {} no longer exists", run.agent_version),
        )
        .await?;
        return Ok(());
    };
    exec.journal = load_journal(&platform, scope, run.id).await?;
    exec.guard = match crate::service::guardrails::compiled_for(&platform, scope.org(), &spec).await
    {
        Ok(policy) => Arc::new(policy),
        Err(e) => {
            // Never run unguarded because a policy no longer applies.
            exec.fail(
                ErrorCode::GuardrailBlocked,
                format!("the guardrail policy cannot be applied: {}", e.message),
            )
            .await?;
            return Ok(());
        }
    };
    if !resumed && exec.journal.is_empty() {
        let checked = check_run_input(&exec.guard, &run);
        let mut blocked = checked.iter().any(|c| c.blocked);
        let mut found: Vec<GuardrailEvent> = checked.into_iter().flat_map(|c| c.events).collect();
        // The optional classifier model judges what the injection rules let through.
        let guard = exec.guard.clone();
        if let Some((model, _)) = guard.input_injection_classifier()
            && !found.iter().any(|g| g.rule == "injection")
        {
            let text = run_input_text(&run);
            let verdict =
                ask_classifier(&mut exec, -1, model, INJECTION_CLASSIFIER_PROMPT, &text).await?;
            if verdict.is_some_and(|v| v.to_ascii_uppercase().contains("INJECTION")) {
                let finding = guard.classifier_finding(&text, model);
                blocked |= finding.blocked;
                found.extend(finding.events);
            }
        }
        if !found.is_empty() {
            let events = guardrail_events(&mut exec, None, &found);
            exec.commit(vec![], events, RunChange::None).await?;
        }
        if blocked {
            exec.fail(
                ErrorCode::GuardrailBlocked,
                format!(
                    "the input was blocked by guardrail rule(s): {}",
                    rule_names(&found)
                ),
            )
            .await?;
            return Ok(());
        }
    }
    exec.member_tools = crew::member_tools(&platform, scope, &spec).await?;
    if spec
        .crew
        .as_ref()
        .is_some_and(|c| c.process == agentry_core::crew::CrewProcess::Sequential)
    {
        return sequential::run_sequential(&mut exec, &spec).await;
    }
    let base = base_messages(&platform, &run, &spec, &exec.guard).await?;
    if spec.network.is_some() {
        return network::run_network(&mut exec, &spec, &base, resumed).await;
    }
    run_loop(&mut exec, &spec, &base, resumed).await
}

async fn finish_orphan_job(platform: &Platform, lease: &Lease) -> Result<(), StoreError> {
    let mut tx = platform.db.begin().await?;
    jobs::finish(&mut tx, lease, Utc::now()).await?;
    tx.commit().await
}

async fn load_journal(
    platform: &Platform,
    scope: WorkspaceScope,
    run_id: uuid::Uuid,
) -> Result<Vec<JournalEntry>, StoreError> {
    runs::steps(&platform.db, scope, RunId(run_id))
        .await?
        .into_iter()
        .map(|row| {
            serde_json::from_value::<StepRecord>(row.record.0)
                .map(|record| JournalEntry {
                    step: row.idx,
                    record,
                })
                .map_err(|e| StoreError::Corrupt(format!("step {}: {e}", row.idx)))
        })
        .collect()
}

/// Instructions, the thread's earlier turns, and this run's input.
async fn base_messages(
    platform: &Platform,
    run: &RunRow,
    spec: &AgentSpec,
    guard: &CompiledPolicy,
) -> Result<Vec<Message>, ExecError> {
    let mut messages = Vec::new();
    if !spec.instructions.trim().is_empty() {
        messages.push(Message::system(spec.instructions.clone()));
    }
    if let Some(thread) = &run.thread_id {
        let window = platform.config.thread_window;
        let earlier = runs::thread_runs(
            &platform.db,
            run.scope(),
            thread,
            RunId(run.id),
            window as u64,
        )
        .await?;
        let mut history = Vec::new();
        for prior in earlier {
            history.extend(input_messages(&prior, guard));
            let journal = load_journal(platform, run.scope(), prior.id).await?;
            if crate::journal::is_replayable(&journal) {
                history.extend(journal_messages(&journal));
            } else if let Some(output) = &prior.output {
                // A run whose steps are not a model conversation (a sequential crew, a network
                // whose router answered in text): its answer stands for them.
                history.push(Message::assistant(output.clone()));
            }
        }
        messages.extend(window_history(history, window));
    }
    messages.extend(input_messages(run, guard));
    Ok(messages)
}

async fn run_loop(
    exec: &mut Execution,
    spec: &AgentSpec,
    base: &[Message],
    mut resumed: bool,
) -> Result<(), ExecError> {
    loop {
        if exec.cancel_requested {
            exec.end(RunStatus::Cancelled, None, None).await?;
            return Ok(());
        }
        match next_action(&exec.journal, spec.max_steps) {
            NextAction::CallModel { step } => {
                if resumed {
                    // Text of an interrupted model call may have been streamed already.
                    let ev = exec.event(event::MESSAGE_RESET, json!({"step": step}));
                    exec.commit(vec![], vec![ev], RunChange::None).await?;
                }
                if call_model(exec, spec, base, step).await? == Flow::Ended {
                    return Ok(());
                }
            }
            NextAction::RunTools { calls } => run_tools(exec, spec, calls).await?,
            NextAction::Complete { output } => {
                exec.end(RunStatus::Completed, Some(output), None).await?;
                return Ok(());
            }
            NextAction::Fail { code, message } => {
                exec.fail(code, message).await?;
                return Ok(());
            }
        }
        resumed = false;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Ended,
}

fn usage_change(exec: &Execution) -> RunChange {
    RunChange::Usage {
        input_tokens: exec.usage.input_tokens as i64,
        output_tokens: exec.usage.output_tokens as i64,
    }
}
