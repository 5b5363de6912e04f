//! Per-registry manners: how many scans may be in flight at one registry host (enforced
//! where a scan starts, in `scanner::scan`) and the pace of requests per second to it,
//! shared by every scan in the process, so a config with hundreds of repositories on one
//! registry does not hammer it all at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use super::retry::Clock;

/// How hard tagline may press one registry host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Manners {
    /// Scans and digest lookups in flight at once (at least 1); each sends its requests one
    /// after another.
    pub max_in_flight: usize,
    /// Requests started per second (0 or less: no pacing).
    pub requests_per_second: f64,
}

impl Default for Manners {
    /// Eight requests in flight per host, starts unpaced: a thousand repositories on one
    /// registry are listed eight at a time, and a registry that wants fewer says so with 429
    /// and `Retry-After`, which the retries honour.
    fn default() -> Manners {
        Manners {
            max_in_flight: 8,
            requests_per_second: 0.0,
        }
    }
}

/// Evenly spaced start times: the pure half of the limiter (time is a parameter).
#[derive(Debug, Default)]
pub struct Pace {
    next: Option<SystemTime>,
}

impl Pace {
    /// Reserves the next start slot at or after `now` for a host paced at `per_second`, and
    /// returns how long to wait for it.
    pub fn reserve(&mut self, now: SystemTime, per_second: f64) -> Duration {
        if !(per_second > 0.0 && per_second.is_finite()) {
            return Duration::ZERO;
        }
        let slot = match self.next {
            Some(next) if next > now => next,
            _ => now,
        };
        self.next = Some(slot + Duration::from_secs_f64(1.0 / per_second));
        slot.duration_since(now).unwrap_or_default()
    }
}

/// The request pace of one registry host.
#[derive(Debug)]
pub struct Limiter {
    per_second: f64,
    pace: Mutex<Pace>,
}

impl Limiter {
    pub fn new(per_second: f64) -> Limiter {
        Limiter {
            per_second,
            pace: Mutex::new(Pace::default()),
        }
    }

    /// Waits for the next start time.
    pub async fn pace(&self, clock: &dyn Clock) {
        if self.per_second.is_nan() || self.per_second <= 0.0 {
            return;
        }
        let wait = self
            .pace
            .lock()
            .map(|mut p| p.reserve(clock.now(), self.per_second))
            .unwrap_or_default();
        if !wait.is_zero() {
            clock.sleep(wait).await;
        }
    }
}

type Limiters = Mutex<HashMap<(String, u64), Arc<Limiter>>>;

/// The process-wide pace for `host` (with its port) under `manners`.
pub fn for_host(host: &str, manners: Manners) -> Arc<Limiter> {
    static LIMITERS: OnceLock<Limiters> = OnceLock::new();
    let key = (
        host.to_ascii_lowercase(),
        manners.requests_per_second.to_bits(),
    );
    let mut map = LIMITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(
        map.entry(key)
            .or_insert_with(|| Arc::new(Limiter::new(manners.requests_per_second))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_spaced_evenly_and_idle_time_is_not_banked() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut pace = Pace::default();
        let waits: Vec<_> = (0..4).map(|_| pace.reserve(t0, 4.0)).collect();
        assert_eq!(
            waits,
            [0, 250, 500, 750].map(Duration::from_millis),
            "four at once at 4/s"
        );
        // Long after: no burst is saved up, the next start is immediate and then paced.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(pace.reserve(later, 4.0), Duration::ZERO);
        assert_eq!(pace.reserve(later, 4.0), Duration::from_millis(250));
        // No pacing.
        assert_eq!(Pace::default().reserve(t0, 0.0), Duration::ZERO);
        assert_eq!(Pace::default().reserve(t0, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn one_limiter_per_host_and_manners() {
        let m = Manners::default();
        let a = for_host("Registry.example:5000", m);
        let b = for_host("registry.example:5000", m);
        let c = for_host("registry.example:5001", m);
        let d = for_host(
            "registry.example:5000",
            Manners {
                requests_per_second: 5.0,
                ..m
            },
        );
        assert!(!Arc::ptr_eq(&a, &d));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
