use thiserror::Error;

/// Errors of building a limiter. Checking never fails: see `Limiter::check`.
#[derive(Debug, Error)]
pub enum RateLimitError {
    /// The Redis URL does not parse (the message never contains the password).
    #[error("invalid redis url: {0}")]
    InvalidRedisUrl(String),
    /// `Limiter::redis` spawns the connection's background task, so it needs a Tokio runtime.
    #[error("Limiter::redis must be called within a Tokio runtime")]
    NoRuntime,
    #[error("redis client setup failed: {0}")]
    RedisSetup(String),
}
