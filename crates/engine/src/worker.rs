//! The worker pool of one process: claims due jobs up to its concurrency, executes each with a
//! heartbeat that keeps its lease, and on shutdown stops claiming, lets running work finish for
//! a grace period, then releases the leases of what is left so another process resumes it at
//! once.

use crate::executor;
use crate::platform::Platform;
use agentry_store::jobs::{self, ClaimedJob, Lease};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

/// Waits for the workers to finish after [`Platform::begin_shutdown`].
pub struct WorkerHandle {
    done: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Begins the shutdown (if not already begun) and waits until in-flight runs finished or
    /// were handed back.
    pub async fn shutdown(self, platform: &Platform) {
        platform.begin_shutdown();
        let _ = self.done.await;
    }
}

impl Platform {
    /// Starts this process's workers (and, on PostgreSQL, the LISTEN task that wakes them).
    pub fn start_workers(self: &Arc<Self>) -> WorkerHandle {
        let rx = self.subscribe_shutdown();
        if self.db.pg_pool().is_some() {
            tokio::spawn(listen_for_jobs(self.clone(), rx.clone()));
        }
        tokio::spawn(housekeeping(self.clone(), rx.clone()));
        // Schedules and the event-trigger sweep: every replica runs it; firing is idempotent.
        tokio::spawn(crate::service::triggers::scheduler::run(
            self.clone(),
            rx.clone(),
        ));
        let done = tokio::spawn(worker_loop(self.clone(), rx));
        WorkerHandle { done }
    }
}

/// Hourly: deletes audit entries past the configured retention. Every minute: gives back
/// budget reservations of calls that never settled (a crashed worker). Every replica may run
/// both; they are idempotent.
async fn housekeeping(platform: Arc<Platform>, mut shutdown: watch::Receiver<bool>) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    let mut minutely = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = hourly.tick() => {
                match crate::service::audit::sweep(&platform).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "audit entries past retention deleted"),
                    Err(e) => tracing::warn!(error = %e.message, "audit retention sweep failed"),
                }
            }
            _ = minutely.tick() => {
                match agentry_store::budgets::release_expired(&platform.db, chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(released = n, "expired budget reservations released"),
                    Err(e) => tracing::warn!(error = %e, "budget reservation sweep failed"),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn listen_for_jobs(platform: Arc<Platform>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let listen = jobs::listen_for_enqueues(&platform.db, || platform.notifier.job_enqueued());
        tokio::select! {
            result = listen => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "job LISTEN connection lost; polling until it is back");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn worker_loop(platform: Arc<Platform>, mut shutdown: watch::Receiver<bool>) {
    let capacity = platform.config.worker_concurrency.max(1);
    let mut running: JoinSet<()> = JoinSet::new();
    let mut leases: HashMap<Id, Lease> = HashMap::new();
    platform.set_workers_running(true);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let free = capacity.saturating_sub(running.len());
        let mut claimed_any = false;
        if free > 0 {
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(platform.config.lease).unwrap_or_default();
            match jobs::claim(&platform.db, &platform.worker_id, until, free as u64, now).await {
                Ok(claimed) => {
                    claimed_any = !claimed.is_empty();
                    for job in claimed {
                        let lease = job.lease();
                        let handle = running.spawn(run_job(platform.clone(), job));
                        leases.insert(handle.id(), lease);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if claimed_any && running.len() < capacity {
            // There may be more due work: claim again before sleeping.
            reap_finished(&mut running, &mut leases);
            continue;
        }
        tokio::select! {
            _ = platform.notifier.wait_for_job() => {}
            Some(finished) = running.join_next_with_id() => {
                if let Ok((id, ())) = finished { leases.remove(&id); }
                else if let Err(e) = finished { leases.remove(&e.id()); }
            }
            _ = tokio::time::sleep(platform.config.poll_interval) => {}
            _ = shutdown.changed() => {}
        }
        reap_finished(&mut running, &mut leases);
    }
    platform.set_workers_running(false);
    drain(&platform, running, leases).await;
}

fn reap_finished(running: &mut JoinSet<()>, leases: &mut HashMap<Id, Lease>) {
    while let Some(finished) = running.try_join_next_with_id() {
        match finished {
            Ok((id, ())) => leases.remove(&id),
            Err(e) => leases.remove(&e.id()),
        };
    }
}

/// Graceful shutdown: wait for in-flight runs up to the grace period, then abort the rest and
/// hand their jobs back to the queue.
async fn drain(platform: &Arc<Platform>, mut running: JoinSet<()>, mut leases: HashMap<Id, Lease>) {
    let deadline = tokio::time::Instant::now() + platform.config.shutdown_grace;
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, running.join_next_with_id()).await {
            Ok(Some(Ok((id, ())))) => {
                leases.remove(&id);
            }
            Ok(Some(Err(e))) => {
                leases.remove(&e.id());
            }
            Ok(None) => break,
            Err(_) => {
                running.abort_all();
                while running.join_next().await.is_some() {}
                break;
            }
        }
    }
    for lease in leases.values() {
        if let Err(e) = jobs::release(&platform.db, lease, Utc::now()).await {
            tracing::warn!(error = %e, "releasing a lease on shutdown failed; it will expire");
        }
    }
    if !leases.is_empty() {
        tracing::info!(
            count = leases.len(),
            "released unfinished runs for another worker"
        );
    }
}

/// Executes a job claimed outside the pool (a parent run executing the child it waits for) in
/// the caller's task, with its own heartbeat. Boxed because the executor reaches it from inside
/// a run: the recursion needs a future of known size.
pub(crate) fn run_inline(
    platform: Arc<Platform>,
    job: ClaimedJob,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(run_job(platform, job))
}

/// Executes one job with a heartbeat; stops as soon as the lease is lost.
async fn run_job(platform: Arc<Platform>, job: ClaimedJob) {
    let lease = job.lease();
    let run_id = job.target_id;
    let beat = platform.config.lease / 3;
    let heartbeat = {
        let platform = platform.clone();
        let lease = lease.clone();
        async move {
            loop {
                tokio::time::sleep(beat).await;
                let until = Utc::now()
                    + chrono::Duration::from_std(platform.config.lease).unwrap_or_default();
                match jobs::heartbeat(&platform.db, &lease, until).await {
                    Ok(()) => {}
                    Err(agentry_store::StoreError::LeaseLost) => return,
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
                }
            }
        }
    };
    if job.kind == agentry_store::budgets::ALERT_JOB_KIND {
        let result = crate::service::budgets::deliver_alert(&platform, job.target_id).await;
        if let Err(e) = &result {
            tracing::warn!(alert_id = %job.target_id, error = %e.message, "budget alert delivery failed");
        }
        // Delivery records its own outcome on the alert; the job is done either way.
        let finished = async {
            let mut tx = platform.db.begin().await?;
            jobs::finish(&mut tx, &job.lease(), Utc::now()).await?;
            tx.commit().await
        };
        if let Err(e) = finished.await {
            tracing::warn!(alert_id = %job.target_id, error = %e, "finishing the alert job failed");
        }
        return;
    }
    if job.kind == agentry_store::org_tasks::JOB_KIND {
        tokio::select! {
            result = run_org_task(&platform, &job) => if let Err(e) = result {
                tracing::error!(task_id = %job.target_id, error = %e, "org task failed; it will be retried");
            },
            () = heartbeat => tracing::warn!(task_id = %job.target_id, "lease lost during an org task"),
        }
        return;
    }
    if job.kind == agentry_store::workflow_runs::JOB_KIND {
        tokio::select! {
            result = crate::workflow_exec::execute(platform.clone(), job) => match result {
                Ok(()) => {}
                Err(crate::workflow_exec::FlowError::Store(agentry_store::StoreError::LeaseLost)) => {
                    tracing::warn!(%run_id, "lease lost: another worker owns this workflow run now");
                }
                Err(e) => {
                    tracing::error!(%run_id, error = %e, "workflow run execution failed; it will be retried");
                }
            },
            () = heartbeat => {
                tracing::warn!(%run_id, "lease lost during a workflow run; stopping");
            }
        }
        return;
    }
    tokio::select! {
        result = executor::execute(platform.clone(), job) => match result {
            Ok(()) => {}
            Err(executor::ExecError::Store(agentry_store::StoreError::LeaseLost)) => {
                tracing::warn!(%run_id, "lease lost: another worker owns this run now");
            }
            Err(e) => {
                // The job keeps its lease until it expires, then another attempt resumes it.
                tracing::error!(%run_id, error = %e, "run execution failed; it will be retried");
            }
        },
        () = heartbeat => {
            tracing::warn!(%run_id, "lease lost during execution; stopping");
        }
    }
}

/// Executes an org task (export, deletion) and finishes its job.
async fn run_org_task(platform: &Platform, job: &ClaimedJob) -> Result<(), crate::ServiceError> {
    crate::service::orgs::execute_task(platform, job.target_id).await?;
    let mut tx = platform.db.begin().await?;
    jobs::finish(&mut tx, &job.lease(), Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}
