//! go-containerregistry's plain-HTTP fallback for local hosts, which Flux inherits: without
//! `insecure`, `127.0.0.1:<port>` and `localhost:<port>` try HTTPS and fall back to plain HTTP
//! when it does not connect; a TLS registry is never downgraded; other hosts never fall back.

mod common;

use std::time::Duration;

use common::*;
use tagline::image::ImageName;
use tagline::scanner::{digest, scan, RetryPolicy, ScanError, ScanOptions};

fn options() -> ScanOptions {
    ScanOptions {
        insecure: false,
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..ScanOptions::default()
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn loopback_and_localhost_fall_back_to_plain_http() {
    let registry = Registry::start(RegistryOptions::default());
    let repo = unique_name("fallback/app");
    let pushed = registry.push_tags(&repo, &["1.0.0", "1.1.0"]);
    let port = registry.host().rsplit(':').next().unwrap().to_string();
    for host in [registry.host().to_string(), format!("localhost:{port}")] {
        let image = ImageName::parse(&format!("{host}/{repo}")).unwrap();
        let r = block_on(scan(&image, &options())).unwrap();
        assert_eq!(r.tags, ["1.1.0", "1.0.0"], "{host}");
        let d = block_on(digest(&image, "1.1.0", &options())).unwrap();
        assert_eq!(d, pushed, "{host}");
    }
}

#[test]
fn a_tls_registry_without_its_ca_is_not_downgraded() {
    let registry = Registry::start(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    let repo = unique_name("fallback/tls");
    registry.push_tags(&repo, &["1.0.0"]);
    let image = ImageName::parse(&registry.image(&repo)).unwrap();
    // HTTPS does not verify (no CA); plain HTTP reaches a TLS server that answers 400: the
    // scan reports the TLS failure.
    let e = block_on(scan(&image, &options())).unwrap_err();
    assert!(matches!(e, ScanError::Tls { .. }), "{e:?}");
    // With its CA it is HTTPS as usual.
    let opts = ScanOptions {
        ca_pem: registry.ca_pem().map(|p| p.as_bytes().to_vec()),
        ..options()
    };
    assert_eq!(block_on(scan(&image, &opts)).unwrap().tags, ["1.0.0"]);
}

#[test]
fn other_hosts_never_fall_back() {
    // `LOCALHOST:<port>` resolves to loopback but is not one of go-containerregistry's names
    // (its check is case-sensitive): HTTPS only, so a plain registry fails.
    let registry = Registry::start(RegistryOptions::default());
    let repo = unique_name("fallback/other");
    registry.push_tags(&repo, &["1.0.0"]);
    let port = registry.host().rsplit(':').next().unwrap().to_string();
    let Ok(image) = ImageName::parse(&format!("LOCALHOST:{port}/{repo}")) else {
        panic!("an upper-case host is a valid image name");
    };
    let e = block_on(scan(&image, &options())).unwrap_err();
    assert!(
        matches!(e, ScanError::Tls { .. } | ScanError::Connect { .. }),
        "{e:?}"
    );
}
