//! The workflow run as a pure state machine over its journal.
//!
//! A run's journal is a list of [`Record`]s. [`Cursor::apply`] folds one record into the run's
//! [`Cursor`] (state, active threads, parallel/map groups, visit counts, outcome); replaying the
//! journal from [`Cursor::start`] rebuilds exactly the cursor the executor had before a crash.
//! Every input that is not a pure function of the cursor (a node's output, the time a timer was
//! set for, a person's decision, a child run's id) is *in* a record, so replay never re-runs
//! anything.
//!
//! Threads: the run starts with thread 0 at `spec.start`. A `parallel` node blocks its thread on
//! a group and starts one thread per branch; a branch ends when its next node is the group's
//! `join`, and when every branch arrived (or the first, for `merge: first`) the parent continues
//! at `join` with the merged results in `into`. A `map` node starts one item thread per item,
//! at most `concurrency` at a time; each runs the item node once. Times are Unix milliseconds
//! so this module needs no date library.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::model::{Merge, NodeKind, Workflow};

pub type ThreadId = u32;
pub type GroupId = u32;

/// What a thread is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "wait", rename_all = "snake_case")]
pub enum Wait {
    /// Its node should run now.
    Ready,
    /// A failed attempt; the next one runs at `until`.
    Backoff { until: i64 },
    /// A `wait` node sleeping until `until`.
    Sleep { until: i64 },
    /// Waiting for a person's decision.
    Approval {
        approval: String,
        expires_at: Option<i64>,
        ambiguous: bool,
    },
    /// Waiting for a child run (agent run or sub-workflow run).
    Child { child: String },
    /// A non-idempotent attempt began; if the process dies before its result is recorded, the
    /// attempt is ambiguous and a person decides.
    InFlight { attempt: u32 },
    /// Blocked until its parallel/map group finishes.
    Group { group: GroupId },
    /// Its node failed for good; the run is dead-lettered (retry revives this thread).
    Dead,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub node: String,
    #[serde(flatten)]
    pub wait: Wait,
    /// The group this thread is a branch or item of, and its slot there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<(GroupId, u32)>,
    /// Failed attempts of the current node so far.
    #[serde(default)]
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub parent: ThreadId,
    /// The `parallel` or `map` node.
    pub node: String,
    pub size: u32,
    pub results: BTreeMap<u32, Value>,
    /// Map items not started yet (slots).
    #[serde(default)]
    pub pending: VecDeque<u32>,
    /// Map items.
    #[serde(default)]
    pub items: Vec<Value>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Completed {
        output: Value,
    },
    Failed {
        code: String,
        message: String,
        node: Option<String>,
        thread: Option<ThreadId>,
    },
    Cancelled,
}

/// One journal entry. Serialized into `run_steps.record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// A node finished. `next` is the route a `switch` chose; other kinds follow the
    /// definition.
    Completed {
        thread: ThreadId,
        node: String,
        /// What the node was given (rendered arguments, prompt, request), for the run view.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Value>,
        output: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// An attempt failed: retried at `retry_at`, or for good when it is `None` (then the
    /// node's `on_error` route is taken, or the run fails).
    Failed {
        thread: ThreadId,
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Value>,
        code: String,
        message: String,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<i64>,
    },
    /// A `parallel` or `map` node started its branches or items (`items` for map).
    Forked {
        thread: ThreadId,
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        items: Option<Vec<Value>>,
    },
    /// A `wait` node's timer.
    Sleeping {
        thread: ThreadId,
        node: String,
        until: i64,
    },
    ApprovalRequested {
        thread: ThreadId,
        node: String,
        approval: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
        #[serde(default)]
        ambiguous: bool,
    },
    ApprovalDecided {
        thread: ThreadId,
        node: String,
        approval: String,
        approved: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state_patch: Option<Value>,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A child run was created (in the same transaction as this record).
    ChildStarted {
        thread: ThreadId,
        node: String,
        child: String,
    },
    /// A non-idempotent node's attempt is about to perform its side effect.
    Intent {
        thread: ThreadId,
        node: String,
        attempt: u32,
    },
    /// A dead-lettered run was retried from its failed node.
    Retried {
        thread: ThreadId,
        node: String,
    },
    Cancelled,
    /// The run failed for a reason that is not one node's (a limit, an invalid output).
    Aborted {
        code: String,
        message: String,
    },
}

impl Record {
    /// The thread and node a record is about, if any.
    pub fn subject(&self) -> Option<(ThreadId, &str)> {
        match self {
            Record::Completed { thread, node, .. }
            | Record::Failed { thread, node, .. }
            | Record::Forked { thread, node, .. }
            | Record::Sleeping { thread, node, .. }
            | Record::ApprovalRequested { thread, node, .. }
            | Record::ApprovalDecided { thread, node, .. }
            | Record::ChildStarted { thread, node, .. }
            | Record::Intent { thread, node, .. }
            | Record::Retried { thread, node } => Some((*thread, node)),
            Record::Cancelled | Record::Aborted { .. } => None,
        }
    }

    /// The `run_steps.kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Completed { .. } => "completed",
            Record::Failed { .. } => "failed",
            Record::Forked { .. } => "forked",
            Record::Sleeping { .. } => "sleeping",
            Record::ApprovalRequested { .. } => "approval_requested",
            Record::ApprovalDecided { .. } => "approval_decided",
            Record::ChildStarted { .. } => "child_started",
            Record::Intent { .. } => "intent",
            Record::Retried { .. } => "retried",
            Record::Cancelled => "cancelled",
            Record::Aborted { .. } => "aborted",
        }
    }
}

/// Something a record caused besides its own subject, for events.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// A parallel/map group finished: its node completed with the merged output.
    Joined { node: String, output: Value },
}

/// The run's position: everything the executor needs to decide what runs next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub state: Map<String, Value>,
    pub threads: BTreeMap<ThreadId, Thread>,
    pub groups: BTreeMap<GroupId, Group>,
    pub visits: BTreeMap<String, u32>,
    /// Node executions so far (for `limits.max_steps`).
    pub steps: u64,
    pub next_thread: ThreadId,
    pub next_group: GroupId,
    pub outcome: Option<Outcome>,
}

/// Why a record cannot apply (a journal that does not match its definition).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal does not fit the workflow: {0}")]
pub struct ReplayError(pub String);

impl Cursor {
    /// A new run: state `{input}` and thread 0 at `spec.start`.
    pub fn start(workflow: &Workflow, input: Value) -> Cursor {
        let mut state = Map::new();
        state.insert("input".into(), input);
        Cursor::start_at(&workflow.spec.start, state)
    }

    /// A run that starts at `node` with the given state (a re-run from a chosen node).
    pub fn start_at(node: &str, state: Map<String, Value>) -> Cursor {
        let mut threads = BTreeMap::new();
        threads.insert(
            0,
            Thread {
                node: node.to_owned(),
                wait: Wait::Ready,
                group: None,
                attempts: 0,
            },
        );
        Cursor {
            state,
            threads,
            groups: BTreeMap::new(),
            visits: BTreeMap::new(),
            steps: 0,
            next_thread: 1,
            next_group: 0,
            outcome: None,
        }
    }

    /// Whether `thread` still exists and is at `node` (a result of a thread that was cancelled
    /// by `merge: first`, or of an abandoned attempt, must not be recorded).
    pub fn is_at(&self, thread: ThreadId, node: &str) -> bool {
        self.outcome.is_none() && self.threads.get(&thread).is_some_and(|t| t.node == node)
    }

    /// The evaluation context of a thread: the state, plus `item` and `index` on a map item.
    pub fn context(&self, thread: ThreadId) -> Value {
        let mut ctx = self.state.clone();
        if let Some((group, slot)) = self.threads.get(&thread).and_then(|t| t.group)
            && let Some(g) = self.groups.get(&group)
            && !g.items.is_empty()
        {
            ctx.insert(
                "item".into(),
                g.items.get(slot as usize).cloned().unwrap_or(Value::Null),
            );
            ctx.insert("index".into(), json!(slot));
        }
        Value::Object(ctx)
    }

    /// Applies one record. Errors mean the journal does not fit the definition.
    pub fn apply(
        &mut self,
        workflow: &Workflow,
        record: &Record,
    ) -> Result<Vec<Note>, ReplayError> {
        let mut notes = Vec::new();
        match record {
            Record::Completed {
                thread,
                node,
                output,
                next,
                ..
            } => {
                self.check(*thread, node)?;
                self.steps += 1;
                *self.visits.entry(node.clone()).or_default() += 1;
                let def = node_def(workflow, node)?;
                if let Some((group, slot)) = self.map_item_of(*thread) {
                    self.threads.remove(thread);
                    self.arrive(workflow, group, slot, output.clone(), &mut notes)?;
                    return Ok(notes);
                }
                if let Some(into) = into_of(&def.kind) {
                    self.state.insert(into.to_owned(), output.clone());
                }
                match &def.kind {
                    NodeKind::End(_) => {
                        self.threads.clear();
                        self.outcome = Some(Outcome::Completed {
                            output: output.clone(),
                        });
                    }
                    _ => {
                        let target = next
                            .clone()
                            .or_else(|| def.kind.next().map(str::to_owned))
                            .ok_or_else(|| ReplayError(format!("node `{node}` has no next")))?;
                        self.advance(workflow, *thread, target, output.clone(), &mut notes)?;
                    }
                }
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
                self.check(*thread, node)?;
                let t = self.thread_mut(*thread)?;
                t.attempts = *attempt;
                if let Some(until) = retry_at {
                    t.wait = Wait::Backoff { until: *until };
                    return Ok(notes);
                }
                self.steps += 1;
                *self.visits.entry(node.clone()).or_default() += 1;
                let def = node_def(workflow, node)?;
                match &def.common.on_error {
                    Some(route) => {
                        self.state.insert(
                            "error".into(),
                            json!({"node": node, "code": code, "message": message}),
                        );
                        let t = self.thread_mut(*thread)?;
                        t.node = route.clone();
                        t.wait = Wait::Ready;
                        t.attempts = 0;
                    }
                    None => {
                        self.thread_mut(*thread)?.wait = Wait::Dead;
                        self.outcome = Some(Outcome::Failed {
                            code: code.clone(),
                            message: message.clone(),
                            node: Some(node.clone()),
                            thread: Some(*thread),
                        });
                    }
                }
            }
            Record::Forked {
                thread,
                node,
                items,
            } => {
                self.check(*thread, node)?;
                self.steps += 1;
                *self.visits.entry(node.clone()).or_default() += 1;
                let def = node_def(workflow, node)?;
                let group_id = self.next_group;
                self.next_group += 1;
                match (&def.kind, items) {
                    (NodeKind::Parallel(p), _) => {
                        self.groups.insert(
                            group_id,
                            Group {
                                parent: *thread,
                                node: node.clone(),
                                size: p.branches.len() as u32,
                                results: BTreeMap::new(),
                                pending: VecDeque::new(),
                                items: Vec::new(),
                            },
                        );
                        for (slot, branch) in p.branches.iter().enumerate() {
                            self.spawn(branch.clone(), Some((group_id, slot as u32)));
                        }
                    }
                    (NodeKind::Map(m), Some(items)) => {
                        if items.is_empty() {
                            self.state.insert(m.into.clone(), json!([]));
                            let t = self.thread_mut(*thread)?;
                            t.node = m.next.clone();
                            t.wait = Wait::Ready;
                            notes.push(Note::Joined {
                                node: node.clone(),
                                output: json!([]),
                            });
                            return Ok(notes);
                        }
                        let mut group = Group {
                            parent: *thread,
                            node: node.clone(),
                            size: items.len() as u32,
                            results: BTreeMap::new(),
                            pending: (0..items.len() as u32).collect(),
                            items: items.clone(),
                        };
                        let first: Vec<u32> = (0..m.concurrency.max(1))
                            .filter_map(|_| group.pending.pop_front())
                            .collect();
                        self.groups.insert(group_id, group);
                        for slot in first {
                            self.spawn(m.node.clone(), Some((group_id, slot)));
                        }
                    }
                    _ => {
                        return Err(ReplayError(format!(
                            "node `{node}` cannot fork (or a map fork without items)"
                        )));
                    }
                }
                self.thread_mut(*thread)?.wait = Wait::Group { group: group_id };
            }
            Record::Sleeping {
                thread,
                node,
                until,
            } => {
                self.check(*thread, node)?;
                self.thread_mut(*thread)?.wait = Wait::Sleep { until: *until };
            }
            Record::ApprovalRequested {
                thread,
                node,
                approval,
                expires_at,
                ambiguous,
            } => {
                self.check(*thread, node)?;
                self.thread_mut(*thread)?.wait = Wait::Approval {
                    approval: approval.clone(),
                    expires_at: *expires_at,
                    ambiguous: *ambiguous,
                };
            }
            Record::ApprovalDecided {
                thread,
                node,
                approved,
                state_patch,
                by,
                comment,
                ..
            } => {
                self.check(*thread, node)?;
                if let Some(Value::Object(patch)) = state_patch {
                    merge_patch(&mut self.state, patch);
                }
                let ambiguous = matches!(
                    self.threads.get(thread).map(|t| &t.wait),
                    Some(Wait::Approval {
                        ambiguous: true,
                        ..
                    })
                );
                if ambiguous {
                    // Approve: the side effect did not happen, run the node again. Reject: it
                    // counts as failed (its error route, or the run fails).
                    if *approved {
                        let t = self.thread_mut(*thread)?;
                        t.wait = Wait::Ready;
                    } else {
                        return self.apply(
                            workflow,
                            &Record::Failed {
                                thread: *thread,
                                node: node.clone(),
                                input: None,
                                code: "node_failed".into(),
                                message: format!(
                                    "a person marked the interrupted attempt of `{node}` as failed"
                                ),
                                attempt: 0,
                                retry_at: None,
                            },
                        );
                    }
                    return Ok(notes);
                }
                self.steps += 1;
                *self.visits.entry(node.clone()).or_default() += 1;
                let NodeKind::Approval(a) = &node_def(workflow, node)?.kind else {
                    return Err(ReplayError(format!("node `{node}` is not an approval")));
                };
                let target = if *approved {
                    a.next_approved.clone()
                } else {
                    a.next_rejected.clone()
                };
                let output = json!({"approved": approved, "by": by, "comment": comment});
                self.advance(workflow, *thread, target, output, &mut notes)?;
            }
            Record::ChildStarted {
                thread,
                node,
                child,
            } => {
                self.check(*thread, node)?;
                self.thread_mut(*thread)?.wait = Wait::Child {
                    child: child.clone(),
                };
            }
            Record::Intent {
                thread,
                node,
                attempt,
            } => {
                self.check(*thread, node)?;
                self.thread_mut(*thread)?.wait = Wait::InFlight { attempt: *attempt };
            }
            Record::Retried { thread, node } => {
                let t = self
                    .threads
                    .get_mut(thread)
                    .filter(|t| t.node == *node && t.wait == Wait::Dead)
                    .ok_or_else(|| {
                        ReplayError(format!("thread {thread} is not dead at `{node}`"))
                    })?;
                t.wait = Wait::Ready;
                t.attempts = 0;
                self.outcome = None;
            }
            Record::Cancelled => {
                self.outcome = Some(Outcome::Cancelled);
            }
            Record::Aborted { code, message } => {
                self.outcome = Some(Outcome::Failed {
                    code: code.clone(),
                    message: message.clone(),
                    node: None,
                    thread: None,
                });
            }
        }
        Ok(notes)
    }

    /// Replays a whole journal.
    pub fn replay<'a>(
        mut self,
        workflow: &Workflow,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Cursor, ReplayError> {
        for r in records {
            self.apply(workflow, r)?;
        }
        Ok(self)
    }

    fn check(&self, thread: ThreadId, node: &str) -> Result<(), ReplayError> {
        match self.threads.get(&thread) {
            Some(t) if t.node == node => Ok(()),
            Some(t) => Err(ReplayError(format!(
                "thread {thread} is at `{}`, not `{node}`",
                t.node
            ))),
            None => Err(ReplayError(format!("thread {thread} does not exist"))),
        }
    }

    fn thread_mut(&mut self, thread: ThreadId) -> Result<&mut Thread, ReplayError> {
        self.threads
            .get_mut(&thread)
            .ok_or_else(|| ReplayError(format!("thread {thread} does not exist")))
    }

    fn spawn(&mut self, node: String, group: Option<(GroupId, u32)>) -> ThreadId {
        let id = self.next_thread;
        self.next_thread += 1;
        self.threads.insert(
            id,
            Thread {
                node,
                wait: Wait::Ready,
                group,
                attempts: 0,
            },
        );
        id
    }

    /// The map group and slot of an item thread (its node's result goes to the group; a map
    /// with no items never makes a group, so a group with items is a map's).
    pub fn map_item_of(&self, thread: ThreadId) -> Option<(GroupId, u32)> {
        let (g, slot) = self.threads.get(&thread)?.group?;
        let group = self.groups.get(&g)?;
        (!group.items.is_empty()).then_some((g, slot))
    }

    /// Moves a thread to `target`; a branch whose target is its group's join arrives instead.
    fn advance(
        &mut self,
        workflow: &Workflow,
        thread: ThreadId,
        target: String,
        output: Value,
        notes: &mut Vec<Note>,
    ) -> Result<(), ReplayError> {
        if let Some((group, slot)) = self.threads.get(&thread).and_then(|t| t.group)
            && let Some(g) = self.groups.get(&group)
            && let NodeKind::Parallel(p) = &node_def(workflow, &g.node)?.kind
            && p.join == target
        {
            self.threads.remove(&thread);
            return self.arrive(workflow, group, slot, output, notes);
        }
        let t = self.thread_mut(thread)?;
        t.node = target;
        t.wait = Wait::Ready;
        t.attempts = 0;
        Ok(())
    }

    /// A branch or item finished with `output`.
    fn arrive(
        &mut self,
        workflow: &Workflow,
        group_id: GroupId,
        slot: u32,
        output: Value,
        notes: &mut Vec<Note>,
    ) -> Result<(), ReplayError> {
        let group = self
            .groups
            .get_mut(&group_id)
            .ok_or_else(|| ReplayError(format!("group {group_id} does not exist")))?;
        group.results.insert(slot, output);
        let node = group.node.clone();
        let def = node_def(workflow, &node)?;
        let (done, merged, into, target) = match &def.kind {
            NodeKind::Parallel(p) => {
                let first = p.merge == Merge::First;
                let done = first || group.results.len() as u32 >= group.size;
                let merged = match p.merge {
                    Merge::All => Value::Array(group.results.values().cloned().collect()),
                    Merge::First => group.results.get(&slot).cloned().unwrap_or(Value::Null),
                    Merge::Object => Value::Object(
                        group
                            .results
                            .iter()
                            .map(|(s, v)| {
                                (
                                    p.branches.get(*s as usize).cloned().unwrap_or_default(),
                                    v.clone(),
                                )
                            })
                            .collect(),
                    ),
                };
                (done, merged, p.into.clone(), p.join.clone())
            }
            NodeKind::Map(m) => {
                if let Some(next_slot) = group.pending.pop_front() {
                    let item_node = m.node.clone();
                    self.spawn(item_node, Some((group_id, next_slot)));
                    return Ok(());
                }
                let done = group.results.len() as u32 >= group.size;
                let merged = Value::Array(group.results.values().cloned().collect());
                (done, merged, Some(m.into.clone()), m.next.clone())
            }
            _ => return Err(ReplayError(format!("`{node}` is not a group node"))),
        };
        if !done {
            return Ok(());
        }
        let parent = group.parent;
        self.groups.remove(&group_id);
        // Branches still running (merge: first) are abandoned, with their own groups.
        self.drop_group_threads(group_id);
        if let Some(into) = into {
            self.state.insert(into, merged.clone());
        }
        notes.push(Note::Joined {
            node,
            output: merged.clone(),
        });
        self.advance(workflow, parent, target, merged, notes)
    }

    fn drop_group_threads(&mut self, group_id: GroupId) {
        let members: Vec<ThreadId> = self
            .threads
            .iter()
            .filter(|(_, t)| t.group.is_some_and(|(g, _)| g == group_id))
            .map(|(id, _)| *id)
            .collect();
        for id in members {
            if let Some(Thread {
                wait: Wait::Group { group },
                ..
            }) = self.threads.remove(&id)
            {
                self.groups.remove(&group);
                self.drop_group_threads(group);
            }
        }
    }

    /// Serialized size of the state, in bytes (for the state-size limit).
    pub fn state_bytes(&self) -> usize {
        serde_json::to_string(&self.state).map_or(0, |s| s.len())
    }
}

/// RFC 7396 JSON merge patch of the state's top-level object.
fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(obj) = slot {
                    merge_patch(obj, inner);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

fn node_def<'w>(workflow: &'w Workflow, node: &str) -> Result<&'w crate::Node, ReplayError> {
    workflow
        .spec
        .nodes
        .get(node)
        .ok_or_else(|| ReplayError(format!("node `{node}` is not in this version")))
}

/// The state key a node's output is stored under.
pub fn into_of(kind: &NodeKind) -> Option<&str> {
    match kind {
        NodeKind::Agent(n) => n.into.as_deref(),
        NodeKind::Llm(n) => n.into.as_deref(),
        NodeKind::Tool(n) => n.into.as_deref(),
        NodeKind::Http(n) => n.into.as_deref(),
        NodeKind::Transform(n) => Some(&n.into),
        NodeKind::Workflow(n) => n.into.as_deref(),
        NodeKind::Map(_)
        | NodeKind::Parallel(_)
        | NodeKind::Switch(_)
        | NodeKind::Approval(_)
        | NodeKind::Wait(_)
        | NodeKind::End(_) => None,
    }
}
