//! Retries of one request: exponential backoff with jitter, `Retry-After` (seconds or HTTP-date)
//! honoured, everything bounded by the scan's deadline. Time, sleeping and randomness come from a
//! [`Clock`], so the schedule is tested without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use super::ScanError;

/// How a failed request (408, 429, 5xx, connection failure) is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// The backoff never grows beyond this (a longer `Retry-After` is still honoured).
    pub max_backoff: Duration,
    /// Relative jitter: the backoff is scaled by a random factor in `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 5 attempts, 0.5 s doubling up to 30 s, ±20 % jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based), given the registry's `Retry-After` and a
    /// random `unit` in `[0, 1)`: the jittered exponential backoff, but never less than
    /// `Retry-After`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let backoff = exp.mul_f64(factor);
        match retry_after {
            Some(ra) => ra.max(backoff),
            None => backoff,
        }
    }
}

/// Time, sleep and randomness, injectable.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// A uniformly random number in `[0, 1)` (for jitter).
    fn unit_random(&self) -> f64;
}

/// The real clock: wall time, tokio's sleep, a fast PRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
    fn unit_random(&self) -> f64 {
        fastrand::f64()
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Statuses worth another attempt (as go-containerregistry, plus 425).
pub(super) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 499 | 500 | 502 | 503 | 504 | 522)
}

/// The retry state of one request.
pub(super) struct Retrier<'c> {
    policy: RetryPolicy,
    clock: &'c dyn Clock,
    deadline: SystemTime,
    attempts: u32,
}

impl<'c> Retrier<'c> {
    pub fn new(policy: RetryPolicy, clock: &'c dyn Clock, deadline: SystemTime) -> Self {
        Retrier {
            policy,
            clock,
            deadline,
            attempts: 0,
        }
    }

    /// Records a failed attempt; returns how long to wait before the next, or `None` to give
    /// up (attempts exhausted, or the wait would run past the deadline).
    pub fn after_failure(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.attempts += 1;
        if self.attempts >= self.policy.max_attempts.max(1) {
            return None;
        }
        let d = self
            .policy
            .delay(self.attempts - 1, retry_after, self.clock.unit_random());
        match self.clock.now().checked_add(d) {
            Some(t) if t < self.deadline => Some(d),
            _ => None,
        }
    }

    /// The error to report when giving up: rate limiting carries the attempt count.
    pub fn give_up(&self, error: ScanError) -> ScanError {
        match error {
            ScanError::RateLimited {
                registry,
                repository,
                retry_after,
                rate_limit,
                ..
            } => ScanError::RateLimited {
                registry,
                repository,
                attempts: self.attempts,
                retry_after,
                rate_limit,
            },
            e => e,
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock that never sleeps: `sleep` advances `now` and records the delay.
    pub struct FakeClock {
        pub now: Mutex<SystemTime>,
        pub slept: Mutex<Vec<Duration>>,
        pub unit: f64,
    }

    impl FakeClock {
        pub fn new(unit: f64) -> FakeClock {
            FakeClock {
                now: Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
                slept: Mutex::new(Vec::new()),
                unit,
            }
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> SystemTime {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            *self.now.lock().unwrap() += d;
            self.slept.lock().unwrap().push(d);
            Box::pin(std::future::ready(()))
        }
        fn unit_random(&self) -> f64 {
            self.unit
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn exponential_schedule_without_jitter() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: ms(500),
            max_backoff: Duration::from_secs(4),
            jitter: 0.2,
        };
        // unit 0.5 is the middle of the jitter range: no change.
        let s: Vec<_> = (0..6).map(|i| p.delay(i, None, 0.5)).collect();
        assert_eq!(
            s,
            [ms(500), ms(1000), ms(2000), ms(4000), ms(4000), ms(4000)]
        );
        assert_eq!(p.delay(40, None, 0.5), ms(4000));
    }

    #[test]
    fn jitter_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None, 0.0), ms(800));
        assert_eq!(p.delay(1, None, 1.0), ms(1200));
        let d = p.delay(1, None, 0.3);
        assert!(d > ms(800) && d < ms(1000), "{d:?}");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3)), 0.5),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(0, Some(Duration::ZERO), 0.5), ms(500));
        // Longer than max_backoff is still honoured.
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(60)), 0.5),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn retrier_gives_up_after_max_attempts() {
        let clock = FakeClock::new(0.5);
        let policy = RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        let deadline = clock.now() + Duration::from_secs(3600);
        let mut r = Retrier::new(policy, &clock, deadline);
        let mut waits = Vec::new();
        while let Some(d) = r.after_failure(None) {
            waits.push(d);
        }
        assert_eq!(waits, [ms(500), ms(1000), ms(2000)]);
        assert_eq!(r.attempts(), 4);
    }

    #[test]
    fn retrier_stops_before_the_deadline() {
        let clock = FakeClock::new(0.5);
        let policy = RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::default()
        };
        let deadline = clock.now() + Duration::from_secs(10);
        let mut r = Retrier::new(policy, &clock, deadline);
        while let Some(d) = r.after_failure(None) {
            futures_lite_block(clock.sleep(d));
        }
        // 0.5 + 1 + 2 + 4 = 7.5 s slept; the next (8 s) would pass the deadline.
        assert_eq!(
            *clock.slept.lock().unwrap(),
            [ms(500), ms(1000), ms(2000), ms(4000)]
        );
        assert!(clock.now() < deadline);
        // A Retry-After beyond the deadline gives up at once.
        let mut r = Retrier::new(policy, &clock, deadline);
        assert_eq!(r.after_failure(Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn give_up_counts_attempts_for_rate_limits() {
        let clock = FakeClock::new(0.5);
        let mut r = Retrier::new(
            RetryPolicy {
                max_attempts: 2,
                ..RetryPolicy::default()
            },
            &clock,
            clock.now() + Duration::from_secs(60),
        );
        assert!(r.after_failure(None).is_some());
        assert!(r.after_failure(None).is_none());
        let e = r.give_up(ScanError::RateLimited {
            registry: "r".into(),
            repository: "a".into(),
            attempts: 0,
            retry_after: Some(Duration::from_secs(5)),
            rate_limit: Some(crate::scanner::RateLimit {
                limit: Some(100),
                remaining: Some(0),
            }),
        });
        assert_eq!(
            e.to_string(),
            "r/a: rate limited (HTTP 429) after 2 attempts; the registry asks to retry after 5s; \
             0 of 100 requests left"
        );
    }

    /// Polls a future that is ready at once (the fake clock's sleep).
    fn futures_lite_block<F: Future<Output = ()>>(f: F) {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
}
