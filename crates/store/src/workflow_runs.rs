//! Workflow runs. Their journal (`run_steps`) and events (`run_events`) share the agent runs'
//! tables; writes made by the executing worker go through [`commit`], fenced by the job lease
//! exactly like `runs::commit`.
//!
//! Statuses: `queued`, `running`, `waiting` (parked: nothing to do until a timer, a decision or
//! a child run), `completed`, `failed` (dead-lettered), `cancelled`.

use crate::db::{Db, NoRow, Statement};
use crate::error::{Result, StoreError};
use crate::jobs::{self, Lease};
use agentry_core::scope::WorkspaceScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

pub const JOB_KIND: &str = "workflow_run";

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const WAITING: &str = "waiting";
pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

pub fn is_terminal(status: &str) -> bool {
    matches!(status, COMPLETED | FAILED | CANCELLED)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkflowRunRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub workflow_id: Uuid,
    pub workflow_slug: String,
    pub workflow_version: i64,
    pub status: String,
    pub input: Json<Value>,
    pub start: Option<Json<Value>>,
    pub output: Option<Json<Value>>,
    pub error: Option<Json<Value>>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub cancel_requested: bool,
    pub wakeups: i64,
    pub parent_run_id: Option<Uuid>,
    pub rerun_of: Option<Uuid>,
    pub depth: i64,
    pub trigger: Option<Json<Value>>,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl WorkflowRunRow {
    pub fn scope(&self) -> WorkspaceScope {
        WorkspaceScope {
            org_id: self.org_id.into(),
            workspace_id: self.workspace_id.into(),
        }
    }
}

const COLUMNS: [&str; 24] = [
    "id",
    "org_id",
    "workspace_id",
    "workflow_id",
    "workflow_slug",
    "workflow_version",
    "status",
    "input",
    "start",
    "output",
    "error",
    "idempotency_key",
    "request_hash",
    "cancel_requested",
    "wakeups",
    "parent_run_id",
    "rerun_of",
    "depth",
    "trigger",
    "api_key_id",
    "user_id",
    "created_at",
    "started_at",
    "ended_at",
];

fn columns() -> &'static [&'static str] {
    &COLUMNS
}

fn select(scope: WorkspaceScope) -> SelectStatement {
    Query::select()
        .columns(columns().iter().copied())
        .from("workflow_runs")
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .to_owned()
}

pub struct NewWorkflowRun {
    pub workflow_id: Uuid,
    pub workflow_slug: String,
    pub workflow_version: i64,
    pub input: Value,
    pub start: Option<Value>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub parent_run_id: Option<Uuid>,
    pub rerun_of: Option<Uuid>,
    pub depth: i64,
    pub trigger: Option<Value>,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
}

pub enum CreateOutcome {
    Created(WorkflowRunRow),
    /// The Idempotency-Key was seen before: the earlier run.
    Existing(WorkflowRunRow),
}

/// The statements that create a queued run, its `run.queued` event and its job (for batching
/// with the write that causes the run, e.g. a parent's journal step).
pub fn create_statements(
    scope: WorkspaceScope,
    new: NewWorkflowRun,
    now: DateTime<Utc>,
) -> (WorkflowRunRow, Vec<Statement>) {
    let row = WorkflowRunRow {
        id: Uuid::now_v7(),
        org_id: scope.org_id.0,
        workspace_id: scope.workspace_id.0,
        workflow_id: new.workflow_id,
        workflow_slug: new.workflow_slug,
        workflow_version: new.workflow_version,
        status: QUEUED.into(),
        input: Json(new.input),
        start: new.start.map(Json),
        output: None,
        error: None,
        idempotency_key: new.idempotency_key,
        request_hash: new.request_hash,
        cancel_requested: false,
        wakeups: 0,
        parent_run_id: new.parent_run_id,
        rerun_of: new.rerun_of,
        depth: new.depth,
        trigger: new.trigger.map(Json),
        api_key_id: new.api_key_id,
        user_id: new.user_id,
        created_at: now,
        started_at: None,
        ended_at: None,
    };
    let insert = Query::insert()
        .into_table("workflow_runs")
        .columns(columns().iter().copied())
        .values_panic([
            row.id.into(),
            row.org_id.into(),
            row.workspace_id.into(),
            row.workflow_id.into(),
            row.workflow_slug.clone().into(),
            row.workflow_version.into(),
            row.status.clone().into(),
            row.input.0.clone().into(),
            row.start.as_ref().map(|j| j.0.clone()).into(),
            Option::<Value>::None.into(),
            Option::<Value>::None.into(),
            row.idempotency_key.clone().into(),
            row.request_hash.clone().into(),
            false.into(),
            0i64.into(),
            row.parent_run_id.into(),
            row.rerun_of.into(),
            row.depth.into(),
            row.trigger.as_ref().map(|j| j.0.clone()).into(),
            row.api_key_id.into(),
            row.user_id.into(),
            now.into(),
            Option::<DateTime<Utc>>::None.into(),
            Option::<DateTime<Utc>>::None.into(),
        ])
        .to_owned();
    let statements = vec![
        Statement::Insert(insert),
        Statement::Insert(crate::runs::insert_event(
            row.id,
            row.org_id,
            1,
            agentry_core::run::event::RUN_QUEUED,
            serde_json::json!({"run_id": row.id, "workflow": row.workflow_slug, "version": row.workflow_version}),
            now,
        )),
        jobs::enqueue_statement(row.org_id, JOB_KIND, row.id, now),
    ];
    (row, statements)
}

/// Creates a queued run (or returns the earlier run of the same Idempotency-Key).
pub async fn create(db: &Db, scope: WorkspaceScope, new: NewWorkflowRun) -> Result<CreateOutcome> {
    if let Some(key) = &new.idempotency_key
        && let Some(existing) = by_idempotency_key(db, scope, key).await?
    {
        return Ok(CreateOutcome::Existing(existing));
    }
    let key = new.idempotency_key.clone();
    let (row, statements) = create_statements(scope, new, Utc::now());
    match db.write_batch::<NoRow>(&statements, false).await {
        Ok(_) => {}
        Err(StoreError::Conflict) => {
            if let Some(key) = &key
                && let Some(existing) = by_idempotency_key(db, scope, key).await?
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

pub async fn by_idempotency_key(
    db: &Db,
    scope: WorkspaceScope,
    key: &str,
) -> Result<Option<WorkflowRunRow>> {
    db.fetch_optional(select(scope).and_where(Expr::col("idempotency_key").eq(key)))
        .await
}

pub async fn get(db: &Db, scope: WorkspaceScope, id: Uuid) -> Result<Option<WorkflowRunRow>> {
    db.fetch_optional(select(scope).and_where(Expr::col("id").eq(id)))
        .await
}

/// System function (executor): a run by id, whatever its workspace.
pub async fn load_for_execution(db: &Db, id: Uuid) -> Result<Option<WorkflowRunRow>> {
    db.fetch_optional(
        Query::select()
            .columns(columns().iter().copied())
            .from("workflow_runs")
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub workflow_slug: Option<String>,
    pub status: Option<String>,
    pub before: Option<Uuid>,
    pub limit: u64,
}

/// Newest first.
pub async fn list(
    db: &Db,
    scope: WorkspaceScope,
    filter: &RunFilter,
) -> Result<Vec<WorkflowRunRow>> {
    let mut q = select(scope);
    if let Some(slug) = &filter.workflow_slug {
        q.and_where(Expr::col("workflow_slug").eq(slug.as_str()));
    }
    if let Some(status) = &filter.status {
        q.and_where(Expr::col("status").eq(status.as_str()));
    }
    if let Some(before) = filter.before {
        q.and_where(Expr::col("id").lt(before));
    }
    q.order_by("id", Order::Desc).limit(filter.limit);
    db.fetch_all(&q).await
}

/// System function (executor): the run's journal, in order.
pub async fn journal(db: &Db, run_id: Uuid) -> Result<Vec<crate::runs::StepRow>> {
    db.fetch_all(
        Query::select()
            .columns(["idx", "kind", "record", "started_at", "ended_at"])
            .from("run_steps")
            .and_where(Expr::col("run_id").eq(run_id))
            .order_by("idx", Order::Asc),
    )
    .await
}

/// The statements that wake a run blocked on something outside it (an approval decided, a
/// child run ended): its wake counter moves (so a concurrent park is refused) and its parked
/// job becomes due now.
pub fn wake_statements(run_id: Uuid, now: DateTime<Utc>) -> Vec<Statement> {
    vec![
        Statement::Update(
            Query::update()
                .table("workflow_runs")
                .value("wakeups", Expr::col("wakeups").add(1))
                .and_where(Expr::col("id").eq(run_id))
                .to_owned(),
        ),
        Statement::Update(
            Query::update()
                .table("jobs")
                .value("run_at", now)
                .value("updated_at", now)
                .and_where(Expr::col("target_id").eq(run_id))
                .and_where(Expr::col("status").eq("queued"))
                .to_owned(),
        ),
    ]
}

/// The statements that ask a cancelled run's children to stop: child agent runs get their
/// cancel flag (they stop at their next step), child workflow runs their flag and a wake-up.
pub fn cancel_children_statements(parent: Uuid, now: DateTime<Utc>) -> Vec<Statement> {
    let child_workflows = Query::select()
        .column("id")
        .from("workflow_runs")
        .and_where(Expr::col("parent_run_id").eq(parent))
        .and_where(Expr::col("status").is_in([QUEUED, RUNNING, WAITING]))
        .to_owned();
    vec![
        Statement::Update(
            Query::update()
                .table("runs")
                .value("cancel_requested", true)
                .and_where(Expr::col("parent_run_id").eq(parent))
                .and_where(Expr::col("status").is_in(["queued", "running"]))
                .to_owned(),
        ),
        Statement::Update(
            Query::update()
                .table("jobs")
                .value("run_at", now)
                .value("updated_at", now)
                .and_where(Expr::col("target_id").in_subquery(child_workflows))
                .and_where(Expr::col("status").eq("queued"))
                .to_owned(),
        ),
        Statement::Update(
            Query::update()
                .table("workflow_runs")
                .value("cancel_requested", true)
                .value("wakeups", Expr::col("wakeups").add(1))
                .and_where(Expr::col("parent_run_id").eq(parent))
                .and_where(Expr::col("status").is_in([QUEUED, RUNNING, WAITING]))
                .to_owned(),
        ),
    ]
}

/// How the run row changes with a commit.
pub enum Change {
    None,
    Started {
        at: DateTime<Utc>,
    },
    /// Nothing to do until `wake_at` (or a wake-up): status `waiting`, the job goes back to the
    /// queue due at `wake_at`. Refused (as a lost lease) when a wake-up arrived after `seen`.
    Park {
        wake_at: DateTime<Utc>,
        seen_wakeups: i64,
    },
    Ended {
        status: &'static str,
        output: Option<Value>,
        error: Option<Value>,
        at: DateTime<Utc>,
    },
}

/// One executor commit.
pub struct Commit {
    pub run_id: Uuid,
    pub org_id: Uuid,
    pub steps: Vec<crate::runs::NewStep>,
    pub events: Vec<crate::runs::NewEvent>,
    pub change: Change,
    /// Writes that belong to the same step (a child run, an approval row, wake-ups).
    pub extra: Vec<Statement>,
}

#[derive(sqlx::FromRow)]
struct Flags {
    cancel_requested: bool,
    wakeups: i64,
}

/// What a commit learned about the run.
#[derive(Debug, Clone, Copy)]
pub struct CommitOutcome {
    pub cancel_requested: bool,
    pub wakeups: i64,
}

/// System function (executor): writes a batch atomically, only while `lease` is current.
pub async fn commit(db: &Db, lease: &Lease, batch: Commit) -> Result<CommitOutcome> {
    let now = Utc::now();
    let mut update = Query::update();
    update.table("workflow_runs");
    let mut finish_job = false;
    let mut park: Option<DateTime<Utc>> = None;
    match batch.change {
        Change::None => {
            update.value("cancel_requested", Expr::col("cancel_requested"));
        }
        Change::Started { at } => {
            update
                .value("status", RUNNING)
                .value("started_at", Expr::col("started_at").if_null(at));
        }
        Change::Park {
            wake_at,
            seen_wakeups,
        } => {
            update
                .value("status", WAITING)
                .and_where(Expr::col("wakeups").eq(seen_wakeups));
            park = Some(wake_at);
        }
        Change::Ended {
            status,
            output,
            error,
            at,
        } => {
            update
                .value("status", status)
                .value("output", output)
                .value("error", error)
                .value("ended_at", at);
            finish_job = true;
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
        .returning(Query::returning().columns(["cancel_requested", "wakeups"]));
    let mut statements = vec![Statement::Update(update)];
    statements.extend(crate::runs::journal_statements(
        batch.run_id,
        batch.org_id,
        batch.steps,
        batch.events,
        now,
    ));
    if finish_job {
        statements.push(Statement::Update(jobs::finish_update(lease, now)));
    }
    if let Some(wake_at) = park {
        statements.push(Statement::Update(jobs::park_update(lease, wake_at, now)));
    }
    statements.extend(batch.extra);
    let flags: Vec<Flags> = match db.write_batch(&statements, true).await {
        Ok(flags) => flags,
        Err(StoreError::Conflict) => return Err(StoreError::LeaseLost),
        Err(e) => return Err(e),
    };
    let first = flags.first();
    Ok(CommitOutcome {
        cancel_requested: first.is_some_and(|f| f.cancel_requested),
        wakeups: first.map_or(0, |f| f.wakeups),
    })
}

/// System function: the current wake counter and cancel flag of a run.
pub async fn wakeups(db: &Db, run_id: Uuid) -> Result<(i64, bool)> {
    let row: Option<Flags> = db
        .fetch_optional(
            Query::select()
                .columns(["cancel_requested", "wakeups"])
                .from("workflow_runs")
                .and_where(Expr::col("id").eq(run_id)),
        )
        .await?;
    Ok(row.map_or((0, false), |r| (r.wakeups, r.cancel_requested)))
}

pub enum CancelOutcome {
    /// The run was queued or parked; it is cancelled now.
    Cancelled,
    /// The run is executing; the worker stops at its next commit.
    Requested,
    AlreadyEnded,
    NotFound,
}

/// Cancels a run: a queued or parked run at once (its job finished, its pending approvals
/// closed), an executing one through its cancel flag.
pub async fn request_cancel(db: &Db, scope: WorkspaceScope, id: Uuid) -> Result<CancelOutcome> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let flagged = tx
        .execute(
            Query::update()
                .table("workflow_runs")
                .value("cancel_requested", true)
                .value("wakeups", Expr::col("wakeups").add(1))
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("status").is_in([QUEUED, RUNNING, WAITING])),
        )
        .await?;
    if flagged == 0 {
        tx.commit().await?;
        return Ok(match get(db, scope, id).await? {
            Some(_) => CancelOutcome::AlreadyEnded,
            None => CancelOutcome::NotFound,
        });
    }
    // A queued or parked job is made due now, so a worker records the cancellation promptly
    // (with its events, in the journal's order).
    let woken = tx
        .execute(
            Query::update()
                .table("jobs")
                .value("run_at", now)
                .value("updated_at", now)
                .and_where(Expr::col("target_id").eq(id))
                .and_where(Expr::col("status").eq("queued")),
        )
        .await?;
    tx.commit().await?;
    Ok(if woken > 0 {
        CancelOutcome::Cancelled
    } else {
        CancelOutcome::Requested
    })
}

/// Revives a dead-lettered run: `failed` → `queued` with a new job, at most once per failure
/// (the conditional update lets one caller through). The executor records the retry.
pub async fn retry(db: &Db, scope: WorkspaceScope, id: Uuid) -> Result<bool> {
    let now = Utc::now();
    let revive = Query::update()
        .table("workflow_runs")
        .value("status", QUEUED)
        .value("ended_at", Option::<DateTime<Utc>>::None)
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("status").eq(FAILED))
        .and_where(Expr::col("error").is_not_null())
        .returning(Query::returning().column("org_id"))
        .to_owned();
    match db
        // Fenced: when the revive matches no row (not failed, or retried already), nothing is
        // enqueued either.
        .write_batch::<NoRow>(
            &[
                Statement::Update(revive),
                jobs::enqueue_statement(scope.org_id.0, JOB_KIND, id, now),
            ],
            true,
        )
        .await
    {
        Ok(_) => {
            jobs::notify_enqueued(db).await?;
            Ok(true)
        }
        Err(StoreError::LeaseLost) => Ok(false),
        Err(e) => Err(e),
    }
}
