//! Triggers (schedules, webhooks, events) and their fires.
//!
//! A fire row `(trigger_id, fire_key)` records that a trigger started a run for one tick,
//! delivery or source run. The run itself is made unique by its idempotency key; the fire row
//! is the trigger's history and lets the event sweep find what was not fired yet.
//!
//! Scoped functions take a [`WorkspaceScope`]. The system functions (the scheduler, the event
//! sweep, the public webhook route whose signature is its authentication) say so in their docs.

use crate::db::{Db, NoRow, Statement};
use crate::error::{Result, StoreError};
use agentry_core::scope::WorkspaceScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

pub const KIND_SCHEDULE: &str = "schedule";
pub const KIND_WEBHOOK: &str = "webhook";
pub const KIND_EVENT: &str = "event";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriggerRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub kind: String,
    pub target_kind: String,
    pub target: String,
    pub config: Json<Value>,
    /// Sealed by the vault; never leaves the engine.
    pub secrets: Option<String>,
    pub input: Option<Json<Value>>,
    pub paused: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TriggerRow {
    pub fn scope(&self) -> WorkspaceScope {
        WorkspaceScope {
            org_id: self.org_id.into(),
            workspace_id: self.workspace_id.into(),
        }
    }
}

const COLUMNS: [&str; 15] = [
    "id",
    "org_id",
    "workspace_id",
    "name",
    "kind",
    "target_kind",
    "target",
    "config",
    "secrets",
    "input",
    "paused",
    "next_fire_at",
    "last_fired_at",
    "created_at",
    "updated_at",
];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FireRow {
    pub fire_key: String,
    pub run_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

fn select_all() -> SelectStatement {
    Query::select().columns(COLUMNS).from("triggers").to_owned()
}

fn select(scope: WorkspaceScope) -> SelectStatement {
    select_all()
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .to_owned()
}

pub async fn insert(db: &Db, row: &TriggerRow) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("triggers")
            .columns(COLUMNS)
            .values_panic([
                row.id.into(),
                row.org_id.into(),
                row.workspace_id.into(),
                row.name.clone().into(),
                row.kind.clone().into(),
                row.target_kind.clone().into(),
                row.target.clone().into(),
                row.config.0.clone().into(),
                row.secrets.clone().into(),
                row.input.as_ref().map(|j| j.0.clone()).into(),
                row.paused.into(),
                row.next_fire_at.into(),
                row.last_fired_at.into(),
                row.created_at.into(),
                row.updated_at.into(),
            ]),
    )
    .await?;
    Ok(())
}

/// Oldest first (ids are UUIDv7).
pub async fn list(db: &Db, scope: WorkspaceScope) -> Result<Vec<TriggerRow>> {
    db.fetch_all(select(scope).order_by("id", Order::Asc)).await
}

pub async fn get(db: &Db, scope: WorkspaceScope, id: Uuid) -> Result<Option<TriggerRow>> {
    db.fetch_optional(select(scope).and_where(Expr::col("id").eq(id)))
        .await
}

/// System function (the public webhook route): a trigger by id, whatever its workspace. The
/// caller must verify the delivery's signature before acting on the row.
pub async fn get_for_delivery(db: &Db, id: Uuid) -> Result<Option<TriggerRow>> {
    db.fetch_optional(select_all().and_where(Expr::col("id").eq(id)))
        .await
}

/// Writes the editable fields of `row` (name, config, secrets, input, paused, next fire,
/// `updated_at`) if the stored `updated_at` is still `expected` (the value the change was
/// based on). Returns false when the trigger changed in between or no longer exists.
pub async fn update(
    db: &Db,
    scope: WorkspaceScope,
    row: &TriggerRow,
    expected: DateTime<Utc>,
) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("triggers")
                .value("name", row.name.clone())
                .value("config", row.config.0.clone())
                .value("secrets", row.secrets.clone())
                .value("input", row.input.as_ref().map(|j| j.0.clone()))
                .value("paused", row.paused)
                .value("next_fire_at", row.next_fire_at)
                .value("updated_at", row.updated_at)
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("id").eq(row.id))
                .and_where(Expr::col("updated_at").eq(expected)),
        )
        .await?;
    Ok(n > 0)
}

/// Deletes a trigger and its fire history. The runs it started stay.
pub async fn delete(db: &Db, scope: WorkspaceScope, id: Uuid) -> Result<bool> {
    if get(db, scope, id).await?.is_none() {
        return Ok(false);
    }
    db.write_batch::<NoRow>(
        &[
            Statement::Delete(
                Query::delete()
                    .from_table("trigger_fires")
                    .and_where(Expr::col("org_id").eq(scope.org_id.0))
                    .and_where(Expr::col("trigger_id").eq(id))
                    .to_owned(),
            ),
            Statement::Delete(
                Query::delete()
                    .from_table("triggers")
                    .and_where(Expr::col("org_id").eq(scope.org_id.0))
                    .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            ),
        ],
        false,
    )
    .await?;
    Ok(true)
}

#[derive(sqlx::FromRow)]
struct IdRow {
    id: Uuid,
}

/// System function (the scheduler): unpaused schedules whose next tick is at or before `now`,
/// most overdue first.
pub async fn due_schedules(db: &Db, now: DateTime<Utc>, limit: u64) -> Result<Vec<TriggerRow>> {
    db.fetch_all(
        select_all()
            .and_where(Expr::col("kind").eq(KIND_SCHEDULE))
            .and_where(Expr::col("next_fire_at").lte(now))
            .and_where(Expr::col("paused").eq(false))
            .order_by("next_fire_at", Order::Asc)
            .limit(limit),
    )
    .await
}

/// System function (the scheduler): moves a schedule's next tick from `old` to `new` only if
/// no one else moved it first, so of several replicas evaluating one tick exactly one
/// advances it. Returns whether this call did.
pub async fn advance(
    db: &Db,
    id: Uuid,
    old: DateTime<Utc>,
    new: Option<DateTime<Utc>>,
) -> Result<bool> {
    let n = db
        .execute(
            Query::update()
                .table("triggers")
                .value("next_fire_at", new)
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("next_fire_at").eq(old)),
        )
        .await?;
    Ok(n > 0)
}

/// System function: records that `trigger` fired for `fire_key` (started `run_id`, or `None`
/// when the run could not start) and moves `last_fired_at` forward to `fired_at`. Returns false
/// when the fire was already recorded (by another replica, an earlier delivery, the sweep).
pub async fn record_fire(
    db: &Db,
    trigger: &TriggerRow,
    fire_key: &str,
    run_id: Option<Uuid>,
    fired_at: DateTime<Utc>,
) -> Result<bool> {
    let insert = Query::insert()
        .into_table("trigger_fires")
        .columns(["trigger_id", "fire_key", "org_id", "run_id", "created_at"])
        .values_panic([
            trigger.id.into(),
            fire_key.into(),
            trigger.org_id.into(),
            run_id.into(),
            Utc::now().into(),
        ])
        .to_owned();
    let touch = Query::update()
        .table("triggers")
        .value("last_fired_at", fired_at)
        .and_where(Expr::col("id").eq(trigger.id))
        .and_where(
            Expr::col("last_fired_at")
                .is_null()
                .or(Expr::col("last_fired_at").lt(fired_at)),
        )
        .to_owned();
    match db
        .write_batch::<NoRow>(
            &[Statement::Insert(insert), Statement::Update(touch)],
            false,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The latest fires of a trigger of `scope`'s org (the caller checked the trigger's workspace).
pub async fn fires(
    db: &Db,
    scope: WorkspaceScope,
    trigger_id: Uuid,
    limit: u64,
) -> Result<Vec<FireRow>> {
    db.fetch_all(
        Query::select()
            .columns(["fire_key", "run_id", "created_at"])
            .from("trigger_fires")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("trigger_id").eq(trigger_id))
            .order_by("created_at", Order::Desc)
            .limit(limit),
    )
    .await
}

/// System function (the event sweep): which of `keys` a trigger has already fired for.
pub async fn fired_keys(db: &Db, trigger_id: Uuid, keys: &[String]) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<FireRow> = db
        .fetch_all(
            Query::select()
                .columns(["fire_key", "run_id", "created_at"])
                .from("trigger_fires")
                .and_where(Expr::col("trigger_id").eq(trigger_id))
                .and_where(Expr::col("fire_key").is_in(keys.iter().map(String::as_str))),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.fire_key).collect())
}

/// The unpaused event triggers of a workspace: the one (indexed) query a run's end costs when
/// nothing listens. Matching the source happens in the caller, on the parsed config.
pub async fn event_listeners(db: &Db, scope: WorkspaceScope) -> Result<Vec<TriggerRow>> {
    db.fetch_all(
        select(scope)
            .and_where(Expr::col("kind").eq(KIND_EVENT))
            .and_where(Expr::col("paused").eq(false)),
    )
    .await
}

/// System function (the event sweep): unpaused event triggers of every workspace.
pub async fn all_event_listeners(db: &Db, limit: u64) -> Result<Vec<TriggerRow>> {
    db.fetch_all(
        select_all()
            .and_where(Expr::col("kind").eq(KIND_EVENT))
            .and_where(Expr::col("paused").eq(false))
            .order_by("id", Order::Asc)
            .limit(limit),
    )
    .await
}

/// A run that ended, as an event trigger sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndedRun {
    pub id: Uuid,
    pub status: String,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct AgentOutput {
    output: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct WorkflowOutput {
    output: Option<Json<Value>>,
}

/// Runs of the agent (`source_kind` = `agent`) or workflow `source` in `scope` that ended in
/// `(after, before]` with one of `statuses`, created at or after `created_from` (an id bound
/// that keeps the scan on the workspace index). Newest first.
#[allow(clippy::too_many_arguments)]
pub async fn ended_runs(
    db: &Db,
    scope: WorkspaceScope,
    source_kind: &str,
    source: &str,
    statuses: &[&str],
    created_from: Uuid,
    after: DateTime<Utc>,
    before: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<EndedRun>> {
    let (table, slug_col) = runs_table(source_kind);
    db.fetch_all(
        Query::select()
            .columns(["id", "status", "ended_at"])
            .from(table)
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
            .and_where(Expr::col("id").gte(created_from))
            .and_where(Expr::col(slug_col).eq(source))
            .and_where(Expr::col("status").is_in(statuses.iter().copied()))
            .and_where(Expr::col("ended_at").gt(after))
            .and_where(Expr::col("ended_at").lte(before))
            .order_by("id", Order::Desc)
            .limit(limit),
    )
    .await
}

/// A run's output as JSON (an agent's text becomes a string), for the event trigger's input.
pub async fn run_output(
    db: &Db,
    scope: WorkspaceScope,
    source_kind: &str,
    run_id: Uuid,
) -> Result<Option<Value>> {
    let (table, _) = runs_table(source_kind);
    let q = Query::select()
        .column("output")
        .from(table)
        .and_where(Expr::col("org_id").eq(scope.org_id.0))
        .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
        .and_where(Expr::col("id").eq(run_id))
        .to_owned();
    Ok(if source_kind == "workflow" {
        db.fetch_optional::<WorkflowOutput, _>(&q)
            .await?
            .and_then(|r| r.output.map(|j| j.0))
    } else {
        db.fetch_optional::<AgentOutput, _>(&q)
            .await?
            .and_then(|r| r.output.map(Value::String))
    })
}

/// The id of the run (agent or workflow, by `target_kind`) started with `key` in `scope`.
pub async fn run_by_idempotency_key(
    db: &Db,
    scope: WorkspaceScope,
    target_kind: &str,
    key: &str,
) -> Result<Option<Uuid>> {
    let (table, _) = runs_table(target_kind);
    let row: Option<IdRow> = db
        .fetch_optional(
            Query::select()
                .column("id")
                .from(table)
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("workspace_id").eq(scope.workspace_id.0))
                .and_where(Expr::col("idempotency_key").eq(key)),
        )
        .await?;
    Ok(row.map(|r| r.id))
}

fn runs_table(kind: &str) -> (&'static str, &'static str) {
    if kind == "workflow" {
        ("workflow_runs", "workflow_slug")
    } else {
        ("runs", "agent_slug")
    }
}
