//! Schedule arithmetic: intervals with per-object jitter, cron commit windows in a time zone,
//! and debounce; every function takes the current time as a parameter.
//!
//! An ImageUpdateAutomation may carry, beyond Flux, annotations under tagline's own prefix:
//!
//! - `tagline.dev/schedule: "* 9-17 * * 1-5"`: a five-field cron expression; the automation
//!   commits only in the minutes it matches;
//! - `tagline.dev/schedule-timezone: Europe/Berlin`: the IANA zone it is read in (UTC if absent);
//! - `tagline.dev/debounce: 2m`: a quiet window that gathers a burst of policy changes into
//!   one commit (Go duration syntax, like Flux's `interval`).

mod debounce;
mod interval;
mod window;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::TEXT_FILES;

pub use debounce::{Debounce, MAX_WINDOWS};
pub use interval::Interval;
pub use window::Window;

/// The annotation prefix tagline owns.
pub const PREFIX: &str = "tagline.dev/";
/// Annotation: cron expression restricting when an automation may commit.
pub const SCHEDULE: &str = "tagline.dev/schedule";
/// Annotation: the time zone of `SCHEDULE`.
pub const SCHEDULE_TIMEZONE: &str = "tagline.dev/schedule-timezone";
/// Annotation: debounce window.
pub const DEBOUNCE: &str = "tagline.dev/debounce";

/// What an ImageUpdateAutomation's annotations ask of its timing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AutomationSchedule {
    /// When it may commit (`None`: any time).
    pub window: Option<Window>,
    /// The quiet window gathering a burst of changes (`None`: commit at once).
    pub debounce: Option<Duration>,
}

impl AutomationSchedule {
    /// Reads tagline's annotations; others are ignored. An unknown annotation under
    /// tagline's prefix is an error (most likely a typo that would silently do nothing), as
    /// is a time zone without a schedule.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<AutomationSchedule, String> {
        for key in annotations.keys() {
            if key.starts_with(PREFIX)
                && ![SCHEDULE, SCHEDULE_TIMEZONE, DEBOUNCE, TEXT_FILES].contains(&key.as_str())
            {
                return Err(format!(
                    "unknown annotation {key:?} (known: {SCHEDULE}, {SCHEDULE_TIMEZONE}, {DEBOUNCE}, {TEXT_FILES})"
                ));
            }
        }
        let tz = annotations.get(SCHEDULE_TIMEZONE).map(String::as_str);
        let window = match annotations.get(SCHEDULE) {
            Some(expr) => Some(Window::parse(expr, tz).map_err(|e| format!("{SCHEDULE}: {e}"))?),
            None if tz.is_some() => {
                return Err(format!("{SCHEDULE_TIMEZONE} is set but {SCHEDULE} is not"))
            }
            None => None,
        };
        let debounce = match annotations.get(DEBOUNCE) {
            Some(d) => {
                Some(crate::api::parse_duration(d.trim()).map_err(|e| format!("{DEBOUNCE}: {e}"))?)
            }
            None => None,
        };
        Ok(AutomationSchedule { window, debounce })
    }

    /// The first instant at or after `ready` at which a commit that became ready at `ready`
    /// may run. `None` when the window never opens again.
    pub fn commit_at(&self, ready: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.window {
            Some(w) => w.next_allowed(ready),
            None => Some(ready),
        }
    }

    /// Whether a commit is allowed at `now`.
    pub fn allows(&self, now: DateTime<Utc>) -> bool {
        self.window.as_ref().is_none_or(|w| w.allows(now))
    }

    /// A fresh debounce state machine for this automation (a zero window when none is set).
    pub fn debouncer(&self) -> Debounce {
        Debounce::new(self.debounce.unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn no_annotations_means_any_time_at_once() {
        let s = AutomationSchedule::from_annotations(&ann(&[("other.io/x", "y")])).unwrap();
        assert_eq!(s, AutomationSchedule::default());
        assert!(s.allows(at("2026-01-01T03:00:00Z")));
        assert_eq!(
            s.commit_at(at("2026-01-01T03:00:00Z")),
            Some(at("2026-01-01T03:00:00Z"))
        );
    }

    #[test]
    fn all_three_annotations() {
        let s = AutomationSchedule::from_annotations(&ann(&[
            (SCHEDULE, "* 9-17 * * 1-5"),
            (SCHEDULE_TIMEZONE, "Europe/Berlin"),
            (DEBOUNCE, "2m"),
        ]))
        .unwrap();
        assert_eq!(s.debounce, Some(Duration::from_secs(120)));
        // Ready on Friday 18:30 Berlin: commits Monday 09:00 Berlin.
        assert_eq!(
            s.commit_at(at("2026-01-16T17:30:00Z")),
            Some(at("2026-01-19T08:00:00Z"))
        );
        let mut d = s.debouncer();
        d.change(at("2026-01-19T08:00:00Z"));
        assert_eq!(d.fire_at(), Some(at("2026-01-19T08:02:00Z")));
    }

    #[test]
    fn mistakes_are_reported_with_the_annotation() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(SCHEDULE, "nope")], SCHEDULE),
            (
                &[(SCHEDULE, "* * * * *"), (SCHEDULE_TIMEZONE, "Nowhere/City")],
                "Nowhere/City",
            ),
            (&[(SCHEDULE_TIMEZONE, "UTC")], "is not"),
            (&[(DEBOUNCE, "two minutes")], DEBOUNCE),
            (
                &[("tagline.dev/schedul", "* * * * *")],
                "tagline.dev/schedul",
            ),
        ];
        for (pairs, want) in cases {
            let e = AutomationSchedule::from_annotations(&ann(pairs)).unwrap_err();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
    }
}
