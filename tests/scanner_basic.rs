//! Scanner against a real `docker-registry` with htpasswd Basic auth: right and wrong
//! password, no credentials, credentials from a docker config JSON.

mod scanner_support;

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine as _;
use scanner_support::{Mode, Registry, PASSWORD, USER};
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, ScanError, ScanOptions};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::start(Mode::Basic));

fn options(credentials: Option<Credentials>) -> ScanOptions {
    ScanOptions {
        credentials,
        insecure: true,
        timeout: Duration::from_secs(20),
        ..ScanOptions::default()
    }
}

fn image(repo: &str) -> ImageName {
    ImageName::parse(&format!("{}/{repo}", REGISTRY.host())).unwrap()
}

fn basic(password: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: USER.into(),
        password: password.into(),
    })
}

#[tokio::test]
async fn the_right_password_lists_tags() {
    REGISTRY.push("team/app", &["v1", "v2", "v10"]).await;
    let r = scan(&image("team/app"), &options(basic(PASSWORD)))
        .await
        .unwrap();
    assert_eq!(r.tags, ["v2", "v10", "v1"]);
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_without_the_secret() {
    REGISTRY.push("team/wrong", &["v1"]).await;
    let e = scan(&image("team/wrong"), &options(basic("not-the-Pa55word")))
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::Auth { .. }), "{e:?}");
    let msg = format!("{e} / {e:?}");
    assert!(
        msg.contains(&format!(
            "authentication failed for {}/team/wrong",
            REGISTRY.host()
        )),
        "{msg}"
    );
    assert!(!msg.contains("not-the-Pa55word"), "{msg}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn no_credentials_is_an_auth_error() {
    REGISTRY.push("team/anon", &["v1"]).await;
    let e = scan(&image("team/anon"), &options(None)).await.unwrap_err();
    assert!(matches!(e, ScanError::Auth { .. }), "{e:?}");
}

#[tokio::test]
async fn credentials_from_a_docker_config_secret() {
    REGISTRY.push("team/cfg", &["a", "b"]).await;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let json = format!(
        r#"{{"auths":{{"other.example":{{"auth":"eDp5"}},"http://{}":{{"auth":"{auth}"}}}}}}"#,
        REGISTRY.host()
    );
    let creds = Credentials::from_docker_config(json.as_bytes(), &REGISTRY.host()).unwrap();
    assert!(creds.is_some());
    let r = scan(&image("team/cfg"), &options(creds)).await.unwrap();
    assert_eq!(r.tags, ["b", "a"]);
}
