//! Per-registry manners: at most so many requests in flight to one registry host, and at
//! most so many started per second, shared by every scan in the process, so a config with
//! hundreds of repositories on one registry does not hammer it all at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::retry::Clock;

/// How hard tagline may press one registry host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Manners {
    /// Requests in flight at once (at least 1).
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

/// The limiter of one registry host.
#[derive(Debug)]
pub struct Limiter {
    manners: Manners,
    in_flight: Arc<Semaphore>,
    pace: Mutex<Pace>,
}

impl Limiter {
    pub fn new(manners: Manners) -> Limiter {
        Limiter {
            manners,
            in_flight: Arc::new(Semaphore::new(manners.max_in_flight.max(1))),
            pace: Mutex::new(Pace::default()),
        }
    }

    /// Waits for a free slot and the next start time; the request may go while the permit
    /// is held.
    pub async fn acquire(&self, clock: &dyn Clock) -> OwnedSemaphorePermit {
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let wait = self
            .pace
            .lock()
            .map(|mut p| p.reserve(clock.now(), self.manners.requests_per_second))
            .unwrap_or_default();
        if !wait.is_zero() {
            clock.sleep(wait).await;
        }
        permit
    }
}

type Limiters = Mutex<HashMap<(String, usize, u64), Arc<Limiter>>>;

/// The process-wide limiter for `host` (with its port) under `manners`.
pub fn for_host(host: &str, manners: Manners) -> Arc<Limiter> {
    static LIMITERS: OnceLock<Limiters> = OnceLock::new();
    let key = (
        host.to_ascii_lowercase(),
        manners.max_in_flight,
        manners.requests_per_second.to_bits(),
    );
    let mut map = LIMITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(
        map.entry(key)
            .or_insert_with(|| Arc::new(Limiter::new(manners))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::SystemClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    #[tokio::test]
    async fn no_more_requests_in_flight_than_allowed() {
        let limiter = Arc::new(Limiter::new(Manners {
            max_in_flight: 3,
            requests_per_second: 0.0,
        }));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (limiter, now, peak) = (limiter.clone(), now.clone(), peak.clone());
            tasks.spawn(async move {
                let _permit = limiter.acquire(&SystemClock).await;
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn one_limiter_per_host_and_manners() {
        let m = Manners::default();
        let a = for_host("Registry.example:5000", m);
        let b = for_host("registry.example:5000", m);
        let c = for_host("registry.example:5001", m);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
