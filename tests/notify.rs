//! Alerts reaching a local HTTP listener: after a real push (Debian's docker-registry and git
//! http-backend), on a failure, filtered by exclusionList, and Slack's payload byte for byte.

mod common;
mod e2e_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use e2e_support::*;

/// One request the listener received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// Header names lower-cased.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that records every POST and answers 200.
struct Listener {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    scheme: &'static str,
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Reads one request from `stream`, records it, and answers it (or holds it unanswered).
fn handle(
    mut stream: Box<dyn ReadWrite>,
    sink: &Mutex<Vec<Received>>,
    statuses: &[u16],
    silent: bool,
) {
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    drop(reader);
    let n = {
        let mut sink = sink.lock().unwrap();
        sink.push(Received {
            path,
            headers,
            body,
        });
        sink.len() - 1
    };
    if silent {
        // Hold the connection open without an answer.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(30));
            drop(stream);
        });
        return;
    }
    let status = statuses.get(n).copied().unwrap_or(200);
    let body = if status == 200 {
        ""
    } else {
        "go away hmac-t0ken-for-flux"
    };
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 {status} X\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

impl Listener {
    fn start() -> Listener {
        Listener::scripted(Vec::new(), false)
    }

    /// Answers the n-th request with `statuses[n]` (200 after the list), or never answers
    /// when `silent`.
    fn scripted(statuses: Vec<u16>, silent: bool) -> Listener {
        Listener::serve(statuses, silent, None)
    }

    /// HTTPS with the harness's server certificate, requiring a client certificate signed
    /// by the test CA.
    fn mtls() -> Listener {
        let ca = TestCa::get();
        let mut b =
            openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls())
                .unwrap();
        b.set_certificate_chain_file(ca.server_cert_path()).unwrap();
        b.set_private_key_file(ca.server_key_path(), openssl::ssl::SslFiletype::PEM)
            .unwrap();
        b.set_ca_file(ca.ca_path()).unwrap();
        b.set_verify(
            openssl::ssl::SslVerifyMode::PEER | openssl::ssl::SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        );
        Listener::serve(Vec::new(), false, Some(b.build()))
    }

    fn serve(statuses: Vec<u16>, silent: bool, tls: Option<openssl::ssl::SslAcceptor>) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind listener");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let scheme = if tls.is_some() { "https" } else { "http" };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let stream: Box<dyn ReadWrite> = match &tls {
                    Some(acceptor) => match acceptor.accept(stream) {
                        Ok(s) => Box::new(s),
                        Err(_) => continue,
                    },
                    None => Box::new(stream),
                };
                handle(stream, &sink, &statuses, silent);
            }
        });
        Listener {
            port,
            received,
            scheme,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// HMAC-SHA256 with OpenSSL, independent of the code under test.
fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let pkey = openssl::pkey::PKey::hmac(key).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
    signer.update(body).unwrap();
    signer
        .sign_to_vec()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const TOKEN: &str = "hmac-t0ken-for-flux";

/// Providers and Alerts in `default`: `flux` (generic-hmac, every event of the automation),
/// `quiet` (generic, push messages excluded), `errors` (generic, error severity only).
fn notification_objects(listener: &Listener) -> String {
    format!(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: flux
spec:
  type: generic-hmac
  address: {hook}
  secretRef:
    name: hook-token
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: quiet
spec:
  type: generic
  address: {quiet}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: errors
spec:
  type: generic
  address: {errors}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: policies
spec:
  type: generic
  address: {policies}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: policies
spec:
  providerRef:
    name: policies
  eventSources:
    - kind: ImagePolicy
      name: '*'
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: flux
spec:
  providerRef:
    name: flux
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
  eventMetadata:
    cluster: test
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: quiet
spec:
  providerRef:
    name: quiet
  eventSources:
    - kind: ImageUpdateAutomation
      name: fleet
  exclusionList:
    - '^pushed commit'
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: errors
spec:
  providerRef:
    name: errors
  eventSeverity: error
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
    - kind: ImageRepository
      name: '*'
",
        hook = listener.url("/hook/flux"),
        quiet = listener.url("/quiet"),
        errors = listener.url("/errors"),
        policies = listener.url("/policies"),
    )
}

#[test]
fn a_push_reaches_the_listener_with_a_valid_hmac() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let listener = Listener::start();
    s.config
        .write("notify.yaml", &notification_objects(&listener));
    s.config.write(
        "hook-token.yaml",
        &secret("hook-token", "Opaque", &[("token", TOKEN)]),
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(!run.stderr.contains(TOKEN), "token leaked:\n{}", run.stderr);
    let commit = &s.git.log(&s.fleet, "main")[0];

    let got = listener.at("/hook/flux");
    assert_eq!(got.len(), 1, "one push event: {:#?}", listener.received());
    let r = &got[0];
    let signature = r.headers.get("x-signature").expect("X-Signature header");
    assert_eq!(
        signature,
        &format!("sha256={}", hmac_hex(TOKEN.as_bytes(), &r.body))
    );
    assert_ne!(
        signature,
        &format!("sha256={}", hmac_hex(b"another token", &r.body))
    );
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["gotk-component"], "image-automation-controller");

    let event: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        event["involvedObject"],
        serde_json::json!({
            "kind": "ImageUpdateAutomation",
            "namespace": "default",
            "name": "fleet",
            "apiVersion": "image.toolkit.fluxcd.io/v1"
        })
    );
    assert_eq!(event["severity"], "info");
    assert_eq!(event["reason"], "Succeeded");
    assert_eq!(event["reportingController"], "image-automation-controller");
    let message = event["message"].as_str().unwrap();
    assert_eq!(
        message.trim_end(),
        format!(
            "pushed commit '{}' to branch 'main'\nBump images for default/fleet",
            &commit.sha[..7]
        )
    );
    assert_eq!(
        event["metadata"],
        serde_json::json!({"cluster": "test", "revision": format!("main@sha1:{}", commit.sha)})
    );
    let stamp = event["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
        "{stamp}"
    );

    // The policy's new latest tag, as image-reflector-controller reports it.
    let got = listener.at("/policies");
    assert_eq!(got.len(), 1, "{:#?}", listener.received());
    let event: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(event["involvedObject"]["kind"], "ImagePolicy");
    assert_eq!(event["reportingController"], "image-reflector-controller");
    assert_eq!(
        event["message"],
        format!(
            "Latest image tag for {}/{} resolved to 1.2.0",
            s.registry.host(),
            s.image
        )
    );

    // The exclusionList drops the push for `quiet`; `errors` takes errors only.
    assert!(
        listener.at("/quiet").is_empty(),
        "{:#?}",
        listener.received()
    );
    assert!(
        listener.at("/errors").is_empty(),
        "{:#?}",
        listener.received()
    );
}

#[test]
fn a_failure_is_sent_with_severity_error() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let listener = Listener::start();
    s.config
        .write("notify.yaml", &notification_objects(&listener));
    s.config.write(
        "hook-token.yaml",
        &secret("hook-token", "Opaque", &[("token", TOKEN)]),
    );
    // The GitRepository names a repository the server does not have.
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace(&s.git.url(&s.fleet), &s.git.url("no-such-repo"));
    s.config.write("objects.yaml", &objects);
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "stderr:\n{}", run.stderr);
    let failure = line(&run, "ImageUpdateAutomation default/fleet");

    for path in ["/errors", "/quiet", "/hook/flux"] {
        let got = listener.at(path);
        assert_eq!(got.len(), 1, "{path}: {:#?}", listener.received());
        let event: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
        assert_eq!(event["severity"], "error", "{path}");
        assert_eq!(event["involvedObject"]["kind"], "ImageUpdateAutomation");
        assert_eq!(event["reportingController"], "image-automation-controller");
        let message = event["message"].as_str().unwrap();
        assert!(
            !message.is_empty() && failure.contains(message),
            "{message} / {failure}"
        );
        assert!(
            ["GitOperationFailed", "SourceManagerFailed"]
                .contains(&event["reason"].as_str().unwrap()),
            "{event}"
        );
    }
    let hmac = &listener.at("/hook/flux")[0];
    assert_eq!(
        hmac.headers["x-signature"],
        format!("sha256={}", hmac_hex(TOKEN.as_bytes(), &hmac.body))
    );
}

/// A failure, then (in a new process with the same state directory) a success: the
/// recovery is sent, because the failing objects persist in the store.
#[test]
fn a_recovery_after_a_restart_reaches_the_listener() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let listener = Listener::start();
    s.config
        .write("notify.yaml", &notification_objects(&listener));
    s.config.write(
        "hook-token.yaml",
        &secret("hook-token", "Opaque", &[("token", TOKEN)]),
    );
    // `~1.0.0` keeps Git's 1.0.0: once the repository is right, there is nothing to push,
    // so the only event the automation can send then is the recovery.
    let good = objects(s.registry, s.git, &s.image, &s.fleet, "~1.0.0");
    let broken = good.replace(&s.git.url(&s.fleet), &s.git.url("no-such-repo"));
    s.config.write("objects.yaml", &broken);
    let scratch = proc::scratch_dir("notify-recovery");
    let state = scratch.path().join("state");
    let run = run_with_state(&s.config, &state);
    assert_ne!(run.code, 0, "stderr:\n{}", run.stderr);
    let got = listener.at("/quiet");
    assert_eq!(got.len(), 1, "{:#?}", listener.received());
    let event: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(event["severity"], "error");

    s.config.write("objects.yaml", &good);
    let run = run_with_state(&s.config, &state);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1, "nothing pushed");
    let got = listener.at("/quiet");
    assert_eq!(got.len(), 2, "the recovery: {:#?}", listener.received());
    let event: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(event["severity"], "info", "{event}");
    assert_eq!(event["reason"], "Succeeded", "{event}");
    assert_eq!(event["message"], "repository up-to-date", "{event}");
    assert_eq!(event["involvedObject"]["name"], "fleet", "{event}");
    assert_eq!(listener.at("/errors").len(), 1, "no new error");

    // Told once: a third run sends nothing more.
    let run = run_with_state(&s.config, &state);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_eq!(listener.at("/quiet").len(), 2, "{:#?}", listener.received());
}

#[test]
fn slack_payload_matches_the_golden_file() {
    use tagline::api::{Kind, NamespacedName};
    use tagline::automation::{Outcome, Push, Report, Status};

    let listener = Listener::start();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notify/slack");
    let config_yaml = std::fs::read_to_string(fixture.join("original/notify.yaml"))
        .unwrap()
        .replace("LISTENER", &listener.url("/slack"));
    let dir = ConfigDir::new();
    dir.write("notify.yaml", &config_yaml);
    let config = tagline::api::load_dir(dir.path()).expect("fixture config loads");

    let id = NamespacedName::new("apps", "fleet");
    let mut report = Report {
        outcomes: vec![
            Outcome::new(
                Kind::ImagePolicy,
                &NamespacedName::new("apps", "app"),
                Status::Failed("no tag in the list matches '>=2.0.0 <3'".into()),
            ),
            Outcome::new(
                Kind::ImageUpdateAutomation,
                &id,
                Status::Ok("pushed commit 9fceb02 to main: deploy/app.yaml".into()),
            ),
        ],
        ..Report::default()
    };
    let push = Push {
        branch: "main".into(),
        commit: "9fceb02d0ae598e95dc970b74767f19372d61af8".into(),
        message: "Bump images for apps/fleet\n\n- app: 1.0.0 -> 1.2.0\n".into(),
        refspec: None,
    };
    report.outcomes[1].push = Some(push.clone());
    report.pushes.insert(id, push);
    let now: chrono::DateTime<chrono::Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
    let deliveries =
        tagline::notify::Notifier::with_instance("tagline-test").prepare(&config, &report, now);
    assert_eq!(deliveries.len(), 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failed = rt.block_on(tagline::notify::deliver_all(deliveries));
    assert!(failed.is_empty(), "{failed:?}");

    let got = listener.at("/slack");
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(r.headers["authorization"], "Bearer xoxb-slack-t0ken");
    }
    let mut bodies: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    bodies.sort();
    let actual = bodies.join("\n") + "\n";
    let expected_path = fixture.join("expected");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn the_daemon_sends_a_failure_without_waiting_for_the_next_pass() {
    let listener = Listener::start();
    let dir = ConfigDir::new();
    // Nothing listens on port 9: the scan fails at once.
    dir.write(
        "objects.yaml",
        &format!(
            "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
spec:
  image: 127.0.0.1:9/team/app
  interval: 5m
  insecure: true
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: hook
spec:
  type: generic
  address: {}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: scans
spec:
  providerRef:
    name: hook
  eventSeverity: error
  eventSources:
    - kind: ImageRepository
      name: app
",
            listener.url("/daemon")
        ),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut d =
            tagline::daemon::Daemon::new(dir.path(), tagline::store::Store::in_memory()).unwrap();
        let report = d.tick(chrono::Utc::now()).await.unwrap().unwrap();
        assert!(report.failed());
        let deadline = Instant::now() + Duration::from_secs(20);
        while listener.at("/daemon").is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let got = listener.at("/daemon");
    assert_eq!(got.len(), 1, "{:#?}", listener.received());
    let event: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(event["severity"], "error");
    assert_eq!(event["involvedObject"]["kind"], "ImageRepository");
    assert_eq!(event["reportingController"], "image-reflector-controller");
}

/// A config with one generic-hmac Provider (token TOKEN, `timeout`) at `url` and an Alert on
/// every ImageUpdateAutomation in `default`, plus a report with one failed automation.
fn one_failure(url: &str, timeout: &str) -> (tagline::api::Config, tagline::automation::Report) {
    use tagline::api::{Kind, NamespacedName};
    use tagline::automation::{Outcome, Report, Status};
    let dir = ConfigDir::new();
    dir.write(
        "notify.yaml",
        &format!(
            "apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: hook
spec:
  type: generic-hmac
  address: {url}
  timeout: {timeout}
  secretRef:
    name: hook-token
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: all
spec:
  providerRef:
    name: hook
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
"
        ),
    );
    dir.write(
        "hook-token.yaml",
        &secret("hook-token", "Opaque", &[("token", TOKEN)]),
    );
    let config = tagline::api::load_dir(dir.path()).unwrap();
    let report = Report {
        outcomes: vec![Outcome::new(
            Kind::ImageUpdateAutomation,
            &NamespacedName::new("default", "fleet"),
            Status::Failed("failed to push to remote: rejected".into()),
        )],
        ..Report::default()
    };
    (config, report)
}

fn deliver(config: &tagline::api::Config, report: &tagline::automation::Report) -> Vec<String> {
    let deliveries =
        tagline::notify::Notifier::with_instance("t").prepare(config, report, chrono::Utc::now());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(tagline::notify::deliver_all(deliveries))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_server_error_is_retried_and_a_client_error_is_not() {
    // The backoff would wait 2s, past the 1.9s timeout; the 503's `Retry-After: 1` is
    // taken instead, so the second attempt comes in time.
    let listener = Listener::scripted(vec![503], false);
    let (config, report) = one_failure(&listener.url("/retry"), "1900ms");
    assert!(deliver(&config, &report).is_empty());
    let got = listener.at("/retry");
    assert_eq!(got.len(), 2, "retried once after the 503");
    assert_eq!(got[0].body, got[1].body);

    let listener = Listener::scripted(vec![400], false);
    let (config, report) = one_failure(&listener.url("/reject"), "30s");
    let errors = deliver(&config, &report);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("Provider default/hook: request failed with status code 400"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains(TOKEN), "token leaked: {}", errors[0]);
    assert_eq!(listener.at("/reject").len(), 1, "a 400 is not retried");
}

#[test]
fn a_silent_endpoint_times_out_without_naming_the_address() {
    let listener = Listener::scripted(Vec::new(), true);
    let (config, report) = one_failure(&listener.url("/silent/s3cret-path"), "1s");
    let errors = deliver(&config, &report);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("Provider default/hook: no answer within 1s"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains("s3cret-path"), "{}", errors[0]);
}

#[test]
fn a_refused_connection_names_the_provider_not_the_address() {
    // Bind and drop: nothing listens on the port afterwards.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (config, report) = one_failure(&format!("http://127.0.0.1:{port}/s3cret-path"), "3s");
    let errors = deliver(&config, &report);
    assert_eq!(errors.len(), 1);
    // Retries run until the timeout; the error says what the last attempt met.
    let want = "Provider default/hook: no answer within 3s (last attempt: Provider default/hook: posting the event: ";
    assert!(errors[0].starts_with(want), "{}", errors[0]);
    assert!(!errors[0].contains("s3cret-path"), "{}", errors[0]);
}

#[test]
fn a_provider_with_cert_secret_ref_speaks_mtls_to_a_private_ca() {
    let listener = Listener::mtls();
    let ca = TestCa::get();
    let (_, report) = one_failure(&listener.url("/tls"), "30s");
    let with_certs = |cert_ref: &str| {
        let dir = ConfigDir::new();
        dir.write(
            "notify.yaml",
            &format!(
                "apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: hook
spec:
  type: generic
  address: {}
  timeout: 3s
{cert_ref}---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: all
spec:
  providerRef:
    name: hook
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
",
                listener.url("/tls")
            ),
        );
        dir.write(
            "tls.yaml",
            &secret(
                "hook-tls",
                "Opaque",
                &[
                    ("ca.crt", ca.ca_pem()),
                    ("tls.crt", ca.client_cert_pem()),
                    ("tls.key", ca.client_key_pem()),
                ],
            ),
        );
        tagline::api::load_dir(dir.path()).unwrap()
    };
    let config = with_certs("  certSecretRef:\n    name: hook-tls\n");
    assert_eq!(deliver(&config, &report), Vec::<String>::new());
    assert_eq!(listener.at("/tls").len(), 1);

    // Without the Secret the private CA is not trusted and nothing arrives.
    let config = with_certs("");
    let errors = deliver(&config, &report);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("Provider default/hook: posting the event: ")
            && errors[0].contains("invalid peer certificate"),
        "not retried until the timeout: {}",
        errors[0]
    );
    assert_eq!(listener.at("/tls").len(), 1);
}
