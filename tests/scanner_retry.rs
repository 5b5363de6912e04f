//! Scanner retries against the scripted emulator: 429 and 5xx with backoff, `Retry-After`
//! (seconds and HTTP-date) honoured, the timeout respected, rate-limit headers reported.
//! The schedule is observed through an injected clock that records sleeps without sleeping.

mod emulator;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use emulator::{Emulator, Request, Response};
use tagline::image::ImageName;
use tagline::scanner::{
    scan, scan_with_clock, Clock, RateLimit, RetryPolicy, ScanError, ScanOptions,
};

fn options() -> ScanOptions {
    ScanOptions {
        insecure: true,
        timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            jitter: 0.2,
        },
        ..ScanOptions::default()
    }
}

fn image(e: &Emulator) -> ImageName {
    ImageName::parse(&format!("{}/team/app", e.host())).unwrap()
}

/// Records sleeps and advances its time by them, without sleeping; no jitter.
struct RecordingClock {
    now: Mutex<SystemTime>,
    slept: Mutex<Vec<Duration>>,
}

impl RecordingClock {
    fn new() -> Self {
        RecordingClock {
            now: Mutex::new(SystemTime::now()),
            slept: Mutex::new(Vec::new()),
        }
    }
    fn slept(&self) -> Vec<Duration> {
        self.slept.lock().unwrap().clone()
    }
}

impl Clock for RecordingClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        *self.now.lock().unwrap() += d;
        self.slept.lock().unwrap().push(d);
        Box::pin(std::future::ready(()))
    }
    fn unit_random(&self) -> f64 {
        0.5
    }
}

/// Answers `first` for the first `k` requests, then the tag list.
fn failing_then_ok(
    k: usize,
    first: impl Fn() -> Response + Send + Sync + 'static,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    let n = AtomicUsize::new(0);
    move |_r: &Request| {
        if n.fetch_add(1, Ordering::SeqCst) < k {
            first()
        } else {
            Response::json(200, r#"{"name":"team/app","tags":["b","a"]}"#)
        }
    }
}

fn too_many(retry_after: Option<&str>) -> Response {
    let r = Response::json(
        429,
        r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
    );
    match retry_after {
        Some(v) => r.header("Retry-After", v),
        None => r,
    }
}

#[tokio::test]
async fn docker_hub_429_with_retry_after_seconds_is_waited_out() {
    let e = Emulator::start(failing_then_ok(2, || too_many(Some("7")))).await;
    let clock = RecordingClock::new();
    let opts = ScanOptions {
        timeout: Duration::from_secs(20),
        ..options()
    };
    let r = scan_with_clock(&image(&e), &opts, &clock).await.unwrap();
    assert_eq!(r.tags, ["b", "a"]);
    assert_eq!(e.tag_requests(), 3);
    assert_eq!(
        clock.slept(),
        [Duration::from_secs(7), Duration::from_secs(7)]
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
    let e = Emulator::start(failing_then_ok(1, move || too_many(Some(&when)))).await;
    let clock = RecordingClock::new();
    let opts = ScanOptions {
        timeout: Duration::from_secs(120),
        ..options()
    };
    let r = scan_with_clock(&image(&e), &opts, &clock).await.unwrap();
    assert_eq!(r.tags, ["b", "a"]);
    let slept = clock.slept();
    assert_eq!(slept.len(), 1);
    // HTTP-dates have one-second resolution.
    assert!(
        slept[0] >= Duration::from_secs(28) && slept[0] <= Duration::from_secs(30),
        "{slept:?}"
    );
}

#[tokio::test]
async fn server_errors_back_off_exponentially() {
    let e = Emulator::start(failing_then_ok(3, || {
        Response::json(
            503,
            r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
        )
    }))
    .await;
    let clock = RecordingClock::new();
    let opts = ScanOptions {
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
        },
        ..options()
    };
    let r = scan_with_clock(&image(&e), &opts, &clock).await.unwrap();
    assert_eq!(r.tags, ["b", "a"]);
    assert_eq!(
        clock.slept(),
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
}

#[tokio::test]
async fn server_errors_forever_end_in_a_status_error_after_the_attempts() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(
            502,
            r#"{"errors":[{"code":"BAD_GATEWAY","message":"upstream"}]}"#,
        )
    })
    .await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(
        matches!(err, ScanError::Status { status: 502, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("BAD_GATEWAY upstream"), "{err}");
    assert!(err.is_retryable());
    assert_eq!(e.tag_requests(), 5);
}

/// A registry that answers 429 forever ends in a rate-limit error before the timeout fires.
#[tokio::test]
async fn a_registry_that_rate_limits_forever_ends_within_the_timeout() {
    let e = Emulator::start(|_r: &Request| too_many(None)).await;
    let opts = ScanOptions {
        timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 1000,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            jitter: 0.2,
        },
        ..options()
    };
    let err = scan(&image(&e), &opts).await.unwrap_err();
    match &err {
        ScanError::RateLimited { attempts, .. } => assert!(*attempts > 2, "{attempts}"),
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert!(err.to_string().contains("rate limited (HTTP 429)"), "{err}");
}

/// A `Retry-After` longer than the time left gives up at once, saying how long was asked.
#[tokio::test]
async fn a_retry_after_beyond_the_timeout_gives_up_at_once() {
    let e = Emulator::start(|_r: &Request| too_many(Some("3600"))).await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(
        matches!(err, ScanError::RateLimited { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("retry after 3600s"), "{err}");
    assert_eq!(e.tag_requests(), 1);
}

#[tokio::test]
async fn docker_hub_rate_limit_headers_are_reported() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(200, r#"{"tags":["1"]}"#)
            .header("ratelimit-limit", "100;w=21600")
            .header("ratelimit-remaining", "76;w=21600")
            .header("docker-ratelimit-source", "192.0.2.1")
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(
        r.rate_limit,
        Some(RateLimit {
            limit: Some(100),
            remaining: Some(76)
        })
    );
}

#[tokio::test]
async fn no_rate_limit_headers_is_none() {
    let e = Emulator::start(|_r: &Request| Response::json(200, r#"{"tags":["1"]}"#)).await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.rate_limit, None);
}

/// Auth failures and 404 are final: no retries.
#[tokio::test]
async fn client_errors_are_not_retried() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(404, r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#)
    })
    .await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(matches!(err, ScanError::NotFound { .. }), "{err:?}");
    assert_eq!(e.tag_requests(), 1);
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let e = Emulator::start(move |_r: &Request| {
        c.fetch_add(1, Ordering::SeqCst);
        Response::json(403, r#"{"errors":[{"code":"DENIED"}]}"#)
    })
    .await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(matches!(err, ScanError::Auth { .. }), "{err:?}");
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}
