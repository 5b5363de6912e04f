//! Scanner against a real `docker-registry` that demands a client certificate (mTLS with
//! `clientcas`): `tls.crt` + `tls.key` in PKCS#8 or SEC1 form, and without them.

mod scanner_support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use scanner_support::{Mode, Registry};
use tagline::image::ImageName;
use tagline::scanner::{digest, scan, ClientIdentity, RetryPolicy, ScanError, ScanOptions};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::start(Mode::MutualTls));

fn options(identity: Option<ClientIdentity>) -> ScanOptions {
    ScanOptions {
        ca_pem: REGISTRY.ca_pem.clone(),
        client_identity: identity,
        timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        ..ScanOptions::default()
    }
}

fn identity(key_pem: Vec<u8>) -> Option<ClientIdentity> {
    Some(ClientIdentity {
        cert_pem: REGISTRY.client_cert_pem.clone().unwrap(),
        key_pem,
    })
}

fn image(repo: &str) -> ImageName {
    ImageName::parse(&format!("{}/{repo}", REGISTRY.host())).unwrap()
}

/// The client key in SEC1 form (`BEGIN EC PRIVATE KEY`), as `openssl ecparam -genkey` writes.
fn sec1_key() -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["ec", "-outform", "PEM"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(REGISTRY.client_key_pem.as_ref().unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("BEGIN EC PRIVATE KEY"));
    out.stdout
}

#[tokio::test]
async fn a_client_certificate_with_a_pkcs8_key_is_accepted() {
    let pushed = REGISTRY.push("team/app", &["1.0.0", "1.1.0"]).await;
    let key = REGISTRY.client_key_pem.clone().unwrap();
    let r = scan(&image("team/app"), &options(identity(key.clone())))
        .await
        .unwrap();
    assert_eq!(r.tags, ["1.1.0", "1.0.0"]);
    let d = digest(&image("team/app"), "1.1.0", &options(identity(key)))
        .await
        .unwrap();
    assert_eq!(d, pushed);
}

#[tokio::test]
async fn a_client_certificate_with_a_sec1_key_is_accepted() {
    REGISTRY.push("team/sec1", &["2"]).await;
    let r = scan(&image("team/sec1"), &options(identity(sec1_key())))
        .await
        .unwrap();
    assert_eq!(r.tags, ["2"]);
}

#[tokio::test]
async fn without_a_client_certificate_the_handshake_fails() {
    REGISTRY.push("team/nocert", &["1"]).await;
    let e = scan(&image("team/nocert"), &options(None))
        .await
        .unwrap_err();
    // Depending on timing the refusal surfaces in the handshake or on the first read.
    assert!(
        matches!(e, ScanError::Tls { .. } | ScanError::Connect { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains(&REGISTRY.host()), "{e}");
    assert!(e.to_string().contains("client certificate"), "{e}");
}

#[tokio::test]
async fn a_key_that_is_not_a_key_is_an_options_error() {
    let e = scan(
        &image("team/app"),
        &options(identity(
            b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n".to_vec(),
        )),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ScanError::Options { .. }), "{e:?}");
    assert!(!e.to_string().contains("nope"), "{e}");
}
