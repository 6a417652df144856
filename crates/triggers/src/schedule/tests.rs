use super::*;
use chrono::TimeZone as _;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid test time")
}

fn sched(expr: &str, tz: &str) -> Schedule {
    Schedule::parse(expr, tz).expect("valid test schedule")
}

fn in_tz(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[test]
fn berlin_spring_forward_daily_0230_runs_once_after_gap() {
    // 2024-03-31: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
    let s = sched("30 2 * * *", "Europe/Berlin");
    let ticks = s.upcoming(utc(2024, 3, 29, 12, 0, 0), 4);
    let local: Vec<String> = ticks.iter().map(|t| in_tz(*t, s.timezone())).collect();
    assert_eq!(
        local,
        [
            "2024-03-30 02:30:00 CET",
            "2024-03-31 03:00:00 CEST",
            "2024-04-01 02:30:00 CEST",
            "2024-04-02 02:30:00 CEST",
        ]
    );
    assert_eq!(ticks[1], utc(2024, 3, 31, 1, 0, 0));
}

#[test]
fn berlin_fall_back_daily_0230_runs_once_at_first_pass() {
    // 2024-10-27: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice
    // (00:30 UTC and 01:30 UTC). A daily job runs once, at the first.
    let s = sched("30 2 * * *", "Europe/Berlin");
    let ticks = s.upcoming(utc(2024, 10, 26, 12, 0, 0), 3);
    assert_eq!(
        ticks,
        [
            utc(2024, 10, 27, 0, 30, 0),
            utc(2024, 10, 28, 1, 30, 0),
            utc(2024, 10, 29, 1, 30, 0),
        ]
    );
    // Asking from between the two passes does not produce the second one.
    assert_eq!(
        s.next_after(utc(2024, 10, 27, 1, 0, 0)),
        Some(utc(2024, 10, 28, 1, 30, 0))
    );
}

#[test]
fn interval_jobs_keep_real_time_spacing_across_dst() {
    let s = sched("*/15 * * * *", "Europe/Berlin");
    // Spring: 01:00..02:00 UTC is 03:00..04:00 CEST; no wall-clock 02:xx ticks.
    let spring = s.upcoming(utc(2024, 3, 31, 0, 0, 0), 8);
    let expected: Vec<_> = (1..=8)
        .map(|i| utc(2024, 3, 31, 0, 0, 0) + TimeDelta::minutes(15 * i))
        .collect();
    assert_eq!(spring, expected);
    // Fall: both passes through 02:xx fire.
    let fall = s.upcoming(utc(2024, 10, 27, 0, 0, 0), 8);
    let expected: Vec<_> = (1..=8)
        .map(|i| utc(2024, 10, 27, 0, 0, 0) + TimeDelta::minutes(15 * i))
        .collect();
    assert_eq!(fall, expected);
}

#[test]
fn month_ends() {
    let s = sched("0 9 31 * *", "UTC");
    let ticks = s.upcoming(utc(2024, 1, 31, 10, 0, 0), 3);
    assert_eq!(
        ticks,
        [
            utc(2024, 3, 31, 9, 0, 0),
            utc(2024, 5, 31, 9, 0, 0),
            utc(2024, 7, 31, 9, 0, 0),
        ]
    );
    let last = sched("0 9 L * *", "UTC");
    let ticks = last.upcoming(utc(2024, 1, 31, 10, 0, 0), 3);
    assert_eq!(
        ticks,
        [
            utc(2024, 2, 29, 9, 0, 0),
            utc(2024, 3, 31, 9, 0, 0),
            utc(2024, 4, 30, 9, 0, 0),
        ]
    );
    // Leap day only.
    let leap = sched("0 0 29 2 *", "UTC");
    assert_eq!(
        leap.next_after(utc(2024, 3, 1, 0, 0, 0)),
        Some(utc(2028, 2, 29, 0, 0, 0))
    );
}

#[test]
fn time_zone_shifts_ticks() {
    let s = sched("0 9 * * MON-FRI", "America/New_York");
    // Friday 2024-07-05 10:00 UTC is 06:00 EDT; next is 09:00 EDT = 13:00 UTC.
    assert_eq!(
        s.next_after(utc(2024, 7, 5, 10, 0, 0)),
        Some(utc(2024, 7, 5, 13, 0, 0))
    );
    // Then skips the weekend.
    assert_eq!(
        s.next_after(utc(2024, 7, 5, 13, 0, 0)),
        Some(utc(2024, 7, 8, 13, 0, 0))
    );
}

#[test]
fn every_minute_and_seconds_fields() {
    let s = sched("* * * * *", "UTC");
    let t = utc(2024, 5, 1, 10, 0, 0);
    assert_eq!(s.next_after(t), Some(utc(2024, 5, 1, 10, 1, 0)));
    // Fractions of a second do not produce a tick in the past.
    let frac = t + TimeDelta::milliseconds(500);
    assert_eq!(s.next_after(frac), Some(utc(2024, 5, 1, 10, 1, 0)));
    assert_eq!(s.upcoming(t, 3).len(), 3);
    assert_eq!(s.upcoming(t, 0), Vec::<DateTime<Utc>>::new());

    let every10s = sched("*/10 * * * * *", "UTC");
    assert_eq!(
        every10s.upcoming(t, 2),
        [utc(2024, 5, 1, 10, 0, 10), utc(2024, 5, 1, 10, 0, 20)]
    );
    let nick = sched("@hourly", "UTC");
    assert_eq!(nick.next_after(t), Some(utc(2024, 5, 1, 11, 0, 0)));
}

#[test]
fn due_every_minute() {
    let s = sched("* * * * *", "UTC");
    let last = utc(2024, 5, 1, 9, 59, 0);
    // Exactly on the tick.
    let d = s.due(Some(last), utc(2024, 5, 1, 10, 0, 0), Misfire::Skip);
    assert_eq!(d.fire, [utc(2024, 5, 1, 10, 0, 0)]);
    assert_eq!(d.next, Some(utc(2024, 5, 1, 10, 1, 0)));
    // A poll 30 s late still fires the tick.
    let d = s.due(Some(last), utc(2024, 5, 1, 10, 0, 30), Misfire::Skip);
    assert_eq!(d.fire, [utc(2024, 5, 1, 10, 0, 0)]);
    // After firing, storing the tick makes the same pass return nothing.
    let d = s.due(
        Some(utc(2024, 5, 1, 10, 0, 0)),
        utc(2024, 5, 1, 10, 0, 30),
        Misfire::RunOnce,
    );
    assert!(d.fire.is_empty());
    assert_eq!(d.next, Some(utc(2024, 5, 1, 10, 1, 0)));
}

#[test]
fn skip_vs_run_once_after_three_hour_outage() {
    // Daily at 10:00 Berlin (08:00 UTC in summer); last fired yesterday; the scheduler was
    // down 07:00..10:00 UTC.
    let s = sched("0 10 * * *", "Europe/Berlin");
    let last = Some(utc(2024, 6, 9, 8, 0, 0));
    let now = utc(2024, 6, 10, 10, 0, 0);
    let skip = s.due(last, now, Misfire::Skip);
    assert!(skip.fire.is_empty());
    assert_eq!(skip.next, Some(utc(2024, 6, 11, 8, 0, 0)));
    let once = s.due(last, now, Misfire::RunOnce);
    assert_eq!(once.fire, [utc(2024, 6, 10, 8, 0, 0)]);
    assert_eq!(once.next, skip.next);

    // Hourly, down 09:00..12:00:30: three ticks missed (10, 11, 12). Skip fires only the
    // one still within grace; RunOnce fires exactly one, the latest.
    let hourly = sched("0 * * * *", "UTC");
    let last = Some(utc(2024, 6, 10, 9, 0, 0));
    let now = utc(2024, 6, 10, 12, 0, 30);
    assert_eq!(
        hourly.due(last, now, Misfire::Skip).fire,
        [utc(2024, 6, 10, 12, 0, 0)]
    );
    assert_eq!(
        hourly.due(last, now, Misfire::RunOnce).fire,
        [utc(2024, 6, 10, 12, 0, 0)]
    );
    // Back at 12:05: Skip drops everything, RunOnce still fires 12:00 once.
    let now = utc(2024, 6, 10, 12, 5, 0);
    assert!(hourly.due(last, now, Misfire::Skip).fire.is_empty());
    let once = hourly.due(last, now, Misfire::RunOnce);
    assert_eq!(once.fire, [utc(2024, 6, 10, 12, 0, 0)]);
    assert_eq!(once.next, Some(utc(2024, 6, 10, 13, 0, 0)));
    // Idempotent: a second replica evaluating the same state gets the same key, and after
    // storing it nothing is due.
    assert_eq!(hourly.due(last, now, Misfire::RunOnce), once);
    assert!(
        hourly
            .due(Some(once.fire[0]), now, Misfire::RunOnce)
            .fire
            .is_empty()
    );
}

#[test]
fn skip_grace_boundary() {
    let s = sched("0 * * * *", "UTC");
    let last = Some(utc(2024, 6, 10, 11, 0, 0));
    let tick = utc(2024, 6, 10, 12, 0, 0);
    assert_eq!(s.due(last, tick + SKIP_GRACE, Misfire::Skip).fire, [tick]);
    assert!(
        s.due(
            last,
            tick + SKIP_GRACE + TimeDelta::seconds(1),
            Misfire::Skip
        )
        .fire
        .is_empty()
    );
}

#[test]
fn never_fired_behaves_like_skip() {
    let s = sched("0 * * * *", "UTC");
    // Created long after the last tick: nothing old fires, even with RunOnce.
    let d = s.due(None, utc(2024, 6, 10, 12, 30, 0), Misfire::RunOnce);
    assert!(d.fire.is_empty());
    assert_eq!(d.next, Some(utc(2024, 6, 10, 13, 0, 0)));
    let d = s.due(None, utc(2024, 6, 10, 12, 0, 10), Misfire::RunOnce);
    assert_eq!(d.fire, [utc(2024, 6, 10, 12, 0, 0)]);
    // Creation time as last_fired: a tick before creation never fires.
    let created = utc(2024, 6, 10, 12, 0, 5);
    let d = s.due(Some(created), utc(2024, 6, 10, 12, 0, 10), Misfire::RunOnce);
    assert!(d.fire.is_empty());
}

#[test]
fn run_once_after_long_outage_is_cheap() {
    // A year of missed every-second ticks: found by backward search, not by walking them.
    let s = sched("* * * * * *", "Europe/Berlin");
    let last = Some(utc(2023, 6, 10, 12, 0, 0));
    let now = utc(2024, 6, 10, 12, 0, 0) + TimeDelta::milliseconds(700);
    let d = s.due(last, now, Misfire::RunOnce);
    assert_eq!(d.fire, [utc(2024, 6, 10, 12, 0, 0)]);
    assert_eq!(d.next, Some(utc(2024, 6, 10, 12, 0, 1)));
}

#[test]
fn latest_at_or_before_agrees_with_forward_ticks_around_dst() {
    // The idempotency key must not depend on search direction: check the backward-based
    // lookup against ticks enumerated forwards, across both Berlin transitions.
    for expr in ["30 2 * * *", "*/15 * * * *", "0 * * * *", "15 1-3 * * *"] {
        let s = sched(expr, "Europe/Berlin");
        for (start, end) in [
            (utc(2024, 3, 30, 20, 0, 0), utc(2024, 3, 31, 4, 0, 0)),
            (utc(2024, 10, 26, 20, 0, 0), utc(2024, 10, 27, 4, 0, 0)),
        ] {
            let ticks = s.upcoming(start, 100);
            let mut probe = start + TimeDelta::minutes(1);
            while probe < end {
                let expected = ticks.iter().rev().find(|t| **t <= probe).copied();
                if expected.is_some() {
                    assert_eq!(s.latest_at_or_before(probe), expected, "{expr} at {probe}");
                }
                probe += TimeDelta::minutes(7);
            }
        }
    }
}

#[test]
fn invalid_expressions_are_named() {
    assert_eq!(
        Schedule::parse("", "UTC").err(),
        Some(ScheduleError::EmptyExpression)
    );
    assert_eq!(
        Schedule::parse("* * * *", "UTC").err(),
        Some(ScheduleError::WrongFieldCount {
            expr: "* * * *".into(),
            found: 4
        })
    );
    assert!(matches!(
        Schedule::parse("0 0 0 * * * 2030", "UTC"),
        Err(ScheduleError::WrongFieldCount { found: 7, .. })
    ));
    for bad in [
        "61 * * * *",
        "* 24 * * *",
        "* * 32 * *",
        "* * * 13 *",
        "x * * * *",
        "*/0 * * * *",
    ] {
        let err = Schedule::parse(bad, "UTC").err();
        assert!(
            matches!(err, Some(ScheduleError::InvalidExpression { ref expr, .. }) if expr == bad),
            "{bad}: {err:?}"
        );
        // The message names the expression.
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains(bad), "{msg}");
    }
    assert_eq!(
        Schedule::parse("0 0 30 2 *", "UTC").err(),
        Some(ScheduleError::NeverFires {
            expr: "0 0 30 2 *".into()
        })
    );
}

#[test]
fn invalid_time_zones_are_named() {
    for bad in ["", "Mars/Olympus", "europe/berlin", "CET+1"] {
        assert_eq!(
            Schedule::parse("* * * * *", bad).err(),
            Some(ScheduleError::UnknownTimeZone(bad.into())),
            "{bad}"
        );
    }
    let s = sched(" 0 9 * * * ", "Asia/Kolkata");
    assert_eq!(s.expression(), "0 9 * * *");
    assert_eq!(s.timezone(), chrono_tz::Asia::Kolkata);
    assert!(!s.describe().is_empty());
}
