//! The connection layer: one enum over the two backends, and statement helpers that render a
//! sea-query statement for the active dialect and bind its values.

use crate::error::{Result, StoreError};
use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_sqlx::SqlxBinder;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow, Postgres, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The minimum bundled SQLite version we accept (3.51.3 fixes WAL-reset corruption bugs).
const MIN_SQLITE: (u32, u32, u32) = (3, 51, 3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A database handle. Cheap to clone.
///
/// SQLite uses one writer connection (every write transaction starts with `BEGIN IMMEDIATE`, so
/// writers queue in the pool instead of failing with `SQLITE_BUSY`) and a pool of readers (WAL
/// lets them read while the writer writes). PostgreSQL uses one bounded pool.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
        /// Executes hot write batches on a dedicated thread (see `writer.rs`).
        batches: crate::writer::Writer,
    },
    Postgres(PgPool),
}

/// A row type that decodes from both backends.
pub trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl Db {
    /// Connects and runs migrations. `url` is `sqlite://PATH` (created if missing) or
    /// `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-16000");
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.clone())
                .await?;
            let readers = SqlitePoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.read_only(true))
                .await?;
            let batches = crate::writer::Writer::start(writer.clone())
                .map_err(|e| StoreError::Writer(format!("cannot start it: {e}")))?;
            Db::Sqlite {
                writer,
                readers,
                batches,
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        if let Db::Sqlite { writer, .. } = &db {
            check_sqlite_version(writer).await?;
        }
        db.migrate().await?;
        Ok(db)
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        let migrator = crate::migrations::migrator(self.dialect());
        match self {
            Db::Sqlite { writer, .. } => migrator.run(writer).await?,
            Db::Postgres(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// True when the database answers and every known migration is applied.
    pub async fn is_ready(&self) -> bool {
        let expected = crate::migrations::count() as i64;
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE";
        let applied: std::result::Result<i64, sqlx::Error> = match self {
            Db::Sqlite { readers, .. } => sqlx::query_scalar(sql).fetch_one(readers).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        };
        matches!(applied, Ok(n) if n >= expected)
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite {
                writer, readers, ..
            } => {
                writer.close().await;
                readers.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    pub async fn fetch_all<T: AnyRow, S: SqlxBinder>(&self, stmt: &S) -> Result<Vec<T>> {
        Ok(match self {
            Db::Sqlite { readers, .. } => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with::<Sqlite, T, _>(AssertSqlSafe(sql), values)
                    .fetch_all(readers)
                    .await?
            }
            Db::Postgres(pool) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with::<Postgres, T, _>(AssertSqlSafe(sql), values)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    pub async fn fetch_optional<T: AnyRow, S: SqlxBinder>(&self, stmt: &S) -> Result<Option<T>> {
        Ok(match self {
            Db::Sqlite { readers, .. } => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with::<Sqlite, T, _>(AssertSqlSafe(sql), values)
                    .fetch_optional(readers)
                    .await?
            }
            Db::Postgres(pool) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with::<Postgres, T, _>(AssertSqlSafe(sql), values)
                    .fetch_optional(pool)
                    .await?
            }
        })
    }

    /// Runs one write statement in its own transaction; returns the rows affected.
    pub async fn execute<S: SqlxBinder>(&self, stmt: &S) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = tx.execute(stmt).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Runs statements as one transaction and returns the rows they return (`RETURNING`).
    /// With `fenced`, the first statement is a precondition: when it returns no row nothing is
    /// written and [`StoreError::LeaseLost`] is returned. Unique violations become
    /// [`StoreError::Conflict`]. On SQLite the batch is one call, executed by the writer thread.
    pub async fn write_batch<T: AnyRow>(
        &self,
        statements: &[Statement],
        fenced: bool,
    ) -> Result<Vec<T>> {
        match self {
            Db::Sqlite { batches, .. } => {
                let (sql, values) = render_sqlite_batch(statements);
                let rows = batches
                    .run(crate::writer::WriteBatch {
                        sql,
                        values,
                        fenced,
                    })
                    .await?;
                rows.iter()
                    .map(|row| T::from_row(row).map_err(StoreError::Database))
                    .collect()
            }
            Db::Postgres(_) => {
                let mut tx = self.begin().await?;
                let rows: Vec<T> = tx.run_all(statements).await?;
                if fenced && rows.is_empty() {
                    return Err(StoreError::LeaseLost);
                }
                tx.commit().await?;
                Ok(rows)
            }
        }
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// The PostgreSQL pool, for LISTEN/NOTIFY.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match self {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite { .. } => None,
        }
    }
}

/// For batches whose statements return nothing.
#[derive(sqlx::FromRow)]
pub struct NoRow {}

/// A write statement that can be batched with others ([`Tx::run_all`]).
pub enum Statement {
    Insert(sea_query::InsertStatement),
    Update(sea_query::UpdateStatement),
    Delete(sea_query::DeleteStatement),
}

impl Statement {
    fn build<B: sea_query::QueryBuilder>(
        &self,
        builder: B,
    ) -> (String, sea_query_sqlx::SqlxValues) {
        match self {
            Statement::Insert(s) => s.build_sqlx(builder),
            Statement::Update(s) => s.build_sqlx(builder),
            Statement::Delete(s) => s.build_sqlx(builder),
        }
    }
}

/// Joins statements into one SQLite call; sqlx binds positional arguments across statements in
/// order, so the values are simply concatenated.
fn render_sqlite_batch(statements: &[Statement]) -> (String, sea_query_sqlx::SqlxValues) {
    let mut sql = String::new();
    let mut values = sea_query::Values(Vec::new());
    for statement in statements {
        let (text, mut v) = statement.build(SqliteQueryBuilder);
        sql.push_str(&text);
        sql.push_str(";\n");
        values.0.append(&mut v.0.0);
    }
    (sql, sea_query_sqlx::SqlxValues(values))
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls back.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn execute<S: SqlxBinder>(&mut self, stmt: &S) -> Result<u64> {
        Ok(match self {
            Tx::Sqlite(tx) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_with::<Sqlite, _>(AssertSqlSafe(sql), values)
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::from_write)?
                    .rows_affected()
            }
            Tx::Postgres(tx) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_with::<Postgres, _>(AssertSqlSafe(sql), values)
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::from_write)?
                    .rows_affected()
            }
        })
    }

    pub async fn fetch_all<T: AnyRow, S: SqlxBinder>(&mut self, stmt: &S) -> Result<Vec<T>> {
        Ok(match self {
            Tx::Sqlite(tx) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with::<Sqlite, T, _>(AssertSqlSafe(sql), values)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(StoreError::from_write)?
            }
            Tx::Postgres(tx) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with::<Postgres, T, _>(AssertSqlSafe(sql), values)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(StoreError::from_write)?
            }
        })
    }

    pub async fn fetch_optional<T: AnyRow, S: SqlxBinder>(
        &mut self,
        stmt: &S,
    ) -> Result<Option<T>> {
        Ok(self.fetch_all(stmt).await?.into_iter().next())
    }

    /// Runs the statements in order and returns the rows they return (`RETURNING`). On SQLite
    /// the whole batch is one call into the database thread (sqlx binds positional arguments
    /// across statements in order), which is most of the cost of a small statement there.
    pub async fn run_all<T: AnyRow>(&mut self, statements: &[Statement]) -> Result<Vec<T>> {
        match self {
            Tx::Sqlite(tx) => {
                let (sql, values) = render_sqlite_batch(statements);
                if sql.is_empty() {
                    return Ok(Vec::new());
                }
                sqlx::query_as_with::<Sqlite, T, _>(AssertSqlSafe(sql), values)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(StoreError::from_write)
            }
            Tx::Postgres(tx) => {
                let mut rows = Vec::new();
                for statement in statements {
                    let (sql, values) = statement.build(PostgresQueryBuilder);
                    rows.extend(
                        sqlx::query_as_with::<Postgres, T, _>(AssertSqlSafe(sql), values)
                            .fetch_all(&mut **tx)
                            .await
                            .map_err(StoreError::from_write)?,
                    );
                }
                Ok(rows)
            }
        }
    }

    /// Sends `NOTIFY channel` on PostgreSQL when the transaction commits; a no-op on SQLite.
    pub async fn notify(&mut self, channel: &'static str) -> Result<()> {
        if let Tx::Postgres(tx) = self {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

async fn check_sqlite_version(pool: &SqlitePool) -> Result<()> {
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(pool)
        .await?;
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    let found = (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    );
    if found < MIN_SQLITE {
        return Err(StoreError::SqliteTooOld {
            found: version,
            required: format!("{}.{}.{}", MIN_SQLITE.0, MIN_SQLITE.1, MIN_SQLITE.2),
        });
    }
    Ok(())
}

/// Removes a password from a database URL before it goes into an error message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
