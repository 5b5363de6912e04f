//! An HTTPS `docker-registry` whose token realm is plain HTTP: credentials are not sent there.

mod scanner_support;

use std::sync::LazyLock;
use std::time::Duration;

use scanner_support::{Mode, Registry, PASSWORD, USER};
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, ScanError, ScanOptions};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::start(Mode::TlsToken));

#[tokio::test]
async fn credentials_are_not_sent_to_a_plain_http_realm() {
    REGISTRY.push("team/app", &["1.0.0"]).await;
    let before = REGISTRY.token_requests();
    let options = ScanOptions {
        credentials: Some(Credentials::Basic {
            username: USER.into(),
            password: PASSWORD.into(),
        }),
        ca_pem: REGISTRY.ca_pem.clone(),
        timeout: Duration::from_secs(20),
        ..ScanOptions::default()
    };
    let image = ImageName::parse(&format!("{}/team/app", REGISTRY.host())).unwrap();
    let e = scan(&image, &options).await.unwrap_err();
    assert!(matches!(e, ScanError::Auth { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("refusing to send credentials to the plain-HTTP token realm"),
        "{msg}"
    );
    assert!(!msg.contains(PASSWORD), "{msg}");
    assert_eq!(
        REGISTRY.token_requests(),
        before,
        "the token server was asked"
    );
}
