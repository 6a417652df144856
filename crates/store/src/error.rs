use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("SQLite {found} is too old: Agentry needs {required} or newer")]
    SqliteTooOld { found: String, required: String },
    /// A uniqueness constraint was violated (duplicate slug, name, key).
    #[error("already exists")]
    Conflict,
    /// A row failed to decode into a domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The SQLite writer thread could not start or has stopped.
    #[error("the SQLite writer thread: {0}")]
    Writer(String),
    /// The executing worker's lease was taken over by another worker; its write was refused.
    #[error("lease lost")]
    LeaseLost,
}

impl StoreError {
    /// Maps unique-constraint violations to [`StoreError::Conflict`].
    pub(crate) fn from_write(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict;
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
