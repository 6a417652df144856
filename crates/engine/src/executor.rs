//! Executes one claimed run: asks [`next_action`] what to do, does it, commits the outcome with
//! its events (fenced by the job lease), and repeats until the run ends.
//!
//! Streaming text is buffered and stored as `message.delta` events every [`DELTA_FLUSH`], so a
//! reader sees text live while the database sees a handful of writes per model call.

use crate::journal::{
    JournalEntry, NextAction, PendingCall, journal_messages, next_action, window_history,
};
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_core::agent::{AgentSpec, split_model};
use agentry_core::chat::{ChatRequest, DeltaSink, Message, Usage};
use agentry_core::ids::{AgentId, RunId};
use agentry_core::run::{RunError, RunInput, RunStatus, StepRecord, ToolErrorRecord, event};
use agentry_core::scope::WorkspaceScope;
use agentry_core::tool::ToolContext;
use agentry_store::jobs::{ClaimedJob, Lease};
use agentry_store::runs::{self, Commit, NewEvent, NewStep, RunChange, RunRow};
use agentry_store::{StoreError, agents, jobs};
use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    next_seq: i64,
    usage: Usage,
    journal: Vec<JournalEntry>,
    /// Learned from every commit: someone asked to cancel the run.
    cancel_requested: bool,
    /// Tool steps whose `tool.started` this execution already committed.
    announced: std::collections::HashSet<i64>,
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
        let ended = matches!(change, RunChange::Ended { .. });
        let outcome = runs::commit(
            &self.platform.db,
            &self.lease,
            Commit {
                run_id: self.run_id,
                org_id: self.org_id,
                steps,
                events,
                change,
            },
        )
        .await?;
        self.cancel_requested = outcome.cancel_requested;
        self.platform.notifier.run_events_stored(self.run_id, ended);
        Ok(())
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
        next_seq,
        usage: Usage {
            input_tokens: run.input_tokens.max(0) as u64,
            output_tokens: run.output_tokens.max(0) as u64,
        },
        journal: Vec::new(),
        cancel_requested: run.cancel_requested,
        announced: std::collections::HashSet::new(),
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
    let base = base_messages(&platform, &run, &spec).await?;
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
            history.extend(input_messages(&prior));
            let journal = load_journal(platform, run.scope(), prior.id).await?;
            history.extend(journal_messages(&journal));
        }
        messages.extend(window_history(history, window));
    }
    messages.extend(input_messages(run));
    Ok(messages)
}

fn input_messages(run: &RunRow) -> Vec<Message> {
    serde_json::from_value::<RunInput>(run.input.0.clone())
        .map(RunInput::into_messages)
        .unwrap_or_default()
}

async fn run_loop(
    exec: &mut Execution,
    spec: &AgentSpec,
    base: &[Message],
    mut resumed: bool,
) -> Result<(), ExecError> {
    // The provider is resolved once per execution: one lookup, one key decryption.
    let Some((provider, model_name)) = split_model(&spec.model) else {
        exec.fail(
            ErrorCode::AgentUnavailable,
            format!("invalid model '{}'", spec.model),
        )
        .await?;
        return Ok(());
    };
    let mut model = None;
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
                let chat = match &model {
                    Some(m) => Arc::clone(m),
                    None => match exec.platform.chat_model(exec.scope.org(), provider).await {
                        Ok(m) => model.insert(m).clone(),
                        Err(e) => {
                            exec.fail(e.code, e.message).await?;
                            return Ok(());
                        }
                    },
                };
                let target = ModelTarget {
                    chat: chat.as_ref(),
                    provider,
                    model_name,
                };
                if call_model(exec, spec, base, step, &target).await? == Flow::Ended {
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

struct ModelTarget<'a> {
    chat: &'a dyn agentry_core::chat::ChatModel,
    provider: &'a str,
    model_name: &'a str,
}

/// Collects streamed text between flushes.
#[derive(Default)]
struct DeltaBuffer(Mutex<String>);

impl DeltaSink for DeltaBuffer {
    fn text_delta(&self, text: &str) {
        if let Ok(mut buf) = self.0.lock() {
            buf.push_str(text);
        }
    }
}

impl DeltaBuffer {
    fn take(&self) -> String {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

/// Calls the model and commits its reply together with what follows from it: the
/// announcement of the tool calls it asked for, or the end of the run.
async fn call_model(
    exec: &mut Execution,
    spec: &AgentSpec,
    base: &[Message],
    step: i64,
    target: &ModelTarget<'_>,
) -> Result<Flow, ExecError> {
    let mut messages = base.to_vec();
    messages.extend(journal_messages(&exec.journal));
    let request = ChatRequest {
        model: target.model_name.to_string(),
        messages,
        tools: exec.platform.tools.specs(&spec.tools),
        temperature: spec.temperature,
        max_tokens: None,
    };
    let started_at = Utc::now();
    let clock = Instant::now();
    let buffer = DeltaBuffer::default();
    let result = {
        let call = target.chat.chat(&request, &buffer);
        tokio::pin!(call);
        // The first flush is one period away. (A fresh `interval`'s immediate first tick still
        // waits for the timer wheel — up to a millisecond per model call.)
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + DELTA_FLUSH, DELTA_FLUSH);
        loop {
            tokio::select! {
                result = &mut call => break result,
                _ = ticker.tick() => {
                    let text = buffer.take();
                    if !text.is_empty() {
                        let ev = exec.event(event::MESSAGE_DELTA, json!({"step": step, "text": text}));
                        exec.commit(vec![], vec![ev], RunChange::None).await?;
                    }
                }
            }
        }
    };
    let elapsed = clock.elapsed();
    let provider = target.provider.to_string();
    metrics::histogram!("agentry_model_call_duration_seconds", "provider" => provider.clone())
        .record(elapsed.as_secs_f64());
    let mut events = Vec::new();
    let rest = buffer.take();
    if !rest.is_empty() {
        events.push(exec.event(event::MESSAGE_DELTA, json!({"step": step, "text": rest})));
    }
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!("agentry_model_calls_total", "provider" => provider, "outcome" => "error").increment(1);
            let (ev, change) = exec.ending(
                RunStatus::Failed,
                None,
                Some(RunError {
                    code: e.code,
                    message: e.message,
                }),
            );
            events.push(ev);
            exec.commit(vec![], events, change).await?;
            return Ok(Flow::Ended);
        }
    };
    metrics::counter!("agentry_model_calls_total", "provider" => provider, "outcome" => "ok")
        .increment(1);
    let usage = response.usage.unwrap_or_default();
    metrics::counter!("agentry_model_tokens_total", "direction" => "input")
        .increment(usage.input_tokens);
    metrics::counter!("agentry_model_tokens_total", "direction" => "output")
        .increment(usage.output_tokens);
    exec.usage.add(usage);
    let record = StepRecord::Llm {
        model: response.model.clone(),
        content: response.content.clone(),
        tool_calls: response.tool_calls.clone(),
        finish_reason: response.finish_reason.as_str().to_string(),
        usage,
        usage_reported: response.usage.is_some(),
    };
    events.push(exec.event(
        event::LLM_COMPLETED,
        json!({
            "step": step,
            "model": response.model,
            "usage": usage,
            "finish_reason": response.finish_reason.as_str(),
            "duration_ms": elapsed.as_millis() as u64,
        }),
    ));
    let step_row = NewStep {
        idx: step,
        kind: "llm",
        record: serde_json::to_value(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        started_at,
        ended_at: Utc::now(),
    };
    exec.journal.push(JournalEntry { step, record });
    // What the reply leads to is committed with it: one transaction instead of two.
    let (flow, change) = match next_action(&exec.journal, spec.max_steps) {
        NextAction::RunTools { calls } => {
            let announced = exec.announce(&calls);
            events.extend(announced);
            (Flow::Continue, usage_change(exec))
        }
        NextAction::Complete { output } => {
            let (ev, change) = exec.ending(RunStatus::Completed, Some(output), None);
            events.push(ev);
            (Flow::Ended, change)
        }
        NextAction::Fail { code, message } => {
            let (ev, change) =
                exec.ending(RunStatus::Failed, None, Some(RunError { code, message }));
            events.push(ev);
            (Flow::Ended, change)
        }
        NextAction::CallModel { .. } => (Flow::Continue, usage_change(exec)),
    };
    exec.commit(vec![step_row], events, change).await?;
    Ok(flow)
}

fn usage_change(exec: &Execution) -> RunChange {
    RunChange::Usage {
        input_tokens: exec.usage.input_tokens as i64,
        output_tokens: exec.usage.output_tokens as i64,
    }
}

/// The idempotency key a tool call carries: stable across retries and restarts.
fn tool_idempotency_key(run_id: uuid::Uuid, step: i64, call_index: usize) -> String {
    let mut h = Sha256::new();
    h.update(format!("{run_id}:{step}:{call_index}").as_bytes());
    hex::encode(&h.finalize()[..16])
}

async fn run_tools(
    exec: &mut Execution,
    spec: &AgentSpec,
    calls: Vec<PendingCall>,
) -> Result<(), ExecError> {
    // After a restart the calls were announced by an earlier execution: announce the retry.
    let started = exec.announce(&calls);
    if !started.is_empty() {
        exec.commit(vec![], started, RunChange::None).await?;
    }

    let platform = exec.platform.clone();
    let run_id = exec.run_id;
    let mut running: FuturesUnordered<_> = calls
        .into_iter()
        .map(|p| {
            let platform = platform.clone();
            let allowed = spec.tools.iter().any(|t| t == &p.call.name);
            async move {
                let started_at = Utc::now();
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
                (p, started_at, outcome)
            }
        })
        .collect();
    // Each result commits as soon as it is ready, so a crash never loses a finished call.
    while let Some((p, started_at, outcome)) = running.next().await {
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
        };
        let mut data = json!({"step": p.step, "call_id": p.call.id, "name": p.call.name});
        match (&result, &error) {
            (_, Some(err)) => data["error"] = json!(err),
            (Some(v), None) => data["result"] = v.clone(),
            (None, None) => {}
        }
        let ev = exec.event(event::TOOL_COMPLETED, data);
        let step_row = NewStep {
            idx: p.step,
            kind: "tool",
            record: serde_json::to_value(&record)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            started_at,
            ended_at: Utc::now(),
        };
        exec.commit(vec![step_row], vec![ev], RunChange::None)
            .await?;
        exec.journal.push(JournalEntry {
            step: p.step,
            record,
        });
    }
    Ok(())
}

/// Tool names the model invents must not become metric labels (unbounded cardinality).
fn tool_label(name: &str, spec: &AgentSpec) -> String {
    if spec.tools.iter().any(|t| t == name) {
        name.to_string()
    } else {
        "unknown".to_string()
    }
}

/// The model's arguments as JSON when they parse, else the raw text (recorded as given).
fn parse_arguments(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}
