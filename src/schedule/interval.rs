//! Intervals with a deterministic per-object phase, so objects sharing an interval do not fire
//! together.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// A repeating interval whose due times are shifted by a fixed, per-object offset.
///
/// Due times are `epoch + k * period + offset` for whole `k`, where the offset is derived from
/// the object's identity (a stable hash), so two processes, or one process after a restart,
/// agree on when an object is due, and objects with the same period spread over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    period_ms: i64,
    offset_ms: i64,
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike `DefaultHasher`).
fn stable_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Interval {
    /// An interval of `period` for the object named `key` (e.g. `ImageRepository/ns/name`).
    /// `jitter` is the fraction of the period (clamped to 0..=1) over which objects spread;
    /// 0 means every object is due at the same instants.
    pub fn new(period: Duration, key: &str, jitter: f64) -> Interval {
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let spread = ((period_ms as f64) * jitter) as i64;
        let offset_ms = if spread <= 0 {
            0
        } else {
            (stable_hash(key) % spread as u64) as i64
        };
        Interval {
            period_ms,
            offset_ms,
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms as u64)
    }

    /// This object's offset within the period.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms as u64)
    }

    /// The first due time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let t = now.timestamp_millis() - self.offset_ms;
        let k = t.div_euclid(self.period_ms) + 1;
        let due = k * self.period_ms + self.offset_ms;
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::milliseconds(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn without_jitter_due_times_are_multiples_of_the_period() {
        let i = Interval::new(Duration::from_secs(300), "ImageRepository/a/b", 0.0);
        assert_eq!(i.offset(), Duration::ZERO);
        assert_eq!(
            i.next_after(at("2026-01-01T10:02:00Z")),
            at("2026-01-01T10:05:00Z")
        );
        // Strictly after: a due time is not due again at itself.
        assert_eq!(
            i.next_after(at("2026-01-01T10:05:00Z")),
            at("2026-01-01T10:10:00Z")
        );
    }

    #[test]
    fn consecutive_due_times_are_one_period_apart_at_many_times() {
        let i = Interval::new(Duration::from_secs(90), "ImagePolicy/flux-system/app", 1.0);
        let mut now = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let mut prev = i.next_after(now);
        for step in 0..500 {
            now += TimeDelta::seconds(37 + step % 11);
            let next = i.next_after(now);
            assert!(next > now);
            assert!(next - now <= TimeDelta::seconds(90));
            let since = (next - prev).num_milliseconds();
            assert_eq!(since % 90_000, 0, "due times drift: {prev} -> {next}");
            // Every due time has the same phase.
            assert_eq!(
                (next.timestamp_millis() - i.offset().as_millis() as i64).rem_euclid(90_000),
                0
            );
            prev = next;
        }
    }

    #[test]
    fn the_offset_is_deterministic_and_stays_inside_the_jitter_window() {
        let a = Interval::new(Duration::from_secs(600), "ImageRepository/ns/one", 0.1);
        let b = Interval::new(Duration::from_secs(600), "ImageRepository/ns/one", 0.1);
        assert_eq!(a, b);
        for n in 0..200 {
            let i = Interval::new(Duration::from_secs(600), &format!("r/{n}"), 0.1);
            assert!(i.offset() < Duration::from_secs(60), "{:?}", i.offset());
        }
    }

    #[test]
    fn objects_with_the_same_interval_spread_over_it() {
        let offsets: std::collections::BTreeSet<_> = (0..100)
            .map(|n| {
                Interval::new(
                    Duration::from_secs(60),
                    &format!("ImageRepository/ns/r{n}"),
                    1.0,
                )
                .offset()
            })
            .collect();
        // 100 objects over 60 000 ms: nearly all distinct, and not bunched in one corner.
        assert!(offsets.len() > 90, "{}", offsets.len());
        let below_half = offsets
            .iter()
            .filter(|o| **o < Duration::from_secs(30))
            .count();
        assert!((25..=75).contains(&below_half), "{below_half}");
    }

    #[test]
    fn times_before_the_epoch_and_tiny_periods_work() {
        let i = Interval::new(Duration::from_millis(0), "x", 0.5);
        let now = at("1969-12-31T23:59:59Z");
        assert_eq!(i.next_after(now), now + TimeDelta::milliseconds(1));
        let j = Interval::new(Duration::from_secs(7), "y", 0.0);
        assert_eq!(j.next_after(now), at("1970-01-01T00:00:00Z"));
    }
}
