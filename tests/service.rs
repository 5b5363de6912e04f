//! `tagline run` without `--once` as a long-running service, end to end on real parts
//! (docker-registry, git http-backend): later ticks pick up new tags, HTTP endpoints answer,
//! a broken edit on SIGHUP keeps the old config, SIGTERM exits 0.

mod common;
mod e2e_support;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use e2e_support::*;

/// The service child process, killed when dropped (whatever the test's fate).
struct Service {
    child: Child,
    stderr: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Service {
    fn start(config: &ConfigDir, port: u16) -> Service {
        let scratch = proc::scratch_dir("service");
        let state = scratch.path().join("state");
        Service::start_with_state(config, port, &state, scratch, &[])
    }

    fn start_with_state(
        config: &ConfigDir,
        port: u16,
        state: &std::path::Path,
        scratch: tempfile::TempDir,
        extra: &[&str],
    ) -> Service {
        let stderr = scratch.path().join("stderr.log");
        let mut cmd = tagline();
        cmd.args(["run", "--config"])
            .arg(config.path())
            .arg("--state-dir")
            .arg(state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr log"));
        let child = cmd.spawn().expect("start tagline run");
        Service {
            child,
            stderr,
            _scratch: scratch,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits until `cond` holds, or fails with the service's log.
    fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&mut Service) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            assert!(
                self.running(),
                "service exited while waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; log:\n{}", self.log());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .ok()?;
    let code = resp.status().as_u16();
    Some((code, resp.text().ok()?))
}

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
    let mut svc = Service::start(&s.config, port);
    let pinned = |tag: &str| format!("{}/{}:{tag}", s.registry.host(), s.image);

    // The first pass commits 1.2.0, and the service is ready.
    svc.wait_for("the first commit", |_| {
        tag_in_file(&s).contains(&pinned("1.2.0"))
    });
    svc.wait_for("/readyz", |_| {
        get(port, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
    let (code, body) = get(port, "/healthz").expect("/healthz answers");
    assert_eq!(code, 200, "{body}");

    // A tag pushed later is picked up by a later tick: one more commit.
    s.registry.push_tags(&s.image, &["1.3.0"]);
    svc.wait_for("the 1.3.0 commit", |_| {
        tag_in_file(&s).contains(&pinned("1.3.0"))
    });
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 3, "{log:#?}");

    let (code, metrics) = get(port, "/metrics").expect("/metrics answers");
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
    let (code, status) = get(port, "/api/v1/status").expect("/api/v1/status answers");
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
    svc.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = svc.child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{}", svc.log());
    // Never a partial push: the branch holds exactly the commits seen above.
    assert_eq!(s.git.log(&s.fleet, "main").len(), 5);
}

fn passes(port: u16) -> u64 {
    get(port, "/api/v1/status")
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|v| v["passes"].as_u64())
        .unwrap_or(0)
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
    let mut first =
        Service::start_with_state(&s.config, port, state.path(), proc::scratch_dir("svc"), &[]);
    first.wait_for("the first commit", |_| tag_in_file(&s).contains(&pinned));
    stop(&mut first);
    assert!(first.log().contains("pushed commit"), "{}", first.log());
    let head = s.git.head(&s.fleet, "main");

    let port = proc::free_port();
    let mut second =
        Service::start_with_state(&s.config, port, state.path(), proc::scratch_dir("svc"), &[]);
    second.wait_for("three passes after the restart", |_| passes(port) >= 3);
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
    let scratch = proc::scratch_dir("svc");
    let state = scratch.path().join("state");
    let mut svc =
        Service::start_with_state(&config, port, &state, scratch, &["--log-format", "json"]);
    svc.wait_for("the first pass", |_| passes(port) >= 1);
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
    let mut svc = Service::start(&s.config, port);
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = svc.child.try_wait().expect("try_wait") {
            assert_eq!(st.code(), Some(0), "{}", svc.log());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let mut svc = Service::start(&s.config, port);
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
