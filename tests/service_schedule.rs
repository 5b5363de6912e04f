//! The service's commit gate with injected time, through the library (`Daemon::new`,
//! `with_schedules`, `tick(now)`) against the real registry and git server: a debounce window
//! turns a burst of two tag pushes into one commit; a cron commit window holds a commit back
//! until it opens, then lets it through. No sleeping: every pass runs at a chosen `now`.

mod common;
mod e2e_support;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use e2e_support::*;
use tagline::api::Config;
use tagline::automation::{Report, Status};
use tagline::daemon::{Daemon, Schedules};
use tagline::store::Store;

/// The schedules `tagline run` derives: each automation's annotations.
fn schedules(config: &Config) -> Schedules {
    config
        .automations
        .iter()
        .map(|(id, a)| (id.clone(), a.schedule.clone()))
        .collect()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

/// Objects for `s` with a 1m scan interval and `annotations` on the ImageUpdateAutomation.
fn annotated(s: &Setup, annotations: &[(&str, &str)]) -> String {
    let mut block = String::from("  annotations:\n");
    for (k, v) in annotations {
        block.push_str(&format!("    {k}: '{v}'\n"));
    }
    objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace("interval: 5m", "interval: 1m")
        .replace(
            "kind: ImageUpdateAutomation\nmetadata:\n  name: fleet\n",
            &format!("kind: ImageUpdateAutomation\nmetadata:\n  name: fleet\n{block}"),
        )
}

struct Service {
    daemon: Daemon,
    rt: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
}

impl Service {
    fn new(s: &Setup) -> Service {
        let state = proc::scratch_dir("schedule-state");
        let store = Store::open(state.path()).expect("open the store");
        let daemon = Daemon::new(s.config.path(), store)
            .expect("load the config")
            .with_schedules(schedules);
        Service {
            daemon,
            rt: tokio::runtime::Runtime::new().expect("runtime"),
            _state: state,
        }
    }

    /// Runs the pass due at `now` (it must be due) and returns its report.
    fn pass(&mut self, now: DateTime<Utc>) -> Report {
        assert!(
            self.daemon.next_due().is_none_or(|t| t <= now),
            "no pass due at {now}; next at {:?}",
            self.daemon.next_due()
        );
        self.rt
            .block_on(self.daemon.tick(now))
            .expect("a pass ran")
            .expect("the state was saved")
    }
}

/// The automation's outcome in `report`: `Ok(message)` when it ran, `Err(why)` when held.
fn automation(report: &Report) -> Result<String, String> {
    let o = report
        .outcomes
        .iter()
        .find(|o| {
            o.id.to_string() == "default/fleet" && o.kind.to_string() == "ImageUpdateAutomation"
        })
        .unwrap_or_else(|| panic!("no automation outcome in {:#?}", report.outcomes));
    match &o.status {
        Status::Ok(m) => Ok(m.clone()),
        Status::Skipped(m) => Err(m.clone()),
        Status::Failed(m) => panic!("the automation failed: {m}"),
    }
}

fn pinned(s: &Setup, tag: &str) -> String {
    format!("{}/{}:{tag}", s.registry.host(), s.image)
}

fn content(s: &Setup) -> String {
    s.git.file(&s.fleet, "main", "deploy/app.yaml")
}

#[test]
fn a_debounce_window_turns_a_burst_of_two_tag_pushes_into_one_commit() {
    let registry = Registry::start(RegistryOptions::default());
    let git = GitServer::start(GitOptions::default());
    let s = setup(registry, git);
    // Start settled: the latest allowed tag is the one in Git.
    s.config.write(
        "objects.yaml",
        &annotated(&s, &[("tagline.dev/debounce", "2m")]).replace("'^1.0.0'", "'~1.0.0'"),
    );
    let mut svc = Service::new(&s);
    let t0 = at("2026-03-02T10:00:00Z");
    let m = |n: i64| t0 + TimeDelta::minutes(n);

    // t0: nothing has changed yet when the pass starts; its first scan sets the policy (a
    // change), so the automation waits 2m, then runs with nothing to commit.
    let why = automation(&svc.pass(t0)).unwrap_err();
    assert!(why.contains("no policy change"), "{why}");
    let why = automation(&svc.pass(m(1))).unwrap_err();
    assert!(why.contains("2026-03-02T10:02:00Z"), "{why}");
    automation(&svc.pass(m(2))).expect("the automation ran");
    assert_eq!(git.log(&s.fleet, "main").len(), 1, "nothing to commit yet");

    // A burst: 1.0.1 pushed, seen at m(3); 1.0.2 pushed, seen at m(4).
    registry.push_tags(&s.image, &["1.0.1"]);
    let why = automation(&svc.pass(m(3))).unwrap_err();
    assert!(why.contains("no policy change"), "{why}");
    registry.push_tags(&s.image, &["1.0.2"]);
    let why = automation(&svc.pass(m(4))).unwrap_err();
    assert!(
        why.contains("2026-03-02T10:05:00Z"),
        "gathering since m(3): {why}"
    );
    assert!(
        svc.daemon.next_due().is_some_and(|t| t <= m(5)),
        "a pass is due by m(5): {:?}",
        svc.daemon.next_due()
    );
    // A minute later: still held, the burst extended to m(6) by the second push.
    let why = automation(&svc.pass(m(5))).unwrap_err();
    assert!(
        why.contains("2026-03-02T10:06:00Z"),
        "the burst extends: {why}"
    );
    assert_eq!(git.log(&s.fleet, "main").len(), 1, "held during the burst");

    // Quiet for 2m: one commit, straight to the burst's last tag.
    let ran = automation(&svc.pass(m(6))).expect("the burst fires");
    assert!(ran.contains("1.0.2"), "{ran}");
    let log = git.log(&s.fleet, "main");
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[1].sha, s.initial_head);
    assert!(
        content(&s).contains(&pinned(&s, "1.0.2")),
        "{}",
        content(&s)
    );
    assert!(!git
        .diff(&s.fleet, &s.initial_head, &log[0].sha)
        .contains("1.0.1"));

    // Afterwards: held with nothing to commit, and no further commit.
    let why = automation(&svc.pass(m(7))).unwrap_err();
    assert!(why.contains("no policy change"), "{why}");
    assert_eq!(git.log(&s.fleet, "main").len(), 2);
}

#[test]
fn a_cron_window_holds_a_commit_back_then_lets_it_through() {
    let registry = Registry::start(RegistryOptions::default());
    let git = GitServer::start(GitOptions::default());
    let s = setup(registry, git);
    s.config.write(
        "objects.yaml",
        &annotated(
            &s,
            &[
                ("tagline.dev/schedule", "* 9-17 * * 1-5"),
                ("tagline.dev/schedule-timezone", "Europe/Berlin"),
            ],
        ),
    );
    let mut svc = Service::new(&s);

    // Saturday noon: 1.2.0 is the latest allowed tag, but the window is closed.
    let why = automation(&svc.pass(at("2026-01-17T12:00:00Z"))).unwrap_err();
    assert!(
        why.contains("outside its commit window; next opens at 2026-01-19T08:00:00Z"),
        "{why}"
    );
    // Monday 08:59 Berlin (07:59 UTC): still closed.
    assert!(automation(&svc.pass(at("2026-01-19T07:59:00Z"))).is_err());
    assert_eq!(git.log(&s.fleet, "main").len(), 1, "held back");
    assert!(content(&s).contains(":1.0.0"));

    // Monday 09:00 Berlin: the commit goes through, once.
    automation(&svc.pass(at("2026-01-19T08:00:00Z"))).expect("the window is open");
    let log = git.log(&s.fleet, "main");
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0].author_name, "Tagline Bot");
    assert!(
        content(&s).contains(&pinned(&s, "1.2.0")),
        "{}",
        content(&s)
    );
    automation(&svc.pass(at("2026-01-19T08:01:00Z"))).expect("still open");
    assert_eq!(git.log(&s.fleet, "main").len(), 2, "no second commit");

    // Board: the passes were recorded.
    assert_eq!(svc.daemon.board().lock().unwrap().passes(), 4);
}
