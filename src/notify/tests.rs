//! Unit tests of the notifier: events from outcomes, alert matching, metadata, rate limit.

use super::*;
use crate::api::notification::{check_alert, AlertObject};
use crate::api::Origin;
use crate::automation::{Outcome, Push};

fn now() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn outcome(kind: Kind, name: &str, status: Status) -> Outcome {
    Outcome::new(kind, &NamespacedName::new("flux-system", name), status)
}

fn alert(yaml: &str) -> Alert {
    let obj: AlertObject = serde_yaml_ng::from_str(yaml).unwrap();
    check_alert(
        NamespacedName::new("flux-system", &obj.metadata.name),
        Origin {
            file: "a.yaml".into(),
            document: 1,
        },
        obj.spec,
    )
    .unwrap()
}

fn pushed_report() -> Report {
    let mut r = Report {
        outcomes: vec![
            outcome(
                Kind::ImageRepository,
                "app",
                Status::Ok("scanned 4 tags".into()),
            ),
            outcome(
                Kind::ImagePolicy,
                "app",
                Status::Failed("no tag matched the range".into()),
            ),
            outcome(
                Kind::ImageUpdateAutomation,
                "fleet",
                Status::Ok("pushed commit 0123456 to main: app.yaml".into()),
            ),
            outcome(
                Kind::ImageUpdateAutomation,
                "held",
                Status::Skipped("outside its commit window".into()),
            ),
        ],
        ..Report::default()
    };
    let push = Push {
        branch: "main".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        message: "Bump app to 1.2.0".into(),
        refspec: None,
    };
    r.outcomes[2].push = Some(push.clone());
    r.pushes
        .insert(NamespacedName::new("flux-system", "fleet"), push);
    r
}

#[test]
fn a_push_and_a_failure_become_events_and_nothing_else_does() {
    let mut n = Notifier::with_instance("test-host");
    let events = n.events(&Config::default(), &pushed_report(), now());
    assert_eq!(events.len(), 2, "{events:#?}");
    let failure = &events[0];
    assert_eq!(failure.involved_object.kind, "ImagePolicy");
    assert_eq!(failure.severity, Severity::Error);
    assert_eq!(failure.reason, "Failure");
    assert_eq!(failure.message, "no tag matched the range");
    assert_eq!(failure.reporting_controller, "image-reflector-controller");
    let push = &events[1];
    assert_eq!(push.severity, Severity::Info);
    assert_eq!(push.reason, "Succeeded");
    assert_eq!(
        push.message,
        "pushed commit '0123456' to branch 'main'\nBump app to 1.2.0"
    );
    assert_eq!(
        push.metadata["image.toolkit.fluxcd.io/revision"],
        "main@sha1:0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(push.reporting_controller, "image-automation-controller");
    assert_eq!(push.reporting_instance, "test-host");
    assert_eq!(push.timestamp, "2026-03-01T12:00:00Z");
}

#[test]
fn identical_events_wait_out_the_rate_limit_and_recovery_is_told_once() {
    let mut n = Notifier::with_instance("h");
    let c = Config::default();
    let failing = Report {
        outcomes: vec![outcome(
            Kind::ImageUpdateAutomation,
            "fleet",
            Status::Failed("push rejected".into()),
        )],
        ..Report::default()
    };
    assert_eq!(n.events(&c, &failing, now()).len(), 1);
    let later = now() + chrono::Duration::minutes(1);
    assert!(n.events(&c, &failing, later).is_empty(), "rate limited");
    let much_later = now() + chrono::Duration::minutes(5);
    assert_eq!(n.events(&c, &failing, much_later).len(), 1);

    let fine = Report {
        outcomes: vec![outcome(
            Kind::ImageUpdateAutomation,
            "fleet",
            Status::Ok("no changes on main".into()),
        )],
        ..Report::default()
    };
    let recovered = n.events(&c, &fine, much_later);
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].severity, Severity::Info);
    assert_eq!(recovered[0].message, "repository up-to-date");
    assert!(n
        .events(&c, &fine, much_later + chrono::Duration::minutes(10))
        .is_empty());
}

#[test]
fn alerts_match_on_kind_namespace_name_severity_and_lists() {
    let mut n = Notifier::with_instance("h");
    let events = n.events(&Config::default(), &pushed_report(), now());
    let (failure, push) = (&events[0], &events[1]);
    let c = Config::default();
    let any = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: ImageUpdateAutomation, name: '*'}, {kind: ImagePolicy, name: app}]\n");
    assert!(matches(&c, &any, push) && matches(&c, &any, failure));
    let errors = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSeverity: error\n  eventSources: [{kind: ImageUpdateAutomation, name: '*'}, {kind: ImagePolicy, name: app}]\n");
    assert!(!matches(&c, &errors, push) && matches(&c, &errors, failure));
    let other_ns = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: ImageUpdateAutomation, name: '*', namespace: apps}]\n");
    assert!(!matches(&c, &other_ns, push));
    let other_name = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: ImageUpdateAutomation, name: other}]\n");
    assert!(!matches(&c, &other_name, push));
    let excluded = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: ImageUpdateAutomation, name: '*'}]\n  exclusionList: ['^pushed commit .* to branch .main.']\n");
    assert!(!matches(&c, &excluded, push));
    let included = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: ImageUpdateAutomation, name: '*'}]\n  inclusionList: ['Bump']\n");
    assert!(matches(&c, &included, push));
    let suspended = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  suspend: true\n  eventSources: [{kind: ImageUpdateAutomation, name: '*'}]\n");
    assert!(!matches(&c, &suspended, push));
    let labelled = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: ImagePolicy, name: '*', matchLabels: {team: a}}]\n");
    assert!(!matches(&c, &labelled, failure), "no such labels");
}

#[test]
fn metadata_is_combined_in_flux_order() {
    let mut n = Notifier::with_instance("h");
    let events = n.events(&Config::default(), &pushed_report(), now());
    let mut push = events[1].clone();
    push.metadata
        .insert("event.toolkit.fluxcd.io/env".into(), "from-object".into());
    push.metadata.insert(
        "event.toolkit.fluxcd.io/cluster".into(),
        "from-object".into(),
    );
    let a = alert("metadata: {name: a}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: ImageUpdateAutomation, name: '*'}]\n  eventMetadata: {cluster: prod, revision: from-alert}\n  summary: images\n");
    let sent = combine_metadata(&push, &a);
    let want: BTreeMap<String, String> = [
        ("cluster", "prod"),
        ("env", "from-object"),
        (
            "revision",
            "main@sha1:0123456789abcdef0123456789abcdef01234567",
        ),
        ("summary", "images"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(sent.metadata, want);
}

#[test]
fn a_new_latest_tag_is_an_info_event_of_the_policy() {
    use crate::image::ImageRef;
    let r = |tag: &str| ImageRef {
        name: "ghcr.io/team/app".into(),
        tag: tag.into(),
        digest: None,
    };
    let mut report = Report {
        outcomes: vec![outcome(
            Kind::ImagePolicy,
            "app",
            Status::Ok("latest is ghcr.io/team/app:1.2.0".into()),
        )],
        ..Report::default()
    };
    let mut n = Notifier::with_instance("h");
    assert!(n.events(&Config::default(), &report, now()).is_empty());
    report.latest_changes.insert(
        NamespacedName::new("flux-system", "app"),
        (r("1.2.0"), Some(r("1.0.0"))),
    );
    let events = n.events(&Config::default(), &report, now());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].severity, Severity::Info);
    assert_eq!(events[0].reason, "Succeeded");
    assert_eq!(events[0].reporting_controller, "image-reflector-controller");
    assert_eq!(
        events[0].message,
        "Latest image tag for ghcr.io/team/app resolved to 1.2.0 (previously ghcr.io/team/app:1.0.0)"
    );
}

#[test]
fn a_failure_event_carries_the_outcomes_reason() {
    let mut n = Notifier::with_instance("h");
    let report = Report {
        outcomes: vec![outcome(
            Kind::ImageRepository,
            "app",
            Status::Failed("connection refused".into()),
        )
        .with_reason(crate::automation::Reason::AuthenticationFailed)],
        ..Report::default()
    };
    let events = n.events(&Config::default(), &report, now());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "AuthenticationFailed");
    assert_eq!(events[0].message, "connection refused");
}

const STORED: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: flux-system}
spec:
  url: http://127.0.0.1:9/fleet.git
  interval: 1m
  ref: {branch: main}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: fleet, namespace: flux-system}
spec:
  interval: 5m
  sourceRef: {kind: GitRepository, name: fleet}
  git:
    commit:
      author: {email: bot@example.com}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: hook, namespace: flux-system}
spec:
  type: generic
  address: http://127.0.0.1:9/hook
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: all, namespace: flux-system}
spec:
  providerRef: {name: hook}
  eventSeverity: info
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
";

/// A restart between a failure and the next success: the recovery is still sent, because
/// the failing objects live in the store, not in the notifier.
#[test]
fn a_recovery_after_a_restart_is_still_told() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("objects.yaml"), STORED).unwrap();
    let config = crate::api::load_dir(dir.path()).expect("valid config");
    let state = tempfile::tempdir().unwrap();
    let report = |status: Status| Report {
        outcomes: vec![outcome(Kind::ImageUpdateAutomation, "fleet", status)],
        ..Report::default()
    };
    let failed = report(Status::Failed("push rejected".into()));
    let fine = report(Status::Ok("no changes on main".into()));

    let mut store = Store::open(state.path()).unwrap();
    let sent = Notifier::with_instance("h").prepare_stored(&config, &failed, now(), &mut store);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].as_ref().unwrap().event.severity, Severity::Error);
    store.save().unwrap();
    drop(store);

    // A new process: a fresh notifier, the store read back.
    let mut store = Store::open(state.path()).unwrap();
    let later = now() + chrono::Duration::minutes(1);
    let sent = Notifier::with_instance("h").prepare_stored(&config, &fine, later, &mut store);
    assert_eq!(sent.len(), 1, "the recovery");
    let event = &sent[0].as_ref().unwrap().event;
    assert_eq!(event.severity, Severity::Info);
    assert_eq!(event.message, "repository up-to-date");
    store.save().unwrap();

    // Told once: the next success is quiet, in this process and the next.
    let sent = Notifier::with_instance("h").prepare_stored(&config, &fine, later, &mut store);
    assert!(sent.is_empty());
    assert!(Store::open(state.path())
        .unwrap()
        .notify_failing()
        .is_empty());

    // Without the store (as before), a fresh notifier knows of no failure.
    let mut memory = Store::in_memory();
    Notifier::with_instance("h").prepare_stored(&config, &failed, now(), &mut memory);
    assert!(Notifier::with_instance("h")
        .prepare(&config, &fine, later)
        .is_empty());

    // An object gone from the config is forgotten.
    let mut store = Store::open(state.path()).unwrap();
    Notifier::with_instance("h").prepare_stored(&config, &failed, now(), &mut store);
    assert_eq!(store.notify_failing().len(), 1);
    Notifier::with_instance("h").prepare_stored(
        &Config::default(),
        &Report::default(),
        later,
        &mut store,
    );
    assert!(store.notify_failing().is_empty());
}
