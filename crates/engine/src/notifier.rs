//! In-process wake-ups: "run R has new events" for SSE readers and "a job was enqueued" for
//! workers. Across replicas, workers are also woken by PostgreSQL NOTIFY and SSE readers poll
//! the event table as a fallback, so a missed notification costs latency, never data.

use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

/// "Run `run_id` stored new events"; `ended` when one of them was its terminal event.
#[derive(Debug, Clone, Copy)]
pub struct RunNotice {
    pub run_id: Uuid,
    pub ended: bool,
}

#[derive(Debug)]
pub struct Notifier {
    events: broadcast::Sender<RunNotice>,
    jobs: Notify,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            events: broadcast::channel(4096).0,
            jobs: Notify::new(),
        }
    }
}

impl Notifier {
    pub fn run_events_stored(&self, run_id: Uuid, ended: bool) {
        // No receiver is fine: nobody is watching this run.
        let _ = self.events.send(RunNotice { run_id, ended });
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<RunNotice> {
        self.events.subscribe()
    }

    pub fn job_enqueued(&self) {
        self.jobs.notify_one();
    }

    pub async fn wait_for_job(&self) {
        self.jobs.notified().await;
    }
}
