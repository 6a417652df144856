//! Runs, their journal (steps) and their stored events.
//!
//! Reads are scoped to a workspace. Writes made by the executing worker go through [`commit`],
//! which checks the worker's lease in the same transaction, so journal, events, run status and
//! the job's completion always change together or not at all.

use crate::db::{Db, Statement};
use crate::error::{Result, StoreError};
use crate::jobs::{self, Lease};
use agentry_core::ids::{AgentId, RunId};
use agentry_core::run::{RunError, RunStatus};
use agentry_core::scope::WorkspaceScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub agent_id: Uuid,
    pub agent_slug: String,
    pub agent_version: i64,
    pub thread_id: Option<String>,
    pub status: String,
    pub input: Json<Value>,
    pub output: Option<String>,
    pub error: Option<Json<RunError>>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Who started the run (for cost attribution): an API key or a signed-in person.
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// The caller's own id for its end user, when it passed one.
    pub end_user: Option<String>,
    /// The workflow run whose `agent` node started this run (woken when it ends).
    pub parent_run_id: Option<Uuid>,
    /// The agent run (crew manager, network router) that started this run as a member.
    pub parent_agent_run_id: Option<Uuid>,
    /// 0 for a run started by a caller; parent's depth + 1 for a member's run.
    pub delegation_depth: i64,
}

impl RunRow {
    pub fn scope(&self) -> WorkspaceScope {
        WorkspaceScope {
            org_id: self.org_id.into(),
            workspace_id: self.workspace_id.into(),
        }
    }
    pub fn status(&self) -> RunStatus {
        RunStatus::parse(&self.status).unwrap_or(RunStatus::Failed)
    }
}

const RUN_COLUMNS: [&str; 25] = [
    "id",
    "org_id",
    "workspace_id",
    "agent_id",
    "agent_slug",
    "agent_version",
    "thread_id",
    "status",
    "input",
    "output",
    "error",
    "input_tokens",
    "output_tokens",
    "idempotency_key",
    "request_hash",
    "cancel_requested",
    "created_at",
    "started_at",
    "ended_at",
    "api_key_id",
    "user_id",
    "end_user",
    "parent_run_id",
    "parent_agent_run_id",
    "delegation_depth",
];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub idx: i64,
    pub kind: String,
    pub record: Json<Value>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub name: String,
    pub data: Json<Value>,
    pub created_at: DateTime<Utc>,
}

use crate::db::NoRow;

pub struct NewRun {
    pub agent_id: AgentId,
    pub agent_slug: String,
    pub agent_version: i64,
    pub thread_id: Option<String>,
    pub input: Value,
    pub idempotency_key: Option<String>,
    /// A hash of the request body, so a reused Idempotency-Key with a different body is refused.
    pub request_hash: Option<String>,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub end_user: Option<String>,
    pub parent_run_id: Option<Uuid>,
}

/// A member agent's run: who started it, and how deep in the delegation chain it is.
#[derive(Debug, Clone, Copy)]
pub struct AgentParent {
    pub run_id: Uuid,
    pub depth: i64,
}

pub enum CreateOutcome {
    Created(RunRow),
    /// The Idempotency-Key was seen before: the earlier run.
    Existing(RunRow),
}

fn select_runs(scope: WorkspaceScope) -> SelectStatement {
    Query::select()
        .columns(RUN_COLUMNS)
        .from("runs")
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .to_owned()
}

pub(crate) fn insert_event(
    run_id: Uuid,
    org_id: Uuid,
    seq: i64,
    name: &str,
    data: Value,
    now: DateTime<Utc>,
) -> sea_query::InsertStatement {
    Query::insert()
        .into_table("run_events")
        .columns(["run_id", "seq", "org_id", "name", "data", "created_at"])
        .values_panic([
            run_id.into(),
            seq.into(),
            org_id.into(),
            name.into(),
            data.into(),
            now.into(),
        ])
        .to_owned()
}

/// Creates a queued run, its `run.queued` event and its job in one transaction.
pub async fn create(db: &Db, scope: WorkspaceScope, new: NewRun) -> Result<CreateOutcome> {
    create_child(db, scope, new, None).await
}

/// Like [`create`], for a member agent's run started by `parent` (crews, networks). With the
/// parent's idempotency key a repeated delegation finds the run it started before.
pub async fn create_child(
    db: &Db,
    scope: WorkspaceScope,
    new: NewRun,
    parent: Option<AgentParent>,
) -> Result<CreateOutcome> {
    if let Some(key) = &new.idempotency_key
        && let Some(existing) = get_by_idempotency_key(db, scope, key).await?
    {
        return Ok(CreateOutcome::Existing(existing));
    }
    let (row, statements) = child_statements(scope, new, parent, Utc::now());
    let written = db.write_batch::<NoRow>(&statements, false).await;
    match written {
        Ok(_) => {}
        // Two requests with one Idempotency-Key raced: the other one won; answer with its run.
        Err(StoreError::Conflict) => {
            if let Some(key) = &row.idempotency_key
                && let Some(existing) = get_by_idempotency_key(db, scope, key).await?
            {
                return Ok(CreateOutcome::Existing(existing));
            }
            return Err(StoreError::Conflict);
        }
        Err(e) => return Err(e),
    }
    jobs::notify_enqueued(db).await?;
    Ok(CreateOutcome::Created(row))
}

/// The statements that create a queued run, its `run.queued` event and its job, for batching
/// with the write that causes the run (a workflow's journal step).
pub fn create_statements(
    scope: WorkspaceScope,
    new: NewRun,
    now: DateTime<Utc>,
) -> (RunRow, Vec<Statement>) {
    child_statements(scope, new, None, now)
}

fn child_statements(
    scope: WorkspaceScope,
    new: NewRun,
    parent: Option<AgentParent>,
    now: DateTime<Utc>,
) -> (RunRow, Vec<Statement>) {
    let row = RunRow {
        id: RunId::new().0,
        org_id: scope.org_id.0,
        workspace_id: scope.workspace_id.0,
        agent_id: new.agent_id.0,
        agent_slug: new.agent_slug,
        agent_version: new.agent_version,
        thread_id: new.thread_id,
        status: RunStatus::Queued.as_str().to_string(),
        input: Json(new.input),
        output: None,
        error: None,
        input_tokens: 0,
        output_tokens: 0,
        idempotency_key: new.idempotency_key,
        request_hash: new.request_hash,
        cancel_requested: false,
        created_at: now,
        started_at: None,
        ended_at: None,
        api_key_id: new.api_key_id,
        user_id: new.user_id,
        end_user: new.end_user,
        parent_run_id: new.parent_run_id,
        parent_agent_run_id: parent.map(|p| p.run_id),
        delegation_depth: parent.map_or(0, |p| p.depth),
    };
    let insert_run = Query::insert()
        .into_table("runs")
        .columns(RUN_COLUMNS)
        .values_panic([
            row.id.into(),
            row.org_id.into(),
            row.workspace_id.into(),
            row.agent_id.into(),
            row.agent_slug.clone().into(),
            row.agent_version.into(),
            row.thread_id.clone().into(),
            row.status.clone().into(),
            row.input.0.clone().into(),
            Option::<String>::None.into(),
            Option::<Value>::None.into(),
            0i64.into(),
            0i64.into(),
            row.idempotency_key.clone().into(),
            row.request_hash.clone().into(),
            false.into(),
            now.into(),
            Option::<DateTime<Utc>>::None.into(),
            Option::<DateTime<Utc>>::None.into(),
            row.api_key_id.into(),
            row.user_id.into(),
            row.end_user.clone().into(),
            row.parent_run_id.into(),
            row.parent_agent_run_id.into(),
            row.delegation_depth.into(),
        ])
        .to_owned();
    let statements = vec![
        Statement::Insert(insert_run),
        Statement::Insert(insert_event(
            row.id,
            row.org_id,
            1,
            agentry_core::run::event::RUN_QUEUED,
            serde_json::json!({"run_id": row.id}),
            now,
        )),
        jobs::enqueue_statement(row.org_id, jobs::KIND_AGENT_RUN, row.id, now),
    ];
    (row, statements)
}

async fn get_by_idempotency_key(
    db: &Db,
    scope: WorkspaceScope,
    key: &str,
) -> Result<Option<RunRow>> {
    db.fetch_optional(select_runs(scope).and_where(Expr::col("idempotency_key").eq(key)))
        .await
}

/// The member runs an agent run started (crew delegations, network routing), oldest first.
pub async fn children(db: &Db, scope: WorkspaceScope, parent: RunId) -> Result<Vec<RunRow>> {
    db.fetch_all(
        select_runs(scope)
            .and_where(Expr::col("parent_agent_run_id").eq(parent.0))
            .order_by("id", Order::Asc)
            .limit(1000),
    )
    .await
}

pub async fn get(db: &Db, scope: WorkspaceScope, id: RunId) -> Result<Option<RunRow>> {
    db.fetch_optional(select_runs(scope).and_where(Expr::col("id").eq(id.0)))
        .await
}

#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub agent_slug: Option<String>,
    pub status: Option<RunStatus>,
    pub thread_id: Option<String>,
    /// Only runs older than this id (the cursor of the previous page).
    pub before: Option<RunId>,
    pub limit: u64,
}

/// Newest first.
pub async fn list(db: &Db, scope: WorkspaceScope, filter: &RunFilter) -> Result<Vec<RunRow>> {
    let mut q = select_runs(scope);
    if let Some(slug) = &filter.agent_slug {
        q.and_where(Expr::col("agent_slug").eq(slug.as_str()));
    }
    if let Some(status) = filter.status {
        q.and_where(Expr::col("status").eq(status.as_str()));
    }
    if let Some(thread) = &filter.thread_id {
        q.and_where(Expr::col("thread_id").eq(thread.as_str()));
    }
    if let Some(before) = filter.before {
        q.and_where(Expr::col("id").lt(before.0));
    }
    q.order_by("id", Order::Desc).limit(filter.limit);
    db.fetch_all(&q).await
}

/// Earlier runs of a thread (oldest first), at most `limit` of the most recent ones.
pub async fn thread_runs(
    db: &Db,
    scope: WorkspaceScope,
    thread_id: &str,
    before: RunId,
    limit: u64,
) -> Result<Vec<RunRow>> {
    let mut rows: Vec<RunRow> = db
        .fetch_all(
            select_runs(scope)
                .and_where(Expr::col("thread_id").eq(thread_id))
                .and_where(Expr::col("id").lt(before.0))
                .and_where(Expr::col("status").eq(RunStatus::Completed.as_str()))
                .order_by("id", Order::Desc)
                .limit(limit),
        )
        .await?;
    rows.reverse();
    Ok(rows)
}

pub async fn steps(db: &Db, scope: WorkspaceScope, run_id: RunId) -> Result<Vec<StepRow>> {
    db.fetch_all(
        Query::select()
            .columns(["idx", "kind", "record", "started_at", "ended_at"])
            .from("run_steps")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("run_id").eq(run_id.0))
            .order_by("idx", Order::Asc),
    )
    .await
}

pub async fn events_after(
    db: &Db,
    scope: WorkspaceScope,
    run_id: RunId,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<EventRow>> {
    db.fetch_all(
        Query::select()
            .columns(["seq", "name", "data", "created_at"])
            .from("run_events")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("run_id").eq(run_id.0))
            .and_where(Expr::col("seq").gt(after_seq))
            .order_by("seq", Order::Asc)
            .limit(limit),
    )
    .await
}

#[derive(sqlx::FromRow)]
struct MaxSeq {
    seq: Option<i64>,
}

/// The highest event sequence of a run (0 when it has none).
fn max_seq(run_id: Uuid) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col("seq").max(), "seq")
        .from("run_events")
        .and_where(Expr::col("run_id").eq(run_id))
        .to_owned()
}

pub async fn last_event_seq(db: &Db, run_id: Uuid) -> Result<i64> {
    let row: Option<MaxSeq> = db.fetch_optional(&max_seq(run_id)).await?;
    Ok(row.and_then(|r| r.seq).unwrap_or(0))
}

pub enum CancelOutcome {
    /// The run was queued and is now cancelled.
    Cancelled,
    /// The run is executing; the worker will stop at its next step boundary.
    Requested,
    AlreadyEnded,
    NotFound,
}

pub async fn request_cancel(db: &Db, scope: WorkspaceScope, id: RunId) -> Result<CancelOutcome> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let cancelled = tx
        .execute(
            Query::update()
                .table("runs")
                .value("status", RunStatus::Cancelled.as_str())
                .value("ended_at", now)
                .value(
                    "error",
                    serde_json::to_value(RunError {
                        code: agentry_core::ErrorCode::RunCancelled,
                        message: "the run was cancelled before it started".into(),
                    })
                    .unwrap_or(Value::Null),
                )
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("id").eq(id.0))
                .and_where(Expr::col("status").eq(RunStatus::Queued.as_str())),
        )
        .await?;
    if cancelled > 0 {
        let max: Option<MaxSeq> = tx.fetch_optional(&max_seq(id.0)).await?;
        let seq = max.and_then(|m| m.seq).unwrap_or(0) + 1;
        tx.execute(&insert_event(
            id.0,
            scope.org_id.0,
            seq,
            agentry_core::run::event::RUN_CANCELLED,
            serde_json::json!({}),
            now,
        ))
        .await?;
        jobs::finish_for_target(&mut tx, id.0, now).await?;
        tx.commit().await?;
        return Ok(CancelOutcome::Cancelled);
    }
    let requested = tx
        .execute(
            Query::update()
                .table("runs")
                .value("cancel_requested", true)
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("id").eq(id.0))
                .and_where(Expr::col("status").eq(RunStatus::Running.as_str())),
        )
        .await?;
    tx.commit().await?;
    if requested > 0 {
        return Ok(CancelOutcome::Requested);
    }
    Ok(match get(db, scope, id).await? {
        Some(_) => CancelOutcome::AlreadyEnded,
        None => CancelOutcome::NotFound,
    })
}

/// System function (executor): loads a run by id, whatever its workspace. The executor derives
/// the scope from the job it claimed.
pub async fn load_for_execution(db: &Db, run_id: Uuid) -> Result<Option<RunRow>> {
    db.fetch_optional(
        Query::select()
            .columns(RUN_COLUMNS)
            .from("runs")
            .and_where(Expr::col("id").eq(run_id)),
    )
    .await
}

/// System function (executor): reads a run's cancel flag.
pub async fn cancel_requested(db: &Db, run_id: Uuid) -> Result<bool> {
    #[derive(sqlx::FromRow)]
    struct Flag {
        cancel_requested: bool,
    }
    let flag: Option<Flag> = db
        .fetch_optional(
            Query::select()
                .column("cancel_requested")
                .from("runs")
                .and_where(Expr::col("id").eq(run_id)),
        )
        .await?;
    Ok(flag.is_some_and(|f| f.cancel_requested))
}

/// One journal step to record.
pub struct NewStep {
    pub idx: i64,
    pub kind: &'static str,
    pub record: Value,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// One event to store.
pub struct NewEvent {
    pub seq: i64,
    pub name: &'static str,
    pub data: Value,
}

/// How the run row changes with a commit.
pub enum RunChange {
    None,
    Started {
        at: DateTime<Utc>,
    },
    Usage {
        input_tokens: i64,
        output_tokens: i64,
    },
    Ended {
        status: RunStatus,
        output: Option<String>,
        error: Option<RunError>,
        input_tokens: i64,
        output_tokens: i64,
        at: DateTime<Utc>,
    },
}

/// Everything one executor commit writes, atomically.
pub struct Commit {
    pub run_id: Uuid,
    pub org_id: Uuid,
    pub steps: Vec<NewStep>,
    pub events: Vec<NewEvent>,
    pub change: RunChange,
    /// Further writes that belong to the same step (cost ledger, budget settlement).
    pub extra: Vec<Statement>,
}

/// What a commit learned about the run.
#[derive(Debug, Clone, Copy)]
pub struct CommitOutcome {
    /// Someone asked to cancel the run; the executor stops at this step boundary.
    pub cancel_requested: bool,
}

/// System function (executor): writes a batch of journal steps, events and the run change in
/// one transaction. Its first statement updates the run only while the worker's lease is
/// current (the fencing check) and returns the run's cancel flag, so fencing and cancellation
/// cost no extra round trip. A run that ends also finishes its job in the same transaction.
/// The lease itself is extended by the worker's heartbeat.
pub async fn commit(db: &Db, lease: &Lease, batch: Commit) -> Result<CommitOutcome> {
    let statements = commit_statements(lease, batch, Utc::now())?;
    #[derive(sqlx::FromRow)]
    struct Flag {
        cancel_requested: bool,
    }
    let flags: Vec<Flag> = match db.write_batch(&statements, true).await {
        Ok(flags) => flags,
        // A step or event that already exists was written by the worker that holds the lease now.
        Err(StoreError::Conflict) => return Err(StoreError::LeaseLost),
        Err(e) => return Err(e),
    };
    Ok(CommitOutcome {
        cancel_requested: flags.first().is_some_and(|f| f.cancel_requested),
    })
}

/// The fenced run update first (it returns the cancel flag, or nothing when the lease is gone),
/// then the journal steps, the events and, for an ending, the job's completion.
fn commit_statements(lease: &Lease, batch: Commit, now: DateTime<Utc>) -> Result<Vec<Statement>> {
    let mut update = Query::update();
    update.table("runs");
    let ended = matches!(batch.change, RunChange::Ended { .. });
    match batch.change {
        RunChange::None => {
            update.value("cancel_requested", Expr::col("cancel_requested"));
        }
        RunChange::Started { at } => {
            update
                .value("status", RunStatus::Running.as_str())
                .value("started_at", at);
        }
        RunChange::Usage {
            input_tokens,
            output_tokens,
        } => {
            update
                .value("input_tokens", input_tokens)
                .value("output_tokens", output_tokens);
        }
        RunChange::Ended {
            status,
            output,
            error,
            input_tokens,
            output_tokens,
            at,
        } => {
            let error = error
                .map(|e| serde_json::to_value(e).map_err(|e| StoreError::Corrupt(e.to_string())))
                .transpose()?;
            update
                .value("status", status.as_str())
                .value("output", output)
                .value("error", error)
                .value("input_tokens", input_tokens)
                .value("output_tokens", output_tokens)
                .value("ended_at", at);
        }
    }
    let lease_is_current = Query::select()
        .expr(Expr::val(1))
        .from("jobs")
        .and_where(Expr::col(("jobs", "id")).eq(lease.job_id))
        .and_where(Expr::col(("jobs", "lease_token")).eq(lease.token))
        .and_where(Expr::col(("jobs", "status")).eq("running"))
        .to_owned();
    update
        .and_where(Expr::col("id").eq(batch.run_id))
        .and_where(Expr::exists(lease_is_current))
        .returning(Query::returning().column("cancel_requested"));
    let mut statements = vec![Statement::Update(update)];
    statements.extend(journal_statements(
        batch.run_id,
        batch.org_id,
        batch.steps,
        batch.events,
        now,
    ));
    if ended {
        statements.push(Statement::Update(jobs::finish_update(lease, now)));
    }
    statements.extend(batch.extra);
    Ok(statements)
}

/// Counts runs by status (for `/metrics`). System-wide.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>> {
    #[derive(sqlx::FromRow)]
    struct Count {
        status: String,
        n: i64,
    }
    let rows: Vec<Count> = db
        .fetch_all(
            Query::select()
                .column("status")
                .expr_as(Expr::col("id").count(), "n")
                .from("runs")
                .group_by_col("status"),
        )
        .await?;
    Ok(rows.into_iter().map(|c| (c.status, c.n)).collect())
}

/// Runs of the org that are queued or running (for the per-org concurrency cap).
pub async fn count_active(db: &Db, scope: agentry_core::scope::OrgScope) -> Result<i64> {
    #[derive(sqlx::FromRow)]
    struct Count {
        n: i64,
    }
    let row: Option<Count> = db
        .fetch_optional(
            Query::select()
                .expr_as(Expr::col("id").count(), "n")
                .from("runs")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("status").is_in(["queued", "running"])),
        )
        .await?;
    Ok(row.map(|r| r.n).unwrap_or(0))
}

/// The inserts of journal steps and events (shared by agent and workflow runs).
pub(crate) fn journal_statements(
    run_id: Uuid,
    org_id: Uuid,
    steps: Vec<NewStep>,
    events: Vec<NewEvent>,
    now: DateTime<Utc>,
) -> Vec<Statement> {
    let mut out = Vec::new();
    if !steps.is_empty() {
        let mut insert = Query::insert();
        insert.into_table("run_steps").columns([
            "run_id",
            "idx",
            "org_id",
            "kind",
            "record",
            "started_at",
            "ended_at",
        ]);
        for step in steps {
            insert.values_panic([
                run_id.into(),
                step.idx.into(),
                org_id.into(),
                step.kind.into(),
                step.record.into(),
                step.started_at.into(),
                step.ended_at.into(),
            ]);
        }
        out.push(Statement::Insert(insert));
    }
    if !events.is_empty() {
        let mut insert = Query::insert();
        insert.into_table("run_events").columns([
            "run_id",
            "seq",
            "org_id",
            "name",
            "data",
            "created_at",
        ]);
        for e in events {
            insert.values_panic([
                run_id.into(),
                e.seq.into(),
                org_id.into(),
                e.name.into(),
                e.data.into(),
                now.into(),
            ]);
        }
        out.push(Statement::Insert(insert));
    }
    out
}
