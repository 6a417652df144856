//! Cron schedules evaluated in an IANA time zone, and what to fire after downtime.
//!
//! # Expressions
//!
//! Parsing is done by [`croner`]: five fields (`minute hour day-of-month month day-of-week`) or
//! six with a leading seconds field, names such as `MON` and `JAN`, ranges, lists, steps, `L`
//! (last day of month / last weekday), `W` and `#`, and the nicknames `@hourly`, `@daily`,
//! `@weekly`, `@monthly`, `@yearly`. When both day fields are restricted, a day matching
//! **either** fires (classic Vixie cron behaviour). A year field is not accepted.
//!
//! # Time zones and daylight saving
//!
//! Expressions are evaluated on the wall clock of the schedule's time zone, and every result
//! is an instant in UTC. Around DST transitions (croner's rules, pinned by tests here):
//!
//! * **Spring forward** (the clock skips an hour): a fixed-time job whose wall-clock time does
//!   not exist that day (`30 2 * * *` in Europe/Berlin on the last Sunday of March) runs at the
//!   first instant after the gap (03:00 local), so a daily job still runs once that day.
//!   Interval jobs (`*/15 * * * *`) simply have no ticks in the skipped hour.
//! * **Fall back** (an hour repeats): a fixed-time job runs once, at the first of the two
//!   instants; an interval job runs on both passes, so it keeps its real-time spacing.
//!
//! # Ticks, idempotency and misfires
//!
//! A *tick* is an instant at which the schedule fires, always a whole second. Ticks are a pure
//! function of the expression and time zone, so every replica computes the same ones: the tick
//! time is the **idempotency key** for a firing. A caller should record `(schedule id, tick)`
//! under a unique constraint (or advance `last_fired` with a compare-and-set) in the same
//! transaction that enqueues the run, so a tick fires once even when several replicas evaluate
//! the schedule at the same moment, and then store the tick (not the wall clock) as
//! `last_fired`.
//!
//! [`Schedule::due`] decides what to fire after a scheduler pass, including after downtime.
//! See [`Misfire`] for the two policies.
//!
//! ```
//! use agentry_triggers::schedule::{Misfire, Schedule};
//! use chrono::{TimeZone as _, Utc};
//!
//! # fn main() -> Result<(), agentry_triggers::ScheduleError> {
//! let schedule = Schedule::parse("30 2 * * *", "Europe/Berlin")?;
//! let last_fired = Utc.with_ymd_and_hms(2024, 6, 9, 0, 30, 0).single();
//! let now = Utc.with_ymd_and_hms(2024, 6, 10, 0, 30, 20).single().expect("valid time");
//!
//! let due = schedule.due(last_fired, now, Misfire::Skip);
//! for tick in &due.fire {
//!     // In one transaction: insert (schedule id, tick) uniquely, enqueue the run, and store
//!     // `tick` as the new `last_fired`. A replica that loses the insert race does nothing.
//!     assert_eq!(tick.to_rfc3339(), "2024-06-10T00:30:00+00:00");
//! }
//! // Sleep until `due.next`, then evaluate again.
//! assert!(due.next.is_some());
//! # Ok(())
//! # }
//! ```

use chrono::{DateTime, TimeDelta, Timelike as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// How late a tick may still fire under [`Misfire::Skip`].
///
/// A scheduler that polls, say, every few seconds, or a replica that was briefly busy, sees a
/// tick slightly after its time; that is normal operation, not a misfire, so it must still
/// fire. Sixty seconds covers polling and ordinary hiccups while keeping the promise that a
/// skipped job does not suddenly run long after its time.
pub const SKIP_GRACE: TimeDelta = TimeDelta::seconds(60);

/// The forward search is the definition of the ticks; when a backward search result needs to
/// be brought in line with it, this bounds the forward walk so a pathological schedule cannot
/// spin.
const MAX_CANONICALISE_STEPS: usize = 10_000;

/// Why a schedule could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is empty.
    #[error("cron expression is empty")]
    EmptyExpression,
    /// The expression has the wrong number of fields.
    #[error(
        "cron expression {expr:?} has {found} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (with leading seconds)"
    )]
    WrongFieldCount {
        /// The expression as given.
        expr: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// The expression is not valid cron; `reason` names the problem.
    #[error("invalid cron expression {expr:?}: {reason}")]
    InvalidExpression {
        /// The expression as given.
        expr: String,
        /// What the parser objected to.
        reason: String,
    },
    /// The expression is valid but matches no date (such as `0 0 30 2 *`).
    #[error("cron expression {expr:?} never fires")]
    NeverFires {
        /// The expression as given.
        expr: String,
    },
    /// The time zone is not an IANA name known to chrono-tz.
    #[error("unknown time zone {0:?}; expected an IANA name such as \"Europe/Berlin\" or \"UTC\"")]
    UnknownTimeZone(String),
}

/// What to do with ticks that passed while nobody was firing them (downtime, a paused
/// scheduler, a long GC pause).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Misfire {
    /// Drop missed ticks; only a tick at most [`SKIP_GRACE`] old fires. For jobs where a late
    /// run is worse than none ("send the 09:00 digest").
    Skip,
    /// However many ticks were missed, fire once, for the latest missed tick. For jobs that
    /// must catch up but need not repeat ("sync every hour"). The fired tick is the latest,
    /// so the key is stable: a second replica evaluating the same state gets the same tick.
    RunOnce,
}

/// The outcome of [`Schedule::due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Tick times to fire now, oldest first. Currently at most one entry under either policy;
    /// it is a list so a future catch-up-all policy can fire several without an API change.
    /// Use each tick as the idempotency key and store it as the new `last_fired`.
    pub fire: Vec<DateTime<Utc>>,
    /// The next tick strictly after `now`: when to evaluate the schedule again (and what the
    /// UI shows as the next run). `None` when the schedule has no further ticks.
    pub next: Option<DateTime<Utc>>,
}

/// A parsed cron expression bound to a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    tz: Tz,
    cron: Cron,
}

impl Schedule {
    /// Parses a 5- or 6-field cron expression (6 = leading seconds) to be evaluated in the IANA
    /// time zone `timezone` (for example `"Europe/Berlin"` or `"UTC"`; names are case-sensitive).
    ///
    /// # Errors
    /// [`ScheduleError`] naming the expression or zone and what is wrong with it, including an
    /// expression that can never fire.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz: Tz = timezone
            .trim()
            .parse()
            .map_err(|_| ScheduleError::UnknownTimeZone(timezone.to_owned()))?;

        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::EmptyExpression);
        }
        // Count fields ourselves: croner's message for a wrong count mentions its optional year
        // field, which we do not offer, and would confuse users.
        let found = trimmed.split_whitespace().count();
        let is_nickname = trimmed.starts_with('@');
        if !is_nickname && !(5..=6).contains(&found) {
            return Err(ScheduleError::WrongFieldCount {
                expr: expr.to_owned(),
                found,
            });
        }

        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| ScheduleError::InvalidExpression {
                expr: expr.to_owned(),
                reason: e.to_string(),
            })?;

        let schedule = Self {
            expr: trimmed.to_owned(),
            tz,
            cron,
        };
        // Without a year field a pattern repeats with the 400-year Gregorian cycle, so one that
        // finds no tick from a fixed point onwards never fires at all. Rejecting it here beats
        // a trigger that silently never runs.
        let reference = DateTime::<Utc>::UNIX_EPOCH;
        if schedule.next_after(reference).is_none() {
            return Err(ScheduleError::NeverFires {
                expr: expr.to_owned(),
            });
        }
        Ok(schedule)
    }

    /// The expression, trimmed.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The time zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// An English description of the expression (such as "At 02:30"), for the UI. The time
    /// zone is not included; show [`Schedule::timezone`] next to it.
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The first tick strictly after `after`, or `None` if there is none (or the search gives
    /// up, which croner does past the year 5000).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks are whole seconds, so "first tick > after" equals "first tick > floor(after)";
        // flooring keeps croner's second-granular cursor from seeing a fraction.
        let start = floor_second(after).with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `n` ticks strictly after `after`, in order (fewer if the schedule ends). This is
    /// what a UI shows as "next runs".
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while out.len() < n {
            match self.next_after(cursor) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }

    /// The latest tick at or before `at`.
    ///
    /// Found with croner's backward search so it is cheap however long ago `at` is, then
    /// confirmed with the forward search, which defines the ticks: an idempotency key must not
    /// depend on which direction a replica happened to search from.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = floor_second(at);
        let mut probe = at;
        // Each retry steps back past a candidate the forward search does not produce (a
        // possible disagreement only around DST folds); a handful of retries is plenty.
        for _ in 0..4 {
            let candidate = self
                .cron
                .find_previous_occurrence(&probe.with_timezone(&self.tz), true)
                .ok()?
                .with_timezone(&Utc);
            let before = candidate - TimeDelta::seconds(1);
            let mut tick = self.next_after(before)?;
            if tick > at {
                probe = before;
                continue;
            }
            for _ in 0..MAX_CANONICALISE_STEPS {
                match self.next_after(tick) {
                    Some(n) if n <= at => tick = n,
                    _ => break,
                }
            }
            return Some(tick);
        }
        None
    }

    /// Decides which tick, if any, to fire at `now`.
    ///
    /// `last_fired` is the last tick this schedule fired (the value stored from a previous
    /// [`Due::fire`]), or the schedule's creation time if it never fired. Only ticks strictly
    /// after it and at or before `now` count as due.
    ///
    /// * [`Misfire::Skip`]: the latest due tick fires if it is at most [`SKIP_GRACE`] old;
    ///   older missed ticks are dropped.
    /// * [`Misfire::RunOnce`]: the latest due tick fires, however old; older ones are folded
    ///   into it.
    ///
    /// With `last_fired == None` nothing bounds how far back to look, so both policies behave
    /// like `Skip`: a new schedule must not fire a tick from before it existed.
    ///
    /// Pure and deterministic: replicas evaluating the same state get the same answer, and
    /// storing the fired tick as the new `last_fired` makes the next call return nothing for it.
    pub fn due(
        &self,
        last_fired: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        policy: Misfire,
    ) -> Due {
        let next = self.next_after(now);
        let latest = self
            .latest_at_or_before(now)
            .filter(|t| last_fired.is_none_or(|last| *t > last));
        let fire = match latest {
            Some(tick) if policy == Misfire::RunOnce && last_fired.is_some() => vec![tick],
            Some(tick) if now - tick <= SKIP_GRACE => vec![tick],
            _ => Vec::new(),
        };
        Due { fire, next }
    }
}

fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    // `with_nanosecond(0)` only fails for out-of-range values, and 0 is in range.
    t.with_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests;
