//! Registry webhooks end to end on real parts (docker-registry, git http-backend, the
//! `tagline run` service): a Receiver's call scans its ImageRepository at once and the commit
//! lands, though every interval is an hour; refused calls scan nothing and log no secret.

mod common;
mod e2e_support;

use std::time::Duration;

use common::*;
use e2e_support::*;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

const TOKEN: &str = "w3bh00k-t0ken-never-logged";

/// `/hook/` and the hex SHA-256 of token, name and namespace, computed with OpenSSL.
fn webhook_path(name: &str, namespace: &str) -> String {
    webhook_path_with(TOKEN, name, namespace)
}

fn webhook_path_with(token: &str, name: &str, namespace: &str) -> String {
    let digest = openssl::hash::hash(
        MessageDigest::sha256(),
        format!("{token}{name}{namespace}").as_bytes(),
    )
    .unwrap();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("/hook/{hex}")
}

/// `sha256=<hex HMAC-SHA256 of body keyed with the token>`, computed with OpenSSL.
fn signature(body: &[u8]) -> String {
    let key = PKey::hmac(TOKEN.as_bytes()).unwrap();
    let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
    signer.update(body).unwrap();
    let mac = signer.sign_to_vec().unwrap();
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn receiver(name: &str, spec: &str) -> String {
    format!(
        "---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: {name}
  namespace: default
spec:
  secretRef:
    name: webhook-token
  resources:
    - apiVersion: image.toolkit.fluxcd.io/v1
      kind: ImageRepository
      name: app
{spec}"
    )
}

/// The e2e objects with every interval an hour, a token Secret and `receivers`, served.
fn start(receivers: &str) -> (Setup, Service) {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace("interval: 5m", "interval: 1h");
    s.config.write("objects.yaml", &objects);
    s.config.write(
        "webhook-token.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: webhook-token\n  namespace: default\nstringData:\n  token: {TOKEN}\n"
        ),
    );
    s.config.write("receivers.yaml", receivers);
    let mut svc = Service::start(&s.config);
    svc.wait_for("the first commit", |_| pinned(&s, "1.2.0"));
    (s, svc)
}

fn pinned(s: &Setup, tag: &str) -> bool {
    s.git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(&format!("{}/{}:{tag}", s.registry.host(), s.image))
}

/// Waits long enough for a pass a call might have asked for to have started, and checks that
/// none ran and nothing was pushed.
fn assert_nothing_scanned(s: &Setup, svc: &Service, passes: u64, commits: usize) {
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(svc.passes(), passes, "a pass ran:\n{}", svc.log());
    assert_eq!(s.git.log(&s.fleet, "main").len(), commits);
    assert!(!svc.log().contains("webhook: scanning"), "{}", svc.log());
}

#[test]
fn a_signed_generic_hmac_call_scans_at_once_and_the_commit_lands() {
    let (s, mut svc) = start(&receiver("registry", "  type: generic-hmac\n"));
    let path = webhook_path("registry", "default");
    assert!(
        svc.log()
            .contains(&format!("Receiver default/registry: webhook path {path}")),
        "{}",
        svc.log()
    );
    s.registry.push_tags(&s.image, &["1.3.0"]);
    svc.wait_for("the first pass to be counted", |svc| svc.passes() >= 1);
    let passes = svc.passes();
    let body = br#"{"tag":"1.3.0"}"#;

    // `/api/v1/status` shows Flux's status.webhookPath, and not the token.
    let status = svc.status();
    let r = status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Receiver" && o["name"] == "registry")
        .unwrap_or_else(|| panic!("no Receiver in {status}"));
    assert_eq!(r["status"]["webhookPath"], path.as_str(), "{status}");
    assert_eq!(r["status"]["conditions"][0]["status"], "True", "{status}");
    assert!(!status.to_string().contains(TOKEN), "{status}");

    // A wrong signature, a missing one, the right one on another body: 400, as Flux answers.
    let wrong = signature(b"something else");
    assert_eq!(svc.post(&path, &[("X-Signature", &wrong)], body), 400);
    assert_eq!(svc.post(&path, &[], body), 400);
    assert_eq!(
        svc.post("/hook/0123abcd", &[("X-Signature", &signature(body))], body),
        404
    );
    assert_nothing_scanned(&s, &svc, passes, 2);
    let log = svc.log();
    assert!(
        log.contains("Receiver default/registry: unable to validate payload: unable to validate HMAC signature: payload signature check failed"),
        "{log}"
    );
    assert!(log.contains("missing signature"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in a log that is not a terminal: {log:?}"
    );

    // The right signature: scanned at once, and the commit lands though every interval is 1h.
    assert_eq!(
        svc.post(&path, &[("X-Signature", &signature(body))], body),
        200
    );
    svc.wait_for("the 1.3.0 commit", |_| pinned(&s, "1.3.0"));
    assert_eq!(s.git.log(&s.fleet, "main").len(), 3);
    let log = svc.log();
    assert!(
        log.contains("webhook: scanning ImageRepository default/app now"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token reached the log:\n{log}");
}

#[test]
fn github_ping_and_package_events_and_harbor_token_header() {
    let receivers = format!(
        "{}{}",
        receiver(
            "github",
            "  type: github\n  events:\n    - ping\n    - package\n"
        ),
        receiver("harbor", "  type: harbor\n"),
    );
    let (s, mut svc) = start(&receivers);
    let github = webhook_path("github", "default");
    let harbor = webhook_path("harbor", "default");
    svc.wait_for("the first pass to be counted", |svc| svc.passes() >= 1);
    let passes = svc.passes();
    s.registry.push_tags(&s.image, &["1.3.0"]);

    // Refused: an event not listed, a harbor call with a wrong Authorization header.
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let sig = signature(body);
    let gh = |event: &'static str| {
        vec![
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-Hub-Signature-256", sig.as_str()),
        ]
    };
    assert_eq!(svc.post(&github, &gh("push"), body), 400);
    assert_eq!(
        svc.post(&harbor, &[("Authorization", "not-the-token")], b"{}"),
        400
    );
    assert_nothing_scanned(&s, &svc, passes, 2);
    let log = svc.log();
    assert!(
        log.contains("Receiver default/github: unable to validate payload: the GitHub event \"push\" is not authorised"),
        "{log}"
    );
    assert!(
        log.contains("Receiver default/harbor: unable to validate payload: the Harbor Authorization header value does not match the receiver token"),
        "{log}"
    );

    // GitHub's ping, signed: listed in events, so it scans (as Flux reconciles on it).
    assert_eq!(svc.post(&github, &gh("ping"), body), 200);
    svc.wait_for("the 1.3.0 commit", |_| pinned(&s, "1.3.0"));

    // Harbor with the token in the Authorization header.
    s.registry.push_tags(&s.image, &["1.4.0"]);
    assert_eq!(
        svc.post(
            &harbor,
            &[("Authorization", TOKEN)],
            br#"{"type":"PUSH_ARTIFACT"}"#
        ),
        200
    );
    svc.wait_for("the 1.4.0 commit", |_| pinned(&s, "1.4.0"));
    assert_eq!(s.git.log(&s.fleet, "main").len(), 4);
    let log = svc.log();
    assert!(!log.contains(TOKEN), "the token reached the log:\n{log}");

    // A rotated token, picked up by the config reload: the old paths are gone at once.
    let rotated = "r0tated-t0ken";
    s.config.write(
        "webhook-token.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: webhook-token\n  namespace: default\nstringData:\n  token: {rotated}\n"
        ),
    );
    let new_harbor = webhook_path_with(rotated, "harbor", "default");
    svc.wait_for("the new webhook path", |svc| {
        svc.log().contains(&format!(
            "Receiver default/harbor: webhook path {new_harbor}"
        ))
    });
    assert_eq!(svc.post(&harbor, &[("Authorization", TOKEN)], b"{}"), 404);
    assert_eq!(
        svc.post(&new_harbor, &[("Authorization", TOKEN)], b"{}"),
        400
    );
    assert_eq!(
        svc.post(&new_harbor, &[("Authorization", rotated)], b"{}"),
        200
    );
    assert!(!svc.log().contains(rotated), "{}", svc.log());
}

/// With `--log-format json`, a refused call's line is a JSON object like the service's own,
/// naming the Receiver in fields of their own, and without the token.
#[test]
fn a_refused_call_is_a_json_line_naming_the_receiver() {
    let config = ConfigDir::new();
    config.write(
        "objects.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  namespace: default
spec:
  image: 127.0.0.1:9/app
  interval: 1h
  suspend: true
",
    );
    config.write(
        "webhook-token.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: webhook-token\n  namespace: default\nstringData:\n  token: {TOKEN}\n"
        ),
    );
    config.write(
        "receivers.yaml",
        &receiver("registry", "  type: generic-hmac\n"),
    );
    let mut svc = Service::builder(&config)
        .args(&["--log-format", "json"])
        .start();
    svc.wait_for("the first pass", |svc| svc.passes() >= 1);
    let path = webhook_path("registry", "default");
    assert_eq!(
        svc.post(&path, &[("X-Signature", &signature(b"other"))], b"{}"),
        400
    );
    svc.wait_for("the refusal", |svc| {
        svc.log().contains("unable to validate")
    });
    let log = svc.log();
    assert!(!log.contains(TOKEN), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let refused = lines
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("unable to validate"))
        })
        .unwrap();
    assert_eq!(refused["level"], "warn", "{refused}");
    assert_eq!(refused["kind"], "Receiver", "{refused}");
    assert_eq!(refused["namespace"], "default", "{refused}");
    assert_eq!(refused["name"], "registry", "{refused}");
    assert!(
        refused["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{refused}"
    );
}
