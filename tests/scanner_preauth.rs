//! The scanner answers a registry's known auth challenge before its first request: once one
//! repository has taught it the token realm (or that Basic is wanted), each further repository
//! on that registry costs one token and one request per page, no refused request first.

mod emulator;
mod scanner_support;

use std::time::{Duration, Instant};

use emulator::{Emulator, Request, Response};
use scanner_support::common::{Registry, RegistryOptions};
use scanner_support::{PASSWORD, USER};
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, RetryPolicy, ScanOptions};

fn options() -> ScanOptions {
    ScanOptions {
        credentials: Some(Credentials::Basic {
            username: USER.into(),
            password: PASSWORD.into(),
        }),
        insecure: true,
        timeout: Duration::from_secs(20),
        ..ScanOptions::default()
    }
}

fn scan_tags(registry: &Registry, repo: &str) -> Vec<String> {
    let image = ImageName::parse(&registry.image(repo)).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scan(&image, &options()))
        .unwrap_or_else(|e| panic!("scan {repo}: {e}"))
        .tags
}

/// The tags/list requests for `repo` the registry logged after the first `skip` lines. The
/// access log line of a request is written when its response is done, so once the (last,
/// successful) listing shows, a refused one before it shows too.
fn listings(registry: &Registry, repo: &str, skip: usize) -> Vec<String> {
    let wanted = format!("/v2/{repo}/tags/list");
    let started = Instant::now();
    loop {
        let lines: Vec<String> = registry.requests()[skip..]
            .iter()
            .filter(|l| l.contains(&wanted))
            .cloned()
            .collect();
        if !lines.is_empty() || started.elapsed() > Duration::from_secs(5) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_known_token_realm_is_asked_before_the_first_request() {
    let registry = Registry::start_owned_token_auth_with_access_log(RegistryOptions {
        htpasswd: Some((USER, PASSWORD)),
        ..RegistryOptions::default()
    });
    registry.push_tags("team/first", &["1.0.0"]);
    registry.push_tags("team/second", &["1.0.0", "1.1.0"]);
    let tokens = || registry.token_server().unwrap().requests();

    // The first repository meets the challenge: refused, token, again.
    let skip = registry.requests().len();
    let before = tokens();
    assert_eq!(scan_tags(&registry, "team/first"), ["1.0.0"]);
    assert_eq!(listings(&registry, "team/first", skip).len(), 2);
    assert_eq!(tokens(), before + 1);

    // The second: its token first, then one request.
    let skip = registry.requests().len();
    let before = tokens();
    assert_eq!(scan_tags(&registry, "team/second"), ["1.1.0", "1.0.0"]);
    assert_eq!(
        listings(&registry, "team/second", skip),
        ["GET /v2/team/second/tags/list?n=1000 HTTP/1.1"]
    );
    assert_eq!(tokens(), before + 1, "one token for the second repository");
}

#[test]
fn known_basic_auth_is_sent_with_the_first_request() {
    let registry = Registry::start_owned_with_access_log(RegistryOptions {
        htpasswd: Some((USER, PASSWORD)),
        ..RegistryOptions::default()
    });
    registry.push_tags("team/one", &["1.0.0"]);
    registry.push_tags("team/two", &["2.0.0"]);

    let skip = registry.requests().len();
    assert_eq!(scan_tags(&registry, "team/one"), ["1.0.0"]);
    assert_eq!(listings(&registry, "team/one", skip).len(), 2);

    let skip = registry.requests().len();
    assert_eq!(scan_tags(&registry, "team/two"), ["2.0.0"]);
    assert_eq!(listings(&registry, "team/two", skip).len(), 1);
}

/// Many scans of one registry starting at once, before its challenge is known (the service's
/// first pass): one of them meets the challenge, the others wait for what it learns, so the
/// registry refuses one request in all and each repository costs one token.
#[test]
fn concurrent_first_scans_meet_the_challenge_once() {
    let registry = Registry::start_owned_token_auth_with_access_log(RegistryOptions {
        htpasswd: Some((USER, PASSWORD)),
        ..RegistryOptions::default()
    });
    let repos: Vec<String> = (0..12).map(|i| format!("fleet/app{i}")).collect();
    for r in &repos {
        registry.push_tags(r, &["1.0.0"]);
    }
    let tokens_before = registry.token_server().unwrap().requests();
    let skip = registry.requests().len();
    let images: Vec<ImageName> = repos
        .iter()
        .map(|r| ImageName::parse(&registry.image(r)).unwrap())
        .collect();
    let results = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let scans: Vec<_> = images
                .into_iter()
                .map(|image| tokio::spawn(async move { scan(&image, &options()).await }))
                .collect();
            let mut results = Vec::new();
            for s in scans {
                results.push(s.await.expect("scan task"));
            }
            results
        });
    for (repo, r) in repos.iter().zip(results) {
        let r = r.unwrap_or_else(|e| panic!("scan {repo}: {e}"));
        assert_eq!(r.tags, ["1.0.0"], "{repo}");
    }
    let per_repo: Vec<usize> = repos
        .iter()
        .map(|r| listings(&registry, r, skip).len())
        .collect();
    assert_eq!(
        per_repo.iter().sum::<usize>(),
        repos.len() + 1,
        "one refused request in all: {per_repo:?}"
    );
    assert_eq!(
        registry.token_server().unwrap().requests(),
        tokens_before + repos.len() as u64,
        "one token per repository"
    );
}

/// Options for the emulator: plain HTTP, quick retries.
fn quick() -> ScanOptions {
    ScanOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            jitter: 0.0,
        },
        ..options()
    }
}

/// Scans `first` on the emulator, and once its first request is on its way (so it is the
/// one learning the registry's auth), `others` at once; every result, `first`'s first.
async fn first_then_others(
    e: &Emulator,
    first: &str,
    others: &[&str],
) -> Vec<Result<Vec<String>, String>> {
    let image = |repo: &str| ImageName::parse(&format!("{}/{repo}", e.host())).unwrap();
    let run = |image: ImageName| {
        tokio::spawn(async move {
            scan(&image, &quick())
                .await
                .map(|r| r.tags)
                .map_err(|e| e.to_string())
        })
    };
    let lead = run(image(first));
    while e.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rest: Vec<_> = others.iter().map(|r| run(image(r))).collect();
    let mut out = vec![lead.await.unwrap()];
    for r in rest {
        out.push(r.await.unwrap());
    }
    out
}

/// The scan learning a registry's auth gets no usable answer (a 503 after a while): the scans
/// waiting for it go on without it, and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_scan_that_learns_nothing_does_not_hold_the_others() {
    let e = Emulator::start(|r: &Request| {
        if r.path.contains("/team/broken/") {
            Response::json(503, "{}").delayed(Duration::from_millis(300))
        } else {
            Response::json(200, r#"{"tags":["1.0.0"]}"#)
        }
    })
    .await;
    let results = first_then_others(&e, "team/broken", &["team/a", "team/b", "team/c"]).await;
    assert!(results[0].is_err(), "{results:?}");
    for r in &results[1..] {
        assert_eq!(r.as_deref(), Ok(&["1.0.0".to_string()][..]), "{results:?}");
    }
}

/// A registry that serves without auth: the scans that waited for the first one's answer send
/// one request each, without credentials; a repository there that does challenge (a private
/// one next to public ones, as on Quay) still gets its answer, and the next scan of that
/// registry answers the challenge first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_registry_is_learnt_and_a_challenge_there_later_is_still_answered() {
    let e = Emulator::start(|r: &Request| {
        let private = r.path.contains("/team/private");
        let delay = if r.path.contains("/team/public/") {
            300
        } else {
            0
        };
        if private && r.header("authorization").is_none() {
            return Response::json(401, "{}")
                .header("WWW-Authenticate", r#"Basic realm="emulator""#);
        }
        Response::json(200, r#"{"tags":["1.0.0"]}"#).delayed(Duration::from_millis(delay))
    })
    .await;
    let results = first_then_others(&e, "team/public", &["team/a", "team/b"]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let requests = e.requests();
    assert_eq!(
        requests.len(),
        3,
        "one request per repository: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.header("authorization").is_none()));

    let private = |repo: &str| ImageName::parse(&format!("{}/{repo}", e.host())).unwrap();
    let skip = e.requests().len();
    scan(&private("team/private"), &quick()).await.unwrap();
    assert_eq!(e.requests().len() - skip, 2, "refused, then answered");
    let skip = e.requests().len();
    scan(&private("team/private2"), &quick()).await.unwrap();
    let sent = &e.requests()[skip..];
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));
}
