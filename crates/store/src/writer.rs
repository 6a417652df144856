//! SQLite's one writer, made explicit: a dedicated thread with its own single-threaded runtime
//! executes write batches one after another. A transaction then holds the writer connection
//! only while SQLite works, never while a task waits for its turn on a busy runtime — which
//! under load was most of a write's cost.

use crate::error::{Result, StoreError};
use sea_query_sqlx::SqlxValues;
use sqlx::sqlite::SqlitePool;
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

type Reply = oneshot::Sender<Result<Vec<bool>>>;

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

    /// Runs the batch in one `BEGIN IMMEDIATE` transaction; returns the booleans the batch's
    /// statements returned (the first column of each returned row).
    pub(crate) async fn run(&self, batch: WriteBatch) -> Result<Vec<bool>> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((batch, reply))
            .map_err(|_| StoreError::Corrupt("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Corrupt("the SQLite writer has stopped".into()))?
    }
}

async fn execute(pool: &SqlitePool, batch: WriteBatch) -> Result<Vec<bool>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows: Vec<(bool,)> =
        sqlx::query_as_with::<Sqlite, (bool,), _>(AssertSqlSafe(batch.sql), batch.values)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
    if batch.fenced && rows.is_empty() {
        // Dropping the transaction rolls it back.
        return Err(StoreError::LeaseLost);
    }
    tx.commit().await?;
    Ok(rows.into_iter().map(|(b,)| b).collect())
}
