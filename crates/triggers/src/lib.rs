//! Building blocks of workflow triggers, kept pure (no I/O, no storage, no clock) so they can
//! be tested with fixed times and used by any process that starts runs.
//!
//! * [`webhook`]: sign and verify [Standard Webhooks](https://www.standardwebhooks.com)
//!   (HMAC-SHA256, several secrets for rotation, timestamp tolerance). Replay protection needs
//!   storage, so verification hands back the message id for the caller to dedupe.
//! * [`schedule`]: cron expressions evaluated in an IANA time zone, the next fire times, and
//!   what to fire after downtime ([`schedule::Misfire`]). A tick time is the idempotency key
//!   that makes each tick fire once across replicas.
//!
//! Callers pass the current time in: nothing here reads a clock, which keeps replicas'
//! decisions reproducible and tests free of sleeps.

pub mod schedule;
pub mod webhook;

pub use schedule::{Due, Misfire, Schedule, ScheduleError};
pub use webhook::{Verified, WebhookError, WebhookHeaders};
