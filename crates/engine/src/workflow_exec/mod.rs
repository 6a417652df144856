//! Executes one claimed workflow run: rebuilds its cursor from the journal, then repeats —
//! start what is ready, record what finished (each record committed, fenced by the job lease,
//! before anything that depends on it starts), park when only timers, people or child runs
//! can move the run on — until the run ends.
//!
//! Durability: a record is the only way the run moves, and it commits with its events and any
//! rows it implies (an approval, a child run, a wake-up of the parent) in one transaction.
//! After a crash the next worker replays the same records into the same cursor; a node whose
//! result was committed never runs again, a node whose result was not runs again (with the
//! same idempotency key), and a non-idempotent node that may have half-happened asks a person.

use crate::platform::Platform;
use crate::service::workflow_runs::{decode, initial_cursor};
use agentry_core::run::event;
use agentry_core::scope::WorkspaceScope;
use agentry_store::jobs::{ClaimedJob, Lease};
use agentry_store::runs::{NewEvent, NewStep};
use agentry_store::workflow_runs::{self, Change, Commit, WorkflowRunRow};
use agentry_store::{Statement, StoreError};
use agentry_workflow::ValidatedWorkflow;
use agentry_workflow::machine::{Cursor, Note, Outcome, Record, ThreadId, Wait};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

mod blocked;
mod nodes;

/// Executions a run may make (`limits.max_steps` overrides).
pub const DEFAULT_MAX_STEPS: u64 = 10_000;
/// Largest serialized workflow state.
pub const MAX_STATE_BYTES: usize = 4 * 1024 * 1024;
/// Largest serialized output of one node.
pub const MAX_NODE_OUTPUT_BYTES: usize = 1024 * 1024;
/// Deepest sub-workflow nesting.
pub const MAX_DEPTH: i64 = 5;
/// Most items a `map` node may fan out to.
pub const MAX_MAP_ITEMS: usize = 10_000;
/// A run with nothing to do sleeps in place (keeping its lease) when its next timer is this
/// close; farther timers park the job in the queue instead.
const SLEEP_IN_PLACE: Duration = Duration::from_secs(2);
/// While blocked on people or child runs with other work in flight, how often the run checks
/// for wake-ups written by others (possibly on another replica).
const POLL: Duration = Duration::from_millis(300);
/// A parked run with no timer re-checks after this long anyway (a child run cancelled before
/// it started has no way to wake its parent).
const PARK_RECHECK: chrono::Duration = chrono::Duration::minutes(1);

#[derive(Debug, thiserror::Error)]
pub(crate) enum FlowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Service(#[from] crate::ServiceError),
}

/// What a started node reports back.
pub(crate) struct Finished {
    thread: ThreadId,
    node: String,
    record: Record,
    extra: Vec<Statement>,
}

/// One execution of one run.
pub(crate) struct Flow {
    platform: Arc<Platform>,
    lease: Lease,
    run: WorkflowRunRow,
    scope: WorkspaceScope,
    def: Arc<ValidatedWorkflow>,
    cursor: Cursor,
    next_idx: i64,
    next_seq: i64,
    wakeups: i64,
    cancel_requested: bool,
    max_steps: u64,
}

pub(crate) async fn execute(platform: Arc<Platform>, job: ClaimedJob) -> Result<(), FlowError> {
    let lease = job.lease();
    let Some(run) = workflow_runs::load_for_execution(&platform.db, job.target_id).await? else {
        finish_orphan_job(&platform, &lease).await?;
        return Ok(());
    };
    if workflow_runs::is_terminal(&run.status) {
        finish_orphan_job(&platform, &lease).await?;
        return Ok(());
    }
    let def = platform
        .workflow_definition(run.workflow_id, run.workflow_version)
        .await?;
    let steps = workflow_runs::journal(&platform.db, run.id).await?;
    let records = decode(&steps)?;
    let workflow = def.workflow();
    let cursor = initial_cursor(workflow, &run)
        .replay(workflow, &records)
        .map_err(|e| crate::ServiceError::internal("replaying a workflow journal", e))?;
    let next_seq = agentry_store::runs::last_event_seq(&platform.db, run.id).await? + 1;
    let max_steps = workflow
        .spec
        .limits
        .as_ref()
        .and_then(|l| l.max_steps)
        .unwrap_or(DEFAULT_MAX_STEPS);
    let mut flow = Flow {
        scope: run.scope(),
        platform,
        lease,
        def,
        cursor,
        next_idx: steps.len() as i64,
        next_seq,
        wakeups: run.wakeups,
        cancel_requested: run.cancel_requested,
        max_steps,
        run,
    };
    flow.begin().await?;
    flow.run_loop().await
}

async fn finish_orphan_job(platform: &Platform, lease: &Lease) -> Result<(), StoreError> {
    let mut tx = platform.db.begin().await?;
    agentry_store::jobs::finish(&mut tx, lease, Utc::now()).await?;
    tx.commit().await
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}

impl Flow {
    fn event(&mut self, name: &'static str, data: Value) -> NewEvent {
        let e = NewEvent {
            seq: self.next_seq,
            name,
            data,
        };
        self.next_seq += 1;
        e
    }

    /// Marks the run running; a dead-lettered run that was retried records the retry.
    async fn begin(&mut self) -> Result<(), FlowError> {
        let mut events = Vec::new();
        let mut records = Vec::new();
        if self.run.started_at.is_none() {
            events.push(self.event(
                event::RUN_STARTED,
                json!({"run_id": self.run.id, "workflow": self.run.workflow_slug,
                       "version": self.run.workflow_version, "worker": self.platform.worker_id}),
            ));
        }
        if let Some(Outcome::Failed {
            thread: Some(thread),
            node: Some(node),
            ..
        }) = &self.cursor.outcome
            && self.run.status == workflow_runs::QUEUED
        {
            records.push(Record::Retried {
                thread: *thread,
                node: node.clone(),
            });
        }
        if self.run.status == workflow_runs::RUNNING && records.is_empty() && events.is_empty() {
            return Ok(());
        }
        self.commit(
            records,
            events,
            Change::Started { at: Utc::now() },
            Vec::new(),
        )
        .await
    }

    /// Applies records to the cursor and commits them with their events in one transaction.
    async fn commit(
        &mut self,
        records: Vec<Record>,
        mut events: Vec<NewEvent>,
        change: Change,
        extra: Vec<Statement>,
    ) -> Result<(), FlowError> {
        let now = Utc::now();
        let mut steps = Vec::with_capacity(records.len());
        for record in records {
            let notes = self
                .cursor
                .apply(self.def.workflow(), &record)
                .map_err(|e| crate::ServiceError::internal("applying a workflow record", e))?;
            events.extend(self.events_for(&record, notes));
            steps.push(NewStep {
                idx: self.next_idx,
                kind: record.kind(),
                record: serde_json::to_value(&record)
                    .map_err(|e| crate::ServiceError::internal("serializing a record", e))?,
                started_at: now,
                ended_at: now,
            });
            self.next_idx += 1;
        }
        let ended = matches!(change, Change::Ended { .. });
        let outcome = workflow_runs::commit(
            &self.platform.db,
            &self.lease,
            Commit {
                run_id: self.run.id,
                org_id: self.run.org_id,
                steps,
                events,
                change,
                extra,
            },
        )
        .await?;
        self.cancel_requested = outcome.cancel_requested;
        self.wakeups = outcome.wakeups;
        self.run.status = if ended {
            self.run.status.clone()
        } else {
            workflow_runs::RUNNING.into()
        };
        self.platform.notifier.run_events_stored(self.run.id, ended);
        Ok(())
    }

    /// The events a record (and what it caused) produces.
    fn events_for(&mut self, record: &Record, notes: Vec<Note>) -> Vec<NewEvent> {
        let mut out = Vec::new();
        match record {
            Record::Completed {
                thread,
                node,
                output,
                ..
            } => {
                let data = json!({"node": node, "thread": thread, "output": small(output)});
                out.push(self.event(event::NODE_COMPLETED, data));
            }
            Record::Failed {
                thread,
                node,
                code,
                message,
                attempt,
                retry_at,
                ..
            } => {
                let data = json!({"node": node, "thread": thread, "code": code, "message": message,
                                  "attempt": attempt, "retry_at": retry_at.map(at_ms)});
                out.push(self.event(event::NODE_FAILED, data));
            }
            Record::Forked {
                thread,
                node,
                items,
            } => {
                let data = json!({"node": node, "thread": thread,
                                  "items": items.as_ref().map(Vec::len)});
                out.push(self.event(event::NODE_STARTED, data));
            }
            Record::Sleeping {
                thread,
                node,
                until,
            } => {
                let data = json!({"node": node, "thread": thread, "until": at_ms(*until)});
                out.push(self.event(event::RUN_WAITING, data));
            }
            Record::ApprovalRequested {
                thread,
                node,
                approval,
                expires_at,
                ambiguous,
            } => {
                let data = json!({"node": node, "thread": thread, "approval_id": approval,
                                  "expires_at": expires_at.map(at_ms), "ambiguous": ambiguous});
                out.push(self.event(event::APPROVAL_REQUESTED, data));
            }
            Record::ApprovalDecided {
                thread,
                node,
                approval,
                approved,
                by,
                comment,
                ..
            } => {
                let data = json!({"node": node, "thread": thread, "approval_id": approval,
                                  "approved": approved, "by": by, "comment": comment});
                out.push(self.event(event::APPROVAL_DECIDED, data));
            }
            Record::ChildStarted {
                thread,
                node,
                child,
            } => {
                let data = json!({"node": node, "thread": thread, "child_run_id": child});
                out.push(self.event(event::NODE_STARTED, data));
            }
            Record::Retried { thread, node } => {
                let data = json!({"node": node, "thread": thread});
                out.push(self.event(event::RUN_RETRIED, data));
            }
            Record::Intent { .. } | Record::Cancelled | Record::Aborted { .. } => {}
        }
        for note in notes {
            let Note::Joined { node, output } = note;
            let data = json!({"node": node, "output": small(&output)});
            out.push(self.event(event::NODE_COMPLETED, data));
        }
        out
    }

    async fn run_loop(&mut self) -> Result<(), FlowError> {
        let mut in_flight: FuturesUnordered<tokio::task::JoinHandle<Finished>> =
            FuturesUnordered::new();
        let mut running: HashSet<ThreadId> = HashSet::new();
        // Blocked threads are checked on the first pass and whenever the wake counter moves.
        let mut checked_wakeups: Option<i64> = None;
        let mut last_poll = tokio::time::Instant::now();
        loop {
            if let Some(outcome) = self.cursor.outcome.clone() {
                // Results still in flight belong to threads the ending abandons.
                for handle in in_flight.iter() {
                    handle.abort();
                }
                return self.end(outcome).await;
            }
            if self.cancel_requested {
                return self.commit_end_record(Record::Cancelled).await;
            }
            if self.cursor.steps >= self.max_steps {
                let message = format!(
                    "the run made {} node executions, its limit (limits.max_steps)",
                    self.max_steps
                );
                return self
                    .commit_end_record(Record::Aborted {
                        code: "workflow_limit_exceeded".into(),
                        message,
                    })
                    .await;
            }
            if self.cursor.state_bytes() > MAX_STATE_BYTES {
                let message = format!("the workflow state grew beyond {MAX_STATE_BYTES} bytes");
                return self
                    .commit_end_record(Record::Aborted {
                        code: "workflow_limit_exceeded".into(),
                        message,
                    })
                    .await;
            }

            // 1. What can move now, without waiting.
            let now = now_ms();
            let check_blocked = checked_wakeups != Some(self.wakeups);
            let mut records = Vec::new();
            let mut extra = Vec::new();
            let mut to_start = Vec::new();
            let threads: Vec<(ThreadId, String, Wait)> = self
                .cursor
                .threads
                .iter()
                .filter(|(id, _)| !running.contains(id))
                .map(|(id, t)| (*id, t.node.clone(), t.wait.clone()))
                .collect();
            for (thread, node, wait) in threads {
                match wait {
                    Wait::Ready => to_start.push((thread, node)),
                    Wait::Backoff { until } if until <= now => to_start.push((thread, node)),
                    Wait::Sleep { until } if until <= now => records.push(Record::Completed {
                        thread,
                        node,
                        input: None,
                        output: Value::Null,
                        next: None,
                    }),
                    Wait::Approval {
                        approval,
                        expires_at,
                        ..
                    } if check_blocked || expires_at.is_some_and(|e| e <= now) => {
                        if let Some(r) = self.check_approval(thread, &node, &approval).await? {
                            records.push(r);
                        }
                    }
                    Wait::Child { child } if check_blocked => {
                        if let Some(r) = self.check_child(thread, &node, &child).await? {
                            records.push(r);
                        }
                    }
                    Wait::InFlight { attempt } => {
                        // Only a replayed journal has an intent without a running attempt: the
                        // process died mid-attempt, so whether the effect happened is unknown.
                        let (r, s) = self.ambiguous(thread, &node, attempt);
                        records.push(r);
                        extra.push(s);
                    }
                    _ => {}
                }
            }
            if check_blocked {
                checked_wakeups = Some(self.wakeups);
            }

            // 2. Start ready nodes: instant ones produce their record now; the others are
            //    spawned (after their intent or `node.started` is committed).
            let mut started_events = Vec::new();
            let mut spawn = Vec::new();
            for (thread, node) in to_start {
                match self.start_node(thread, &node).await? {
                    nodes::Started::Now(r, s) => {
                        records.push(r);
                        extra.extend(s);
                    }
                    nodes::Started::Later(task, intent) => {
                        if let Some(intent) = intent {
                            records.push(intent);
                        }
                        started_events.push(
                            self.event(
                                event::NODE_STARTED,
                                json!({"node": node, "thread": thread}),
                            ),
                        );
                        running.insert(thread);
                        spawn.push(task);
                    }
                }
            }
            if !records.is_empty() || !started_events.is_empty() {
                self.commit(records, started_events, Change::None, extra)
                    .await?;
                for task in spawn {
                    in_flight.push(tokio::spawn(task));
                }
                continue;
            }

            // 3. Nothing moved: wait for a result, a timer, a wake-up — or park.
            let next_timer = self.next_timer();
            if in_flight.is_empty() {
                let wait = next_timer.map(|t| (t - now_ms()).max(0) as u64);
                if let Some(ms) = wait
                    && Duration::from_millis(ms) <= SLEEP_IN_PLACE
                {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    continue;
                }
                match self.park(next_timer).await {
                    Ok(()) => return Ok(()),
                    Err(FlowError::Store(StoreError::LeaseLost)) => {
                        // Refused because a wake-up arrived meanwhile (or the lease is gone:
                        // the next commit finds out).
                        let (wakeups, cancel) =
                            workflow_runs::wakeups(&self.platform.db, self.run.id).await?;
                        if wakeups == self.wakeups && !cancel {
                            return Err(FlowError::Store(StoreError::LeaseLost));
                        }
                        self.wakeups = wakeups;
                        self.cancel_requested = cancel;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let timer = next_timer
                .map(|t| Duration::from_millis((t - now_ms()).max(0) as u64))
                .unwrap_or(POLL)
                .min(POLL.saturating_sub(last_poll.elapsed()));
            tokio::select! {
                Some(done) = in_flight.next() => {
                    let done = match done {
                        Ok(done) => done,
                        Err(e) if e.is_cancelled() => continue,
                        Err(e) => return Err(crate::ServiceError::internal("a node task panicked", e).into()),
                    };
                    running.remove(&done.thread);
                    let mut finished = vec![done];
                    // Take every other result that is already there: one commit for all.
                    while let Some(Some(Ok(more))) = in_flight.next().now_or_never() {
                        running.remove(&more.thread);
                        finished.push(more);
                    }
                    let mut records = Vec::new();
                    let mut extra = Vec::new();
                    for f in finished {
                        // A branch dropped by `merge: first` no longer exists: its result is moot.
                        if self.cursor.is_at(f.thread, &f.node) {
                            records.push(f.record);
                            extra.extend(f.extra);
                        }
                    }
                    if !records.is_empty() {
                        self.commit(records, Vec::new(), Change::None, extra).await?;
                    }
                }
                () = tokio::time::sleep(timer) => {
                    if last_poll.elapsed() >= POLL {
                        last_poll = tokio::time::Instant::now();
                        let (wakeups, cancel) =
                            workflow_runs::wakeups(&self.platform.db, self.run.id).await?;
                        self.wakeups = wakeups;
                        self.cancel_requested |= cancel;
                    }
                }
            }
        }
    }

    /// The earliest timer of the run (a wait, a retry backoff, an approval deadline, a
    /// re-check of child runs).
    fn next_timer(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for t in self.cursor.threads.values() {
            match &t.wait {
                Wait::Backoff { until } | Wait::Sleep { until } => consider(*until),
                Wait::Approval {
                    expires_at: Some(e),
                    ..
                } => consider(*e),
                _ => {}
            }
        }
        next
    }

    /// Puts the job back in the queue until the next timer (or a wake-up), refused when a
    /// wake-up arrived after the one this execution saw.
    async fn park(&mut self, next_timer: Option<i64>) -> Result<(), FlowError> {
        let recheck = Utc::now() + PARK_RECHECK;
        let has_children = self
            .cursor
            .threads
            .values()
            .any(|t| matches!(t.wait, Wait::Child { .. }));
        let wake_at = match next_timer.map(at_ms) {
            Some(t) if has_children => t.min(recheck),
            Some(t) => t,
            None if has_children => recheck,
            // Only people can move the run on; their decision wakes it.
            None => Utc::now() + chrono::Duration::days(7),
        };
        let seen = self.wakeups;
        self.commit(
            Vec::new(),
            Vec::new(),
            Change::Park {
                wake_at,
                seen_wakeups: seen,
            },
            Vec::new(),
        )
        .await?;
        self.run.status = workflow_runs::WAITING.into();
        Ok(())
    }

    async fn commit_end_record(&mut self, record: Record) -> Result<(), FlowError> {
        self.commit(vec![record], Vec::new(), Change::None, Vec::new())
            .await?;
        let outcome = self.cursor.outcome.clone().unwrap_or(Outcome::Cancelled);
        self.end(outcome).await
    }

    /// Ends the run with its outcome: status, output or error, the terminal event, pending
    /// approvals closed, the parent woken — one transaction, which also finishes the job.
    async fn end(&mut self, outcome: Outcome) -> Result<(), FlowError> {
        let now = Utc::now();
        let (status, output, error, ev) = match outcome {
            Outcome::Completed { output } => match self.check_output(&output) {
                Ok(()) => {
                    let ev = self.event(event::RUN_COMPLETED, json!({"output": small(&output)}));
                    (workflow_runs::COMPLETED, Some(output), None, ev)
                }
                Err(message) => {
                    let error = json!({"code": "output_schema_mismatch", "message": message});
                    let ev = self.event(event::RUN_FAILED, json!({"error": error}));
                    (workflow_runs::FAILED, None, Some(error), ev)
                }
            },
            Outcome::Failed {
                code,
                message,
                node,
                thread,
            } => {
                let error =
                    json!({"code": code, "message": message, "node": node, "thread": thread});
                let ev = self.event(event::RUN_FAILED, json!({"error": error}));
                (workflow_runs::FAILED, None, Some(error), ev)
            }
            Outcome::Cancelled => {
                let error = json!({"code": "run_cancelled", "message": "the run was cancelled"});
                let ev = self.event(event::RUN_CANCELLED, json!({}));
                (workflow_runs::CANCELLED, None, Some(error), ev)
            }
        };
        let announced = (status, output.clone());
        let mut extra = vec![agentry_store::approvals::close_for_run_statement(
            self.run.id,
            now,
        )];
        if let Some(parent) = self.run.parent_run_id {
            extra.extend(workflow_runs::wake_statements(parent, now));
        }
        if status == workflow_runs::CANCELLED {
            // Children still running are cancelled with their parent (in the same commit).
            extra.extend(workflow_runs::cancel_children_statements(self.run.id, now));
        }
        metrics::counter!("agentry_workflow_runs_finished_total", "status" => status).increment(1);
        self.commit(
            Vec::new(),
            vec![ev],
            Change::Ended {
                status,
                output,
                error,
                at: now,
            },
            extra,
        )
        .await?;
        self.run.status = status.into();
        self.announce_end(announced.0, announced.1).await;
        Ok(())
    }

    /// Starts the event triggers listening for this workflow's end. After the end committed, so
    /// a failure here is logged and counted, never the run's; a crash before this point is
    /// covered by the triggers' sweep.
    async fn announce_end(&self, status: &str, output: Option<Value>) {
        let fired = crate::service::triggers::on_run_ended(
            &self.platform,
            self.scope,
            crate::service::triggers::config::RunKind::Workflow,
            &self.run.workflow_slug,
            status,
            self.run.id,
            output,
        )
        .await;
        if let Err(e) = fired {
            metrics::counter!("agentry_trigger_event_errors_total").increment(1);
            tracing::warn!(run_id = %self.run.id, error = %e.message, "firing event triggers failed; the sweep will retry");
        }
    }

    fn check_output(&self, output: &Value) -> Result<(), String> {
        let Some(schema) = &self.def.workflow().spec.output else {
            return Ok(());
        };
        let validator = agentry_tools::schema::compile(schema)?;
        let violations = agentry_tools::schema::violations(&validator, output);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the output does not match the workflow's output schema: {}",
                violations.join("; ")
            ))
        }
    }
}

/// An output for an event: inline when small, else a marker (the run view has it in full).
fn small(value: &Value) -> Value {
    let text = value.to_string();
    if text.len() <= 8 * 1024 {
        value.clone()
    } else {
        json!({"truncated": true, "bytes": text.len()})
    }
}

use futures_util::FutureExt;
