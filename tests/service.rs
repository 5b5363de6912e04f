//! `tagline run` without `--once` as a long-running service, end to end on real parts
//! (docker-registry, git http-backend): later ticks pick up new tags, HTTP endpoints answer,
//! a broken edit on SIGHUP keeps the old config, SIGTERM exits 0.

mod common;
mod e2e_support;

use common::*;
use e2e_support::*;

fn tag_in_file(s: &Setup) -> String {
    s.git.file(&s.fleet, "main", "deploy/app.yaml")
}

#[test]
fn the_service_acts_on_later_ticks_serves_http_survives_a_broken_reload_and_stops_on_sigterm() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace("interval: 5m", "interval: 1s");
    s.config.write("objects.yaml", &objects);
    let port = proc::free_port();
    let mut svc = Service::builder(&s.config).port(port).start();
    let pinned = |tag: &str| format!("{}/{}:{tag}", s.registry.host(), s.image);

    // The first pass commits 1.2.0, and the service is ready.
    svc.wait_for("the first commit", |_| {
        tag_in_file(&s).contains(&pinned("1.2.0"))
    });
    svc.wait_for("/readyz", |svc| {
        svc.get("/readyz").is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
    let (code, body) = svc.get("/healthz").expect("/healthz answers");
    assert_eq!(code, 200, "{body}");

    // A tag pushed later is picked up by a later tick: one more commit.
    s.registry.push_tags(&s.image, &["1.3.0"]);
    svc.wait_for("the 1.3.0 commit", |_| {
        tag_in_file(&s).contains(&pinned("1.3.0"))
    });
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 3, "{log:#?}");

    let (code, metrics) = svc.get("/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    let labels = "kind=\"ImageUpdateAutomation\",name=\"fleet\",namespace=\"default\"";
    assert!(
        metrics.contains(&format!(
            "gotk_reconcile_duration_seconds_bucket{{{labels},le=\"+Inf\"}}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("tagline_reconciles_total{kind=\"ImageUpdateAutomation\",result=\"ok\"}"),
        "{metrics}"
    );
    // tagline's own series: the tag count is the registry's own list (1.3.0 included).
    let listed: serde_json::Value = reqwest::blocking::get(format!(
        "http://{}/v2/{}/tags/list",
        s.registry.host(),
        s.image
    ))
    .and_then(|r| r.json())
    .expect("the registry lists its tags");
    let tags = listed["tags"].as_array().expect("tags").len();
    assert!(
        metrics.contains(&format!(
            "tagline_repository_tags{{namespace=\"default\",name=\"app\"}} {tags}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("tagline_scans_total{namespace=\"default\",name=\"app\",result=\"ok\"}"),
        "{metrics}"
    );
    let host = s.registry.host();
    assert!(
        metrics.lines().any(|l| l.starts_with(&format!(
            "tagline_registry_requests_total{{host=\"{host}\",status=\"200\"}} "
        ))),
        "{metrics}"
    );
    assert!(
        metrics.contains("tagline_pushes_total{namespace=\"default\",name=\"fleet\"} 2"),
        "{metrics}"
    );
    let (code, status) = svc.get("/api/v1/status").expect("/api/v1/status answers");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
    let policy = status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "ImagePolicy" && o["name"] == "app")
        .unwrap_or_else(|| panic!("no ImagePolicy in {status}"));
    assert_eq!(policy["result"], "ok", "{status}");

    // A broken edit, then SIGHUP: reported, and the old config keeps working.
    s.config
        .write("objects.yaml", "kind: ImagePolicy\nspec: [unclosed\n");
    svc.signal(libc::SIGHUP);
    svc.wait_for("the broken edit to be reported", |svc| {
        svc.log().contains("keeping the last good config")
    });
    assert!(svc.log().contains("objects.yaml"), "{}", svc.log());
    s.registry.push_tags(&s.image, &["1.4.0"]);
    svc.wait_for("the 1.4.0 commit under the old config", |_| {
        tag_in_file(&s).contains(&pinned("1.4.0"))
    });
    assert_eq!(s.git.log(&s.fleet, "main").len(), 4);

    // A good edit, without a signal: the changed file is noticed and the new range applies.
    s.config
        .write("objects.yaml", &objects.replace("'^1.0.0'", "'^2.0.0'"));
    svc.wait_for("the 2.0.0 commit under the new config", |_| {
        tag_in_file(&s).contains(&pinned("2.0.0"))
    });
    assert!(svc.log().contains("config reloaded"), "{}", svc.log());
    assert_eq!(s.git.log(&s.fleet, "main").len(), 5);

    // SIGTERM: exits 0.
    stop(&mut svc);
    // Never a partial push: the branch holds exactly the commits seen above.
    assert_eq!(s.git.log(&s.fleet, "main").len(), 5);
}

fn stop(svc: &mut Service) {
    svc.signal(libc::SIGTERM);
    stop_waiting(svc);
}

#[test]
fn a_restarted_service_with_the_same_state_repeats_no_work() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace("interval: 5m", "interval: 1s");
    s.config.write("objects.yaml", &objects);
    let state = proc::scratch_dir("service-state");
    let pinned = format!("{}/{}:1.2.0", s.registry.host(), s.image);

    let port = proc::free_port();
    let mut first = Service::builder(&s.config)
        .port(port)
        .state(state.path())
        .start();
    first.wait_for("the first commit", |_| tag_in_file(&s).contains(&pinned));
    stop(&mut first);
    assert!(first.log().contains("pushed commit"), "{}", first.log());
    let head = s.git.head(&s.fleet, "main");

    let port = proc::free_port();
    let mut second = Service::builder(&s.config)
        .port(port)
        .state(state.path())
        .start();
    second.wait_for("three passes after the restart", |svc| svc.passes() >= 3);
    assert_eq!(
        s.git.head(&s.fleet, "main"),
        head,
        "no commit after the restart"
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
    let log = second.log();
    assert!(
        log.contains("ImageUpdateAutomation default/fleet: no change since last reconciliation"),
        "{log}"
    );
    assert!(
        !log.contains("pushed commit"),
        "the restarted service pushed again:\n{log}"
    );
    stop(&mut second);
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let config = ConfigDir::new();
    config.write(
        "repo.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  namespace: default
spec:
  image: 127.0.0.1:9/app
  interval: 1s
  suspend: true
",
    );
    let port = proc::free_port();
    let mut svc = Service::builder(&config)
        .port(port)
        .args(&["--log-format", "json"])
        .start();
    svc.wait_for("the first pass", |svc| svc.passes() >= 1);
    config.write("broken.yaml", "kind: [\n");
    svc.wait_for("the broken edit to be reported", |svc| {
        svc.log().contains("keeping the last good config")
    });
    // An edit that parses but names an object with a bad field: the line names the object.
    config.write(
        "broken.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: bad
  namespace: default
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: 'not a range'
",
    );
    svc.wait_for("the bad policy to be reported", |svc| {
        svc.log().matches("keeping the last good config").count() >= 2
    });
    std::fs::remove_file(config.path().join("broken.yaml")).unwrap();
    svc.wait_for("the reload", |svc| svc.log().contains("config reloaded"));
    stop(&mut svc);
    let log = svc.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let outcome = lines
        .iter()
        .find(|v| v["kind"] == "ImageRepository")
        .unwrap_or_else(|| panic!("no outcome in {log}"));
    assert_eq!(outcome["namespace"], "default");
    assert_eq!(outcome["name"], "app");
    assert_eq!(outcome["result"], "skipped");
    assert_eq!(outcome["message"], "suspended");
    assert!(outcome["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let broken = lines
        .iter()
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in {log}"));
    assert!(
        broken["message"].as_str().unwrap().contains("broken.yaml"),
        "{log}"
    );
    // Every reload line names its object in fields of its own.
    let file = config.path().join("broken.yaml").display().to_string();
    assert_eq!(broken["file"], file.as_str(), "{broken}");
    assert!(
        broken.get("kind").is_none(),
        "no object in a file that does not parse"
    );
    let bad = lines
        .iter()
        .find(|v| v["level"] == "error" && v["kind"] == "ImagePolicy")
        .unwrap_or_else(|| panic!("no line naming the ImagePolicy in {log}"));
    assert_eq!(bad["namespace"], "default", "{bad}");
    assert_eq!(bad["name"], "bad", "{bad}");
    assert_eq!(bad["file"], file.as_str(), "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .ends_with("; keeping the last good config"),
        "{bad}"
    );
    let reloaded = lines
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("config reloaded"))
        })
        .unwrap_or_else(|| panic!("no reload line in {log}"));
    assert_eq!(reloaded["level"], "info");
    assert_eq!(
        reloaded["file"],
        config.path().display().to_string().as_str(),
        "{reloaded}"
    );
}

#[test]
fn sigterm_during_the_first_pass_lets_it_finish_and_exits_0() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let port = proc::free_port();
    let mut svc = Service::builder(&s.config).port(port).start();
    // The listener is bound after the signal handlers are installed and just before the
    // first pass starts: SIGTERM now lands before or during that pass.
    svc.wait_for("the listener", |_| proc::port_open(port));
    svc.signal(libc::SIGTERM);
    stop_waiting(&mut svc);
    // The pass in flight finished: its commit landed whole.
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 2, "{log:#?}\n{}", svc.log());
    assert!(
        tag_in_file(&s).contains(&format!("{}/{}:1.2.0", s.registry.host(), s.image)),
        "{}",
        svc.log()
    );
    assert!(svc.log().contains("pushed commit"), "{}", svc.log());
}

fn stop_waiting(svc: &mut Service) {
    let st = svc.wait_exit();
    assert_eq!(st.code(), Some(0), "{}", svc.log());
}

#[test]
fn an_automation_on_a_long_interval_runs_soon_after_its_policy_moves() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    // The repository is scanned every second; the automation's own interval is an hour.
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replacen("interval: 5m", "interval: 1s", 1)
        .replace("interval: 5m", "interval: 1h");
    s.config.write("objects.yaml", &objects);
    let port = proc::free_port();
    let mut svc = Service::builder(&s.config).port(port).start();
    let pinned = |tag: &str| format!("{}/{}:{tag}", s.registry.host(), s.image);
    svc.wait_for("the first commit", |_| {
        tag_in_file(&s).contains(&pinned("1.2.0"))
    });

    // Within the automation's hour: the new tag moves the policy, and the policy's move
    // runs the automation (the test gives up after a minute).
    s.registry.push_tags(&s.image, &["1.3.0"]);
    svc.wait_for("the 1.3.0 commit", |_| {
        tag_in_file(&s).contains(&pinned("1.3.0"))
    });
    assert_eq!(s.git.log(&s.fleet, "main").len(), 3);
    stop(&mut svc);
}
