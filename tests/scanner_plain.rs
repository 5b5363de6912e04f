//! Scanner against a real `docker-registry` over plain HTTP, anonymous: listing, sorting,
//! exclusion, empty and missing repositories, connection failures.

mod scanner_support;

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use scanner_support::{Mode, Registry};
use tagline::image::ImageName;
use tagline::scanner::{digest, scan, RetryPolicy, ScanError, ScanOptions};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::start(Mode::Plain));

fn options() -> ScanOptions {
    ScanOptions {
        insecure: true,
        timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        ..ScanOptions::default()
    }
}

fn image(repo: &str) -> ImageName {
    ImageName::parse(&format!("{}/{repo}", REGISTRY.host())).unwrap()
}

#[tokio::test]
async fn anonymous_listing_is_sorted_descending_without_signatures() {
    REGISTRY
        .push(
            "team/app",
            &[
                "1.0.0",
                "1.2.0",
                "latest",
                "0.9.0",
                "sha256-abc.sig",
                "1.10.0",
            ],
        )
        .await;
    let r = scan(&image("team/app"), &options()).await.unwrap();
    assert_eq!(r.tags, ["latest", "1.2.0", "1.10.0", "1.0.0", "0.9.0"]);
    assert_eq!(r.pages, 1);
    assert_eq!(r.invalid_tags, 0);
}

#[tokio::test]
async fn a_user_exclusion_list_replaces_the_default() {
    REGISTRY
        .push(
            "team/excl",
            &["1.0.0", "0.9.0", "sha256-abc.sig", "1.0.0-rc.1"],
        )
        .await;
    let opts = ScanOptions {
        exclusion: vec![Regex::new(r"^0\.").unwrap(), Regex::new("rc").unwrap()],
        ..options()
    };
    let r = scan(&image("team/excl"), &opts).await.unwrap();
    assert_eq!(r.tags, ["sha256-abc.sig", "1.0.0"]);
    // No exclusion at all keeps everything.
    let opts = ScanOptions {
        exclusion: vec![],
        ..options()
    };
    let r = scan(&image("team/excl"), &opts).await.unwrap();
    assert_eq!(r.tags, ["sha256-abc.sig", "1.0.0-rc.1", "1.0.0", "0.9.0"]);
}

#[tokio::test]
async fn a_missing_repository_is_not_found() {
    let e = scan(&image("team/nothing-here"), &options())
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains(&REGISTRY.host()), "{e}");
    assert!(e.to_string().contains("team/nothing-here"), "{e}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn a_repository_whose_manifests_were_deleted_lists_no_tags() {
    let digest = REGISTRY.push("team/emptied", &["1.0.0", "2.0.0"]).await;
    let url = format!(
        "http://{}/v2/team/emptied/manifests/{digest}",
        REGISTRY.host()
    );
    let resp = reqwest::Client::new().delete(url).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let r = scan(&image("team/emptied"), &options()).await.unwrap();
    assert!(r.tags.is_empty(), "{:?}", r.tags);
}

/// Without `insecure`, 127.0.0.1 still falls back to plain HTTP when HTTPS does not connect,
/// as go-containerregistry (and so Flux) does for local hosts (`tests/scanner_fallback.rs`).
#[tokio::test]
async fn a_plain_http_registry_on_loopback_needs_no_insecure_flag() {
    REGISTRY.push("team/tlsmix", &["1"]).await;
    let opts = ScanOptions {
        insecure: false,
        ..options()
    };
    let r = scan(&image("team/tlsmix"), &opts).await.unwrap();
    assert_eq!(r.tags, ["1"]);
}

#[tokio::test]
async fn connection_refused_is_a_retryable_connect_error() {
    let port = scanner_support::free_port();
    let img = ImageName::parse(&format!("127.0.0.1:{port}/team/app")).unwrap();
    let e = scan(&img, &options()).await.unwrap_err();
    assert!(matches!(e, ScanError::Connect { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test]
async fn digest_of_a_tag_is_the_manifest_digest() {
    let pushed = REGISTRY.push("team/digest", &["1.0.0", "latest"]).await;
    let d = digest(&image("team/digest"), "1.0.0", &options())
        .await
        .unwrap();
    assert_eq!(d, pushed);
    assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
}

/// A multi-arch tag reports the index digest, not a platform manifest's.
#[tokio::test]
async fn digest_of_an_index_is_the_index_digest() {
    let manifest = REGISTRY.push("team/multi", &["single"]).await;
    let size = REGISTRY.manifest_len("team/multi", &manifest).await;
    let index = REGISTRY
        .push_index("team/multi", &manifest, size, "multi")
        .await;
    assert_ne!(index, manifest);
    let d = digest(&image("team/multi"), "multi", &options())
        .await
        .unwrap();
    assert_eq!(d, index);
}

#[tokio::test]
async fn digest_of_a_missing_tag_is_tag_not_found() {
    REGISTRY.push("team/digest-missing", &["1"]).await;
    let e = digest(&image("team/digest-missing"), "2", &options())
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::TagNotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("tag 2 not found in {}/team/digest-missing", REGISTRY.host())
    );
}

#[tokio::test]
async fn digest_refuses_an_invalid_tag() {
    let e = digest(&image("team/digest"), "../../x", &options())
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::Options { .. }), "{e:?}");
}
