//! SQLite's one writer, made explicit: a dedicated thread with its own single-threaded runtime
//! executes write batches one after another. A transaction then holds the writer connection
//! only while SQLite works, never while a task waits for its turn on a busy runtime — which
//! under load was most of a write's cost.

use crate::error::{Result, StoreError};
use sea_query_sqlx::SqlxValues;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Sqlite};
use tokio::sync::{mpsc, oneshot};

/// A rendered batch: statements joined with `;`, their positional values in order.
pub(crate) struct WriteBatch {
    pub(crate) sql: String,
    pub(crate) values: SqlxValues,
    /// The batch's first statement must return a row (the fencing check); without one the
    /// whole batch is rolled back and [`StoreError::LeaseLost`] returned.
    pub(crate) fenced: bool,
}

type Reply = oneshot::Sender<Result<Vec<SqliteRow>>>;

#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<(WriteBatch, Reply)>,
}

impl Writer {
    pub(crate) fn start(pool: SqlitePool) -> std::io::Result<Writer> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(WriteBatch, Reply)>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("agentry-sqlite-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some((batch, reply)) = rx.recv().await {
                        let _ = reply.send(execute(&pool, batch).await);
                    }
                });
            })?;
        Ok(Writer { jobs: tx })
    }

    /// Runs the batch in one `BEGIN IMMEDIATE` transaction; returns the rows its statements
    /// returned.
    pub(crate) async fn run(&self, batch: WriteBatch) -> Result<Vec<SqliteRow>> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((batch, reply))
            .map_err(|_| StoreError::Writer("it has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Writer("it has stopped".into()))?
    }
}

async fn execute(pool: &SqlitePool, batch: WriteBatch) -> Result<Vec<SqliteRow>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows = sqlx::query_with::<Sqlite, _>(AssertSqlSafe(batch.sql), batch.values)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
    if batch.fenced && rows.is_empty() {
        // Dropping the transaction rolls it back.
        return Err(StoreError::LeaseLost);
    }
    tx.commit().await?;
    Ok(rows)
}
