//! In-process wake-ups: "run R has new events" for SSE readers and "a job was enqueued" for
//! workers. Across replicas, workers are also woken by PostgreSQL NOTIFY and SSE readers poll
//! the event table as a fallback, so a missed notification costs latency, never data.

use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

#[derive(Debug)]
pub struct Notifier {
    events: broadcast::Sender<Uuid>,
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
    pub fn run_events_stored(&self, run_id: Uuid) {
        // No receiver is fine: nobody is watching this run.
        let _ = self.events.send(run_id);
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<Uuid> {
        self.events.subscribe()
    }

    pub fn job_enqueued(&self) {
        self.jobs.notify_one();
    }

    pub async fn wait_for_job(&self) {
        self.jobs.notified().await;
    }
}
