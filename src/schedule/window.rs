//! Commit windows: a cron expression in a time zone that says when an automation may commit.

use std::str::FromStr;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// The minutes in which an automation may commit: every minute the five-field cron
/// expression (minute hour day-of-month month day-of-week, 0 or 7 = Sunday) matches, read
/// in `tz`. `* 9-17 * * 1-5` allows any minute from 09:00 to 17:59 on weekdays;
/// `0 9-17 * * 1-5` allows only the first minute of each of those hours.
#[derive(Debug, Clone)]
pub struct Window {
    expression: String,
    cron: Cron,
    tz: Tz,
}

impl PartialEq for Window {
    fn eq(&self, other: &Window) -> bool {
        self.expression == other.expression && self.tz == other.tz
    }
}

impl Window {
    /// Parses a five-field cron expression and an IANA time zone name (`UTC` when `None`).
    pub fn parse(expression: &str, tz: Option<&str>) -> Result<Window, String> {
        let tz = match tz.map(str::trim) {
            None | Some("") => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| format!("unknown time zone {name:?}"))?,
        };
        let expression = expression.trim().to_string();
        if expression.split_whitespace().count() != 5 {
            return Err(format!(
                "cron schedule {expression:?}: want five fields (minute hour day-of-month month day-of-week)"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(&expression)
            .map_err(|e| format!("cron schedule {expression:?}: {e}"))?;
        Ok(Window {
            expression,
            cron,
            tz,
        })
    }

    /// The cron expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone it is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Whether a commit is allowed at `now`.
    pub fn allows(&self, now: DateTime<Utc>) -> bool {
        // The expression has no seconds field: match the minute `now` falls in.
        let local = now
            .duration_trunc(TimeDelta::minutes(1))
            .unwrap_or(now)
            .with_timezone(&self.tz);
        self.cron.is_time_matching(&local).unwrap_or(false)
    }

    /// The first instant at or after `now` at which a commit is allowed: `now` itself when it
    /// is inside the window, else the start of the next matching minute. `None` when the
    /// expression never matches again (e.g. `0 0 30 2 *`).
    pub fn next_allowed(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.allows(now) {
            return Some(now);
        }
        let minute = now
            .duration_trunc(TimeDelta::minutes(1))
            .unwrap_or(now)
            .with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&minute, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn office_hours_in_berlin() {
        let w = Window::parse("* 9-17 * * 1-5", Some("Europe/Berlin")).unwrap();
        // Wednesday 2026-01-14, CET = UTC+1.
        assert!(w.allows(at("2026-01-14T08:00:00Z"))); // 09:00 local
        assert!(w.allows(at("2026-01-14T16:59:59Z"))); // 17:59:59 local
        assert!(!w.allows(at("2026-01-14T17:00:00Z"))); // 18:00 local
        assert!(!w.allows(at("2026-01-14T07:59:59Z"))); // 08:59:59 local
        let cases = [
            // inside: now
            ("2026-01-14T10:30:15Z", "2026-01-14T10:30:15Z"),
            // evening: next morning 09:00 local
            ("2026-01-14T20:00:00Z", "2026-01-15T08:00:00Z"),
            // Friday evening: Monday 09:00 local
            ("2026-01-16T17:00:00Z", "2026-01-19T08:00:00Z"),
            // Saturday noon
            ("2026-01-17T11:00:00Z", "2026-01-19T08:00:00Z"),
            // one second before it opens
            ("2026-01-14T07:59:59Z", "2026-01-14T08:00:00Z"),
        ];
        for (now, want) in cases {
            assert_eq!(w.next_allowed(at(now)), Some(at(want)), "from {now}");
        }
    }

    #[test]
    fn day_of_week_numbers_are_vixie_cron_ones() {
        // 0 and 7 are Sunday; 1 is Monday.
        let sunday = at("2026-01-18T12:00:00Z");
        let monday = at("2026-01-19T12:00:00Z");
        for expr in ["* * * * 0", "* * * * 7", "* * * * SUN"] {
            let w = Window::parse(expr, None).unwrap();
            assert!(w.allows(sunday), "{expr}");
            assert!(!w.allows(monday), "{expr}");
        }
        assert!(Window::parse("* * * * 1", None).unwrap().allows(monday));
    }

    #[test]
    fn the_first_minute_of_each_hour_only() {
        let w = Window::parse("0 9-17 * * 1-5", Some("UTC")).unwrap();
        assert!(w.allows(at("2026-01-14T09:00:59Z")));
        assert!(!w.allows(at("2026-01-14T09:01:00Z")));
        assert_eq!(
            w.next_allowed(at("2026-01-14T09:01:00Z")),
            Some(at("2026-01-14T10:00:00Z"))
        );
        assert_eq!(
            w.next_allowed(at("2026-01-14T17:00:30Z")),
            Some(at("2026-01-14T17:00:30Z"))
        );
        assert_eq!(
            w.next_allowed(at("2026-01-14T17:01:00Z")),
            Some(at("2026-01-15T09:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        // Europe/Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let w = Window::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let next = w.next_allowed(at("2026-03-29T00:00:00Z")).unwrap();
        // 02:30 does not exist that day; the next real 02:30 is on the 30th (CEST, UTC+2).
        assert!(next >= at("2026-03-29T01:00:00Z"), "{next}");
        assert!(!w.allows(at("2026-03-29T01:30:00Z")) || next == at("2026-03-29T01:30:00Z"));
        let after = w.next_allowed(next + TimeDelta::minutes(1)).unwrap();
        assert_eq!(after, at("2026-03-30T00:30:00Z"));
        // An hourly window keeps working across the jump: 01:59 CET -> 03:00 CEST.
        let w = Window::parse("0 * * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            w.next_allowed(at("2026-03-29T00:59:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            w.next_allowed(at("2026-03-29T01:01:00Z")),
            Some(at("2026-03-29T02:00:00Z"))
        );
    }

    #[test]
    fn fall_back_windows_follow_local_time() {
        // Europe/Berlin: 2026-10-25 03:00 CEST falls back to 02:00 CET (01:00 UTC).
        let w = Window::parse("* 9-17 * * *", Some("Europe/Berlin")).unwrap();
        // Saturday 24th: CEST, opens 07:00 UTC; Sunday 25th: CET, opens 08:00 UTC.
        assert_eq!(
            w.next_allowed(at("2026-10-24T06:00:00Z")),
            Some(at("2026-10-24T07:00:00Z"))
        );
        assert_eq!(
            w.next_allowed(at("2026-10-24T20:00:00Z")),
            Some(at("2026-10-25T08:00:00Z"))
        );
        assert!(w.allows(at("2026-10-25T16:59:00Z")));
        assert!(!w.allows(at("2026-10-25T17:00:00Z")));
        // New York changes on another day: 2026-11-01.
        let ny = Window::parse("* 9 * * *", Some("America/New_York")).unwrap();
        assert_eq!(
            ny.next_allowed(at("2026-10-31T20:00:00Z")),
            Some(at("2026-11-01T14:00:00Z"))
        );
        assert_eq!(
            ny.next_allowed(at("2026-10-30T20:00:00Z")),
            Some(at("2026-10-31T13:00:00Z"))
        );
    }

    #[test]
    fn bad_input_is_an_error_that_names_it() {
        let e = Window::parse("* * * *", None).unwrap_err();
        assert!(e.contains("five fields"), "{e}");
        let e = Window::parse("0 0 * * * *", None).unwrap_err();
        assert!(e.contains("five fields"), "{e}");
        let e = Window::parse("61 * * * *", None).unwrap_err();
        assert!(e.contains("61 * * * *"), "{e}");
        let e = Window::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(e.contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn a_date_that_never_comes_has_no_next_time() {
        let w = Window::parse("0 0 30 2 *", None).unwrap();
        assert_eq!(w.next_allowed(at("2026-01-01T00:00:00Z")), None);
    }
}
