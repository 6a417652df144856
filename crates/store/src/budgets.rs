//! Budgets: definitions, per-period counters, reservations and announced thresholds.
//!
//! Enforcement is a counter per (budget, period): `spent` (settled) and `reserved` (in-flight
//! calls' maximum cost). A call may start while `spent + reserved < cap`; it reserves its
//! maximum, so concurrent calls on any replica overshoot the cap by at most one call. The
//! conditional UPDATE is the lock: on PostgreSQL a concurrent UPDATE re-checks the condition on
//! the row it waited for; on SQLite the single writer serialises them.

use crate::db::{Db, NoRow, Statement};
use crate::error::{Result, StoreError};
use agentry_core::scope::OrgScope;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BudgetRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// `org`, `workspace`, `agent`, `api_key` or `end_user`.
    pub scope_kind: String,
    pub scope_ref: String,
    /// `day`, `week` or `month`.
    pub period: String,
    pub timezone: String,
    /// `usd` (amounts in pico-USD) or `tokens`.
    pub unit: String,
    pub limit_amount: i64,
    /// `[{"percent": 80, "action": "notify"}, {"percent": 100, "action": "block"}]`
    pub thresholds: Json<Value>,
    pub notify_url: Option<String>,
    pub notify_secret_encrypted: Option<String>,
    pub notify_email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: [&str; 15] = [
    "id",
    "org_id",
    "name",
    "scope_kind",
    "scope_ref",
    "period",
    "timezone",
    "unit",
    "limit_amount",
    "thresholds",
    "notify_url",
    "notify_secret_encrypted",
    "notify_email",
    "created_at",
    "updated_at",
];

fn values(row: &BudgetRow) -> [sea_query::SimpleExpr; 15] {
    [
        row.id.into(),
        row.org_id.into(),
        row.name.clone().into(),
        row.scope_kind.clone().into(),
        row.scope_ref.clone().into(),
        row.period.clone().into(),
        row.timezone.clone().into(),
        row.unit.clone().into(),
        row.limit_amount.into(),
        row.thresholds.0.clone().into(),
        row.notify_url.clone().into(),
        row.notify_secret_encrypted.clone().into(),
        row.notify_email.clone().into(),
        row.created_at.into(),
        row.updated_at.into(),
    ]
}

pub async fn create(db: &Db, row: &BudgetRow) -> Result<()> {
    db.execute(
        Query::insert()
            .into_table("budgets")
            .columns(COLUMNS)
            .values_panic(values(row)),
    )
    .await?;
    Ok(())
}

/// Replaces a budget's definition (its counters stay).
pub async fn update(db: &Db, row: &BudgetRow) -> Result<bool> {
    let mut q = Query::update();
    q.table("budgets");
    for (col, val) in COLUMNS.iter().zip(values(row)).skip(2) {
        if *col != "created_at" {
            q.value(*col, val);
        }
    }
    let n = db
        .execute(
            q.and_where(Expr::col("org_id").eq(row.org_id))
                .and_where(Expr::col("id").eq(row.id)),
        )
        .await?;
    Ok(n > 0)
}

pub async fn list(db: &Db, scope: OrgScope) -> Result<Vec<BudgetRow>> {
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("budgets")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .order_by("created_at", Order::Asc),
    )
    .await
}

pub async fn get(db: &Db, scope: OrgScope, id: Uuid) -> Result<Option<BudgetRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("budgets")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

/// System function (alert delivery job): a budget by id.
pub async fn get_for_job(db: &Db, id: Uuid) -> Result<Option<BudgetRow>> {
    db.fetch_optional(
        Query::select()
            .columns(COLUMNS)
            .from("budgets")
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

pub async fn delete(db: &Db, scope: OrgScope, id: Uuid) -> Result<bool> {
    let statements = [
        Statement::Delete(
            Query::delete()
                .from_table("budget_reservations")
                .and_where(Expr::col("budget_id").eq(id))
                .and_where(Expr::exists(
                    Query::select()
                        .expr(Expr::val(1))
                        .from("budgets")
                        .and_where(Expr::col(("budgets", "id")).eq(id))
                        .and_where(Expr::col(("budgets", "org_id")).eq(scope.org_id.0))
                        .to_owned(),
                ))
                .to_owned(),
        ),
        Statement::Delete(
            Query::delete()
                .from_table("budget_periods")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("budget_id").eq(id))
                .to_owned(),
        ),
    ];
    let mut tx = db.begin().await?;
    tx.run_all::<NoRow>(&statements).await?;
    let n = tx
        .execute(
            Query::delete()
                .from_table("budgets")
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
    tx.commit().await?;
    Ok(n > 0)
}

/// What a run is attributed to, to find the budgets that apply to its calls.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub workspace_id: Uuid,
    pub agent_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub end_user: Option<String>,
}

/// System function (executor): the budgets of an org that apply to a subject.
pub async fn applicable(db: &Db, org_id: Uuid, subject: &Subject) -> Result<Vec<BudgetRow>> {
    let mut any = Expr::col("scope_kind")
        .eq("org")
        .or(Expr::col("scope_kind")
            .eq("workspace")
            .and(Expr::col("scope_ref").eq(subject.workspace_id.to_string())))
        .or(Expr::col("scope_kind")
            .eq("agent")
            .and(Expr::col("scope_ref").eq(subject.agent_id.to_string())));
    if let Some(key) = subject.api_key_id {
        any = any.or(Expr::col("scope_kind")
            .eq("api_key")
            .and(Expr::col("scope_ref").eq(key.to_string())));
    }
    if let Some(end_user) = &subject.end_user {
        any = any.or(Expr::col("scope_kind")
            .eq("end_user")
            .and(Expr::col("scope_ref").eq(end_user.as_str())));
    }
    db.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("budgets")
            .and_where(Expr::col("org_id").eq(org_id))
            .and_where(any),
    )
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PeriodRow {
    pub budget_id: Uuid,
    pub period_start: String,
    pub spent: i64,
    pub reserved: i64,
}

pub async fn period(db: &Db, budget_id: Uuid, period_start: &str) -> Result<Option<PeriodRow>> {
    db.fetch_optional(
        Query::select()
            .columns(["budget_id", "period_start", "spent", "reserved"])
            .from("budget_periods")
            .and_where(Expr::col("budget_id").eq(budget_id))
            .and_where(Expr::col("period_start").eq(period_start)),
    )
    .await
}

/// One reservation to take before a model call.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub budget_id: Uuid,
    pub org_id: Uuid,
    pub period_start: String,
    pub amount: i64,
    /// The call may start only while `spent + reserved < cap`.
    pub cap: i64,
    pub run_id: Uuid,
    pub step: i64,
    pub expires_at: DateTime<Utc>,
}

/// A budget that refused a reservation.
#[derive(Debug, Clone)]
pub struct Refused {
    pub budget_id: Uuid,
    pub spent: i64,
    pub reserved: i64,
}

fn ensure_period(budget_id: Uuid, org_id: Uuid, period_start: &str) -> sea_query::InsertStatement {
    Query::insert()
        .into_table("budget_periods")
        .columns(["budget_id", "period_start", "org_id", "spent", "reserved"])
        .values_panic([
            budget_id.into(),
            period_start.into(),
            org_id.into(),
            0i64.into(),
            0i64.into(),
        ])
        .on_conflict(
            OnConflict::columns(["budget_id", "period_start"])
                .do_nothing()
                .to_owned(),
        )
        .to_owned()
}

/// System function (executor): takes every reservation or none. Reservations an earlier
/// (crashed) attempt of the same step left behind are released first.
pub async fn reserve(
    db: &Db,
    run_id: Uuid,
    step: i64,
    reservations: &[Reservation],
) -> Result<std::result::Result<(), Refused>> {
    let mut tx = db.begin().await?;
    release_step(&mut tx, run_id, step).await?;
    for r in reservations {
        tx.execute(&ensure_period(r.budget_id, r.org_id, &r.period_start))
            .await?;
        let taken = tx
            .execute(
                Query::update()
                    .table("budget_periods")
                    .value("reserved", Expr::col("reserved").add(r.amount))
                    .and_where(Expr::col("budget_id").eq(r.budget_id))
                    .and_where(Expr::col("period_start").eq(r.period_start.as_str()))
                    .and_where(Expr::col("spent").add(Expr::col("reserved")).lt(r.cap)),
            )
            .await?;
        if taken == 0 {
            let row: Option<PeriodRow> = tx
                .fetch_optional(
                    Query::select()
                        .columns(["budget_id", "period_start", "spent", "reserved"])
                        .from("budget_periods")
                        .and_where(Expr::col("budget_id").eq(r.budget_id))
                        .and_where(Expr::col("period_start").eq(r.period_start.as_str())),
                )
                .await?;
            drop(tx);
            let (spent, reserved) = row.map(|p| (p.spent, p.reserved)).unwrap_or((0, 0));
            return Ok(Err(Refused {
                budget_id: r.budget_id,
                spent,
                reserved,
            }));
        }
        tx.execute(
            Query::insert()
                .into_table("budget_reservations")
                .columns([
                    "id",
                    "budget_id",
                    "period_start",
                    "run_id",
                    "step",
                    "amount",
                    "expires_at",
                ])
                .values_panic([
                    Uuid::now_v7().into(),
                    r.budget_id.into(),
                    r.period_start.clone().into(),
                    r.run_id.into(),
                    r.step.into(),
                    r.amount.into(),
                    r.expires_at.into(),
                ]),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct ReservationRow {
    id: Uuid,
    budget_id: Uuid,
    period_start: String,
    amount: i64,
}

/// Gives back the reservations of one step (the call is about to be re-reserved or settled).
async fn release_step(tx: &mut crate::db::Tx, run_id: Uuid, step: i64) -> Result<()> {
    let rows: Vec<ReservationRow> = tx
        .fetch_all(
            Query::select()
                .columns(["id", "budget_id", "period_start", "amount"])
                .from("budget_reservations")
                .and_where(Expr::col("run_id").eq(run_id))
                .and_where(Expr::col("step").eq(step)),
        )
        .await?;
    release_rows(tx, &rows).await
}

async fn release_rows(tx: &mut crate::db::Tx, rows: &[ReservationRow]) -> Result<()> {
    for r in rows {
        tx.execute(
            Query::update()
                .table("budget_periods")
                .value("reserved", Expr::col("reserved").sub(r.amount))
                .and_where(Expr::col("budget_id").eq(r.budget_id))
                .and_where(Expr::col("period_start").eq(r.period_start.as_str())),
        )
        .await?;
        tx.execute(
            Query::delete()
                .from_table("budget_reservations")
                .and_where(Expr::col("id").eq(r.id)),
        )
        .await?;
    }
    Ok(())
}

/// What one settled call adds to one budget's period.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub budget_id: Uuid,
    pub org_id: Uuid,
    pub period_start: String,
    pub spent: i64,
}

/// Statements (for the executor's commit) that add the actual spend and give back the step's
/// reservations. A reservation the expiry sweep already gave back is not given back twice:
/// the counter moves only while its row still exists, and the row goes in the same batch.
pub fn settle_statements(
    run_id: Uuid,
    step: i64,
    settlements: &[Settlement],
    reserved: &[(Uuid, String, i64)],
) -> Vec<Statement> {
    let mut out = Vec::new();
    for s in settlements {
        out.push(Statement::Insert(
            Query::insert()
                .into_table("budget_periods")
                .columns(["budget_id", "period_start", "org_id", "spent", "reserved"])
                .values_panic([
                    s.budget_id.into(),
                    s.period_start.clone().into(),
                    s.org_id.into(),
                    s.spent.into(),
                    0i64.into(),
                ])
                .on_conflict(
                    OnConflict::columns(["budget_id", "period_start"])
                        .value("spent", Expr::cust("budget_periods.spent + excluded.spent"))
                        .to_owned(),
                )
                .to_owned(),
        ));
    }
    for (budget_id, period_start, amount) in reserved {
        let still_held = Query::select()
            .expr(Expr::val(1))
            .from("budget_reservations")
            .and_where(Expr::col(("budget_reservations", "run_id")).eq(run_id))
            .and_where(Expr::col(("budget_reservations", "step")).eq(step))
            .and_where(Expr::col(("budget_reservations", "budget_id")).eq(*budget_id))
            .to_owned();
        out.push(Statement::Update(
            Query::update()
                .table("budget_periods")
                .value("reserved", Expr::col("reserved").sub(*amount))
                .and_where(Expr::col("budget_id").eq(*budget_id))
                .and_where(Expr::col("period_start").eq(period_start.as_str()))
                .and_where(Expr::exists(still_held))
                .to_owned(),
        ));
    }
    if !reserved.is_empty() {
        out.push(Statement::Delete(
            Query::delete()
                .from_table("budget_reservations")
                .and_where(Expr::col("run_id").eq(run_id))
                .and_where(Expr::col("step").eq(step))
                .to_owned(),
        ));
    }
    out
}

/// System function (worker): gives back reservations whose call never settled (a crashed
/// worker). Returns how many were released.
pub async fn release_expired(db: &Db, now: DateTime<Utc>) -> Result<usize> {
    let mut tx = db.begin().await?;
    let rows: Vec<ReservationRow> = tx
        .fetch_all(
            Query::select()
                .columns(["id", "budget_id", "period_start", "amount"])
                .from("budget_reservations")
                .and_where(Expr::col("expires_at").lt(now))
                .limit(1000),
        )
        .await?;
    release_rows(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(rows.len())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    pub id: Uuid,
    pub budget_id: Uuid,
    pub org_id: Uuid,
    pub period_start: String,
    pub threshold: i64,
    pub action: String,
    pub spent: i64,
    /// `pending`, `delivered`, `failed` or `none` (nothing to deliver to).
    pub delivery: String,
    pub delivery_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ALERT_COLUMNS: [&str; 10] = [
    "id",
    "budget_id",
    "org_id",
    "period_start",
    "threshold",
    "action",
    "spent",
    "delivery",
    "delivery_error",
    "created_at",
];

/// Records a crossed threshold once per period; returns `true` when this call recorded it (and
/// queued its delivery when there is something to deliver to).
pub async fn record_alert(db: &Db, alert: &AlertRow, deliver: bool) -> Result<bool> {
    let mut tx = db.begin().await?;
    let n = tx
        .execute(
            Query::insert()
                .into_table("budget_alerts")
                .columns(ALERT_COLUMNS)
                .values_panic([
                    alert.id.into(),
                    alert.budget_id.into(),
                    alert.org_id.into(),
                    alert.period_start.clone().into(),
                    alert.threshold.into(),
                    alert.action.clone().into(),
                    alert.spent.into(),
                    alert.delivery.clone().into(),
                    alert.delivery_error.clone().into(),
                    alert.created_at.into(),
                ])
                .on_conflict(
                    OnConflict::columns(["budget_id", "period_start", "threshold"])
                        .do_nothing()
                        .to_owned(),
                ),
        )
        .await?;
    if n > 0 && deliver {
        tx.run_all::<NoRow>(&[crate::jobs::enqueue_statement(
            alert.org_id,
            ALERT_JOB_KIND,
            alert.id,
            alert.created_at,
        )])
        .await?;
    }
    tx.commit().await?;
    if n > 0 && deliver {
        crate::jobs::notify_enqueued(db).await?;
    }
    Ok(n > 0)
}

pub const ALERT_JOB_KIND: &str = "budget_alert";

pub async fn alerts(db: &Db, scope: OrgScope, budget_id: Uuid) -> Result<Vec<AlertRow>> {
    db.fetch_all(
        Query::select()
            .columns(ALERT_COLUMNS)
            .from("budget_alerts")
            .and_where(Expr::col("org_id").eq(scope.org_id.0))
            .and_where(Expr::col("budget_id").eq(budget_id))
            .order_by("created_at", Order::Asc),
    )
    .await
}

/// System function (alert job).
pub async fn alert_for_job(db: &Db, id: Uuid) -> Result<Option<AlertRow>> {
    db.fetch_optional(
        Query::select()
            .columns(ALERT_COLUMNS)
            .from("budget_alerts")
            .and_where(Expr::col("id").eq(id)),
    )
    .await
}

pub async fn set_alert_delivery(
    db: &Db,
    id: Uuid,
    delivery: &str,
    error: Option<&str>,
) -> Result<()> {
    db.execute(
        Query::update()
            .table("budget_alerts")
            .value("delivery", delivery)
            .value("delivery_error", error.map(str::to_string))
            .and_where(Expr::col("id").eq(id)),
    )
    .await
    .map(|_| ())
    .map_err(|e: StoreError| e)
}

/// Whether a budget's target (a workspace, agent or API key) exists in the org.
pub async fn target_exists(db: &Db, scope: OrgScope, kind: &str, id: Uuid) -> Result<bool> {
    let table = match kind {
        "workspace" => "workspaces",
        "agent" => "agents",
        "api_key" => "api_keys",
        _ => return Ok(false),
    };
    #[derive(sqlx::FromRow)]
    struct Found {
        id: Uuid,
    }
    let found: Option<Found> = db
        .fetch_optional(
            Query::select()
                .column("id")
                .from(table)
                .and_where(Expr::col("org_id").eq(scope.org_id.0))
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
    Ok(found.is_some_and(|f| f.id == id))
}
