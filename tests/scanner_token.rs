//! Scanner against a real `docker-registry` with token auth (ES256 JWTs from a token server
//! this test runs): credentials exchanged for a token, the token cached across scans,
//! anonymous and wrong-password refusals.

mod scanner_support;

use std::sync::LazyLock;
use std::time::Duration;

use scanner_support::{Mode, Registry, PASSWORD, USER};
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, ScanError, ScanOptions};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::start(Mode::Token));

fn options(password: Option<&str>) -> ScanOptions {
    ScanOptions {
        credentials: password.map(|p| Credentials::Basic {
            username: USER.into(),
            password: p.into(),
        }),
        insecure: true,
        timeout: Duration::from_secs(20),
        ..ScanOptions::default()
    }
}

fn image(repo: &str) -> ImageName {
    ImageName::parse(&format!("{}/{repo}", REGISTRY.host())).unwrap()
}

#[tokio::test]
async fn credentials_get_a_token_that_is_reused_by_the_next_scan() {
    REGISTRY
        .push("team/app", &["1.0.0", "1.1.0", "2.0.0-rc.1"])
        .await;
    let before = REGISTRY.token_requests();
    let r = scan(&image("team/app"), &options(Some(PASSWORD)))
        .await
        .unwrap();
    assert_eq!(r.tags, ["2.0.0-rc.1", "1.1.0", "1.0.0"]);
    assert_eq!(REGISTRY.token_requests(), before + 1);
    let r = scan(&image("team/app"), &options(Some(PASSWORD)))
        .await
        .unwrap();
    assert_eq!(r.tags.len(), 3);
    assert_eq!(REGISTRY.token_requests(), before + 1, "token not reused");
}

#[tokio::test]
async fn an_anonymous_token_without_access_is_an_auth_error() {
    REGISTRY.push("team/private", &["1"]).await;
    let e = scan(&image("team/private"), &options(None))
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::Auth { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "authentication failed for {}/team/private",
            REGISTRY.host()
        )),
        "{e}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_the_token_server() {
    REGISTRY.push("team/wrong", &["1"]).await;
    let e = scan(&image("team/wrong"), &options(Some("Wrong-pa55")))
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::Auth { .. }), "{e:?}");
    let msg = format!("{e} {e:?}");
    assert!(
        msg.contains("token request to 127.0.0.1 answered HTTP 401"),
        "{msg}"
    );
    assert!(!msg.contains("Wrong-pa55"), "{msg}");
}
