//! The durable job queue, stored in the same database as everything else so that enqueueing
//! commits atomically with the state change that caused it.
//!
//! A job is claimed with a lease (owner + expiry) and a fencing token that increases on every
//! claim. Workers extend the lease while they work; every commit a worker makes checks that its
//! token is still current (see `runs::commit`), so a worker that stalled past its lease and lost the
//! job to another worker cannot write anything afterwards. On PostgreSQL claims use
//! `FOR UPDATE SKIP LOCKED`, so replicas never claim the same job; on SQLite the single writer
//! serialises claims.

use crate::db::{Db, Tx};
use crate::error::{Result, StoreError};
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use uuid::Uuid;

pub const KIND_AGENT_RUN: &str = "agent_run";
/// The PostgreSQL NOTIFY channel that wakes workers when a job is enqueued.
pub const NOTIFY_CHANNEL: &str = "agentry_jobs";

const STATUS_QUEUED: &str = "queued";
const STATUS_RUNNING: &str = "running";
const STATUS_DONE: &str = "done";

/// Proof that a worker holds a job. Every write made on the job's behalf presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: Uuid,
    pub token: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: String,
    pub target_id: Uuid,
    pub lease_token: i64,
    pub attempts: i64,
}

impl ClaimedJob {
    pub fn lease(&self) -> Lease {
        Lease {
            job_id: self.id,
            token: self.lease_token,
        }
    }
}

/// The statement that enqueues a job, for batching with the write that causes it. On
/// PostgreSQL, follow it with `tx.notify(NOTIFY_CHANNEL)`.
pub fn enqueue_statement(
    org_id: Uuid,
    kind: &str,
    target_id: Uuid,
    now: DateTime<Utc>,
) -> crate::Statement {
    crate::Statement::Insert(
        Query::insert()
            .into_table("jobs")
            .columns([
                "id",
                "org_id",
                "kind",
                "target_id",
                "status",
                "run_at",
                "lease_token",
                "attempts",
                "created_at",
                "updated_at",
            ])
            .values_panic([
                Uuid::now_v7().into(),
                org_id.into(),
                kind.into(),
                target_id.into(),
                STATUS_QUEUED.into(),
                now.into(),
                0i64.into(),
                0i64.into(),
                now.into(),
                now.into(),
            ])
            .to_owned(),
    )
}

/// Wakes workers of every replica (PostgreSQL `NOTIFY`); on SQLite the caller wakes its own.
pub async fn notify_enqueued(db: &Db) -> Result<()> {
    if db.pg_pool().is_some() {
        let mut tx = db.begin().await?;
        tx.notify(NOTIFY_CHANNEL).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Claims up to `limit` jobs that are due, or whose previous holder's lease expired.
pub async fn claim(
    db: &Db,
    owner: &str,
    lease_until: DateTime<Utc>,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Vec<ClaimedJob>> {
    let due = Query::select()
        .column("id")
        .from("jobs")
        .cond_where(
            Expr::col("status")
                .eq(STATUS_QUEUED)
                .and(Expr::col("run_at").lte(now))
                .or(Expr::col("status")
                    .eq(STATUS_RUNNING)
                    .and(Expr::col("lease_until").lt(now))),
        )
        .order_by("run_at", Order::Asc)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    let claim = Query::update()
        .table("jobs")
        .value("status", STATUS_RUNNING)
        .value("lease_owner", owner)
        .value("lease_until", lease_until)
        .value("lease_token", Expr::col("lease_token").add(1))
        .value("attempts", Expr::col("attempts").add(1))
        .value("updated_at", now)
        .and_where(Expr::col("id").in_subquery(due))
        .returning(Query::returning().columns([
            "id",
            "org_id",
            "kind",
            "target_id",
            "lease_token",
            "attempts",
        ]))
        .to_owned();
    db.write_batch(&[crate::Statement::Update(claim)], false)
        .await
}

/// Claims the job of one target when it is due (or its holder's lease expired). A run waiting
/// for its child run claims the child's job and executes it in its own task, so a chain of
/// delegations never needs more than one worker slot. On PostgreSQL a concurrent claim of the
/// same row waits for the row lock and then no longer matches, so only one claim wins.
pub async fn claim_target(
    db: &Db,
    owner: &str,
    target_id: Uuid,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<ClaimedJob>> {
    let claim = Query::update()
        .table("jobs")
        .value("status", STATUS_RUNNING)
        .value("lease_owner", owner)
        .value("lease_until", lease_until)
        .value("lease_token", Expr::col("lease_token").add(1))
        .value("attempts", Expr::col("attempts").add(1))
        .value("updated_at", now)
        .and_where(
            Expr::col("target_id").eq(target_id).and(
                Expr::col("status")
                    .eq(STATUS_QUEUED)
                    .and(Expr::col("run_at").lte(now))
                    .or(Expr::col("status")
                        .eq(STATUS_RUNNING)
                        .and(Expr::col("lease_until").lt(now))),
            ),
        )
        .returning(Query::returning().columns([
            "id",
            "org_id",
            "kind",
            "target_id",
            "lease_token",
            "attempts",
        ]))
        .to_owned();
    let claimed: Vec<ClaimedJob> = db
        .write_batch(&[crate::Statement::Update(claim)], false)
        .await?;
    Ok(claimed.into_iter().next())
}

/// Extends a lease (the heartbeat). Fails with [`StoreError::LeaseLost`] when another worker
/// holds the job now.
pub async fn heartbeat(db: &Db, lease: &Lease, until: DateTime<Utc>) -> Result<()> {
    #[derive(sqlx::FromRow)]
    struct Held {
        #[allow(dead_code)]
        id: Uuid,
    }
    let _held: Vec<Held> = db
        .write_batch(
            &[crate::Statement::Update(
                Query::update()
                    .table("jobs")
                    .value("lease_until", until)
                    .and_where(Expr::col("id").eq(lease.job_id))
                    .and_where(Expr::col("lease_token").eq(lease.token))
                    .and_where(Expr::col("status").eq(STATUS_RUNNING))
                    .returning(Query::returning().column("id"))
                    .to_owned(),
            )],
            true,
        )
        .await?;
    Ok(())
}

/// The statement that marks a job finished (only while `lease` is current), for batching with
/// the writes that record the outcome.
pub fn finish_update(lease: &Lease, now: DateTime<Utc>) -> sea_query::UpdateStatement {
    Query::update()
        .table("jobs")
        .value("status", STATUS_DONE)
        .value("lease_owner", Option::<String>::None)
        .value("lease_until", Option::<DateTime<Utc>>::None)
        .value("updated_at", now)
        .and_where(Expr::col("id").eq(lease.job_id))
        .and_where(Expr::col("lease_token").eq(lease.token))
        .to_owned()
}

/// The statement that puts a held job back in the queue, due at `run_at` (a workflow run
/// parks until its next timer or wake-up), only while `lease` is current.
pub fn park_update(
    lease: &Lease,
    run_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sea_query::UpdateStatement {
    Query::update()
        .table("jobs")
        .value("status", STATUS_QUEUED)
        .value("lease_owner", Option::<String>::None)
        .value("lease_until", Option::<DateTime<Utc>>::None)
        .value("run_at", run_at)
        .value("updated_at", now)
        .and_where(Expr::col("id").eq(lease.job_id))
        .and_where(Expr::col("lease_token").eq(lease.token))
        .to_owned()
}

/// Marks the job finished, inside the transaction that records the outcome.
pub async fn finish(tx: &mut Tx, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
    if tx.execute(&finish_update(lease, now)).await? == 0 {
        return Err(StoreError::LeaseLost);
    }
    Ok(())
}

/// Gives a job back to the queue at once (graceful shutdown), so another worker need not wait
/// for the lease to expire.
pub async fn release(db: &Db, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
    db.execute(
        Query::update()
            .table("jobs")
            .value("status", STATUS_QUEUED)
            .value("lease_owner", Option::<String>::None)
            .value("lease_until", Option::<DateTime<Utc>>::None)
            .value("run_at", now)
            .value("updated_at", now)
            .and_where(Expr::col("id").eq(lease.job_id))
            .and_where(Expr::col("lease_token").eq(lease.token))
            .and_where(Expr::col("status").eq(STATUS_RUNNING)),
    )
    .await?;
    Ok(())
}

/// Marks every job of a target finished (a queued run was cancelled before any worker took it).
pub async fn finish_for_target(tx: &mut Tx, target_id: Uuid, now: DateTime<Utc>) -> Result<()> {
    tx.execute(
        Query::update()
            .table("jobs")
            .value("status", STATUS_DONE)
            .value("updated_at", now)
            .and_where(Expr::col("target_id").eq(target_id))
            .and_where(Expr::col("status").eq(STATUS_QUEUED)),
    )
    .await?;
    Ok(())
}

/// On PostgreSQL: listens for enqueue notifications (from any replica) and calls `wake` for
/// each; returns only when the connection fails. On SQLite (one process) it returns at once.
pub async fn listen_for_enqueues(db: &Db, wake: impl Fn()) -> Result<()> {
    let Some(pool) = db.pg_pool() else {
        return Ok(());
    };
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    loop {
        listener.recv().await?;
        wake();
    }
}
