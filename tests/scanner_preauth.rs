//! The scanner answers a registry's known auth challenge before its first request: once one
//! repository has taught it the token realm (or that Basic is wanted), each further repository
//! on that registry costs one token and one request per page, no refused request first.

mod scanner_support;

use std::time::{Duration, Instant};

use scanner_support::common::{Registry, RegistryOptions};
use scanner_support::{PASSWORD, USER};
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, ScanOptions};

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
