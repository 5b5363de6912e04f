//! Scanner against a real `docker-registry` over TLS with a private CA: trusted only when the
//! CA is handed over explicitly.

mod scanner_support;

use std::sync::LazyLock;
use std::time::Duration;

use scanner_support::{Mode, Registry};
use tagline::image::ImageName;
use tagline::scanner::{scan, ScanError, ScanOptions};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::start(Mode::Tls));

fn options(ca: bool) -> ScanOptions {
    ScanOptions {
        ca_pem: ca.then(|| REGISTRY.ca_pem.clone().unwrap()),
        timeout: Duration::from_secs(20),
        ..ScanOptions::default()
    }
}

fn image(repo: &str) -> ImageName {
    ImageName::parse(&format!("{}/{repo}", REGISTRY.host())).unwrap()
}

#[tokio::test]
async fn the_private_ca_makes_the_registry_trusted() {
    REGISTRY.push("team/app", &["1.0.0", "2.0.0"]).await;
    let r = scan(&image("team/app"), &options(true)).await.unwrap();
    assert_eq!(r.tags, ["2.0.0", "1.0.0"]);
}

#[tokio::test]
async fn without_the_ca_the_certificate_is_not_trusted() {
    REGISTRY.push("team/untrusted", &["1.0.0"]).await;
    let e = scan(&image("team/untrusted"), &options(false))
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::Tls { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("TLS: certificate not trusted for"), "{msg}");
    assert!(msg.contains(&REGISTRY.host()), "{msg}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn a_ca_that_is_not_pem_is_an_options_error() {
    let opts = ScanOptions {
        ca_pem: Some(b"not a certificate".to_vec()),
        ..options(false)
    };
    let e = scan(&image("team/app"), &opts).await.unwrap_err();
    assert!(matches!(e, ScanError::Options { .. }), "{e:?}");
}
