//! `tagline run --once --log-format json` writes JSON lines like the service does: one object
//! per line, each naming its object; the human format stays as it was.

mod common;
mod e2e_support;
mod emulator;

use common::*;
use e2e_support::*;

fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{stderr}")))
        .collect()
}

#[test]
fn run_once_with_log_format_json_writes_one_object_per_line_naming_its_object() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let out = tagline()
        .args(["run", "--once", "--log-format", "json", "--config"])
        .arg(s.config.path())
        .output()
        .expect("run tagline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = json_lines(&stderr);
    for kind in ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"] {
        let line = lines
            .iter()
            .find(|v| v["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} line in {stderr}"));
        assert_eq!(line["namespace"], "default", "{line}");
        assert_eq!(line["result"], "ok", "{line}");
        assert_eq!(line["level"], "info", "{line}");
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert!(line["warnings"].is_array(), "{line}");
    }
    let automation = lines
        .iter()
        .find(|v| v["kind"] == "ImageUpdateAutomation")
        .unwrap();
    assert_eq!(automation["name"], "fleet");
    assert!(
        automation["message"]
            .as_str()
            .unwrap()
            .contains("pushed commit"),
        "{automation}"
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);

    // The same run in the human format: unchanged lines.
    let again = run_once(&s.config);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        line(&again, "ImageUpdateAutomation default/fleet").contains("no change"),
        "{}",
        again.stderr
    );
    assert!(again
        .stderr
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()));
}

#[test]
fn run_once_with_log_format_json_reports_a_broken_config_as_json_naming_the_file() {
    let config = ConfigDir::new();
    config.write("broken.yaml", "kind: ImagePolicy\nspec: [unclosed\n");
    let out = tagline()
        .args(["run", "--once", "--log-format", "json", "--config"])
        .arg(config.path())
        .output()
        .expect("run tagline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines = json_lines(&stderr);
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(l["level"], "error", "{l}");
        assert!(
            l["file"].as_str().unwrap().ends_with("broken.yaml"),
            "the file is a field of its own: {l}"
        );
        assert!(
            l["message"].as_str().unwrap().contains("broken.yaml"),
            "{l}"
        );
    }

    // Human format: as before.
    let text = tagline()
        .args(["run", "--once", "--config"])
        .arg(config.path())
        .output()
        .expect("run tagline");
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.starts_with("tagline: config: "), "{stderr}");
    assert!(stderr.contains("broken.yaml"), "{stderr}");
}

/// A config of `n` suspended ImageRepositories, each with a policy: a run touches no network
/// and has 2n objects to get through.
fn many_objects(n: usize) -> ConfigDir {
    let config = ConfigDir::new();
    let mut yaml = String::new();
    for i in 0..n {
        yaml += &format!(
            "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app{i}
  namespace: default
spec:
  image: 127.0.0.1:9/app{i}
  interval: 5m
  suspend: true
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app{i}
  namespace: default
spec:
  imageRepositoryRef:
    name: app{i}
  policy:
    semver:
      range: '>=1.0.0'
"
        );
    }
    config.write("objects.yaml", &yaml);
    config
}

/// Standard error is a pipe here (as in every test): no progress bar, not a byte of it, only
/// the outcome lines.
#[test]
fn run_once_draws_no_progress_bar_into_a_pipe() {
    let config = many_objects(20);
    let out = tagline()
        .args(["run", "--once", "--config"])
        .arg(config.path())
        .output()
        .expect("run tagline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the policies have no tags: {stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    assert!(!stderr.contains("objects"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 40, "one line per object:\n{stderr}");
    for l in lines {
        assert!(
            l.starts_with("ImageRepository default/app")
                || l.starts_with("ImagePolicy default/app"),
            "{l:?}"
        );
    }
}

/// Standard error is a terminal (a pseudo-terminal the test reads): the bar is drawn, counts
/// the objects, and is cleared before the outcome lines.
#[test]
fn run_once_draws_a_progress_bar_on_a_terminal() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let config = many_objects(20);
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors this test then owns.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: each descriptor is owned by exactly one File from here on.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let mut child = tagline()
        .args(["run", "--once", "--config"])
        .arg(config.path())
        .env("TERM", "xterm")
        .stdout(std::process::Stdio::null())
        .stderr(slave)
        .spawn()
        .expect("run tagline");
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Ends with EIO once the child, the last holder of the terminal, exits.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
    let screen = reader.join().expect("reader");
    assert!(screen.contains("/40 objects"), "no bar drawn: {screen:?}");
    let last_bar = screen.rfind("/40 objects").unwrap();
    let first_line = screen
        .find("ImageRepository default/app0: ")
        .expect("outcome lines");
    assert!(
        last_bar < first_line,
        "the bar is gone before the lines: {screen:?}"
    );
}

/// The first tag list request answers 503 (as a registry behind a load balancer does while a
/// backend restarts, e.g. Harbor during an upgrade); every later one lists the tags.
fn unavailable_once() -> impl Fn(&emulator::Request) -> emulator::Response + Send + Sync {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    move |r: &emulator::Request| {
        if !r.path.ends_with("/tags/list") {
            return emulator::Response::json(200, "{}");
        }
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return emulator::Response::json(
                503,
                r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
            );
        }
        emulator::Response::json(200, r#"{"name":"team/app","tags":["1.0.0","1.2.0"]}"#)
    }
}

/// Every other tag list request answers 503, the ones between list the tags: each run's
/// first scan is retried once, however many runs share the registry.
fn unavailable_every_other_time() -> impl Fn(&emulator::Request) -> emulator::Response + Send + Sync
{
    let calls = std::sync::atomic::AtomicUsize::new(0);
    move |r: &emulator::Request| {
        if !r.path.ends_with("/tags/list") {
            return emulator::Response::json(200, "{}");
        }
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2 == 0 {
            return emulator::Response::json(
                503,
                r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
            );
        }
        emulator::Response::json(200, r#"{"name":"team/app","tags":["1.0.0","1.2.0"]}"#)
    }
}

/// Runs `tagline run --once` with the pipeline's own debug lines on, in JSON or not.
async fn run_logging(config: &ConfigDir, state: &std::path::Path, json: bool) -> (i32, String) {
    run_filtered(config, state, json, "tagline=debug").await
}

/// Runs `tagline run --once` with `TAGLINE_LOG=filter`, in JSON or not.
async fn run_filtered(
    config: &ConfigDir,
    state: &std::path::Path,
    json: bool,
    filter: &str,
) -> (i32, String) {
    let mut cmd = tagline();
    cmd.env("TAGLINE_LOG", filter)
        .args(["run", "--once", "--state-dir"])
        .arg(state)
        .arg("--config")
        .arg(config.path());
    if json {
        cmd.args(["--log-format", "json"]);
    }
    // The emulator answers on this test's runtime: the run waits off it.
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run tagline"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

/// Damages the clone cache under `state` and moves the branch back, so that the next run
/// has work to do in a fresh clone.
fn damage_cache_and_revert(state: &std::path::Path, git: &GitServer, fleet: &str, case: &str) {
    let caches: Vec<_> = std::fs::read_dir(state.join("git"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(caches.len(), 1, "{caches:?}");
    std::fs::write(caches[0].join(".git/HEAD"), "garbage\n").unwrap();
    let content = git
        .file(fleet, "main", "deploy/app.yaml")
        .replace(":1.2.0", ":1.0.0");
    git.commit(fleet, "main", &[("deploy/app.yaml", &content)], case);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanner_and_git_lines_name_the_object_they_were_logged_for() {
    let registry = emulator::Emulator::start(unavailable_once()).await;
    let git = GitServer::start(GitOptions::default());
    let fleet = unique_name("fleet");
    let deployment = DEPLOYMENT
        .replace("REGISTRY", &registry.host())
        .replace("IMAGE", "team/app");
    git.create_repo(&fleet, "main", &[("deploy/app.yaml", &deployment)]);
    let config = ConfigDir::new();
    let objects = format!(
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
spec:
  image: {host}/team/app
  interval: 5m
  insecure: true
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: '^1.0.0'
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: fleet
spec:
  url: {url}
  interval: 1m
  ref:
    branch: main
  secretRef:
    name: git-auth
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: fleet
spec:
  interval: 5m
  sourceRef:
    kind: GitRepository
    name: fleet
  git:
    commit:
      author:
        name: Tagline Bot
        email: bot@example.com
  update:
    path: ./deploy
    strategy: Setters
",
        host = registry.host(),
        url = git.url(&fleet),
    );
    config.write("objects.yaml", &objects);
    config.write("git-secret.yaml", &git.auth_secret_yaml("git-auth"));
    let state = tempfile::tempdir().unwrap();

    // First run: the scan is retried after the 503; the retry line names the repository.
    let (code, stderr) = run_logging(&config, state.path(), true).await;
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stderr);
    let retry = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("retrying"))
        })
        .unwrap_or_else(|| panic!("no retry line in {stderr}"));
    assert_eq!(retry["level"], "debug", "{retry}");
    assert_eq!(retry["kind"], "ImageRepository", "{retry}");
    assert_eq!(retry["namespace"], "default", "{retry}");
    assert_eq!(retry["name"], "app", "{retry}");
    assert!(
        retry["repository"] == "team/app",
        "its own fields stay: {retry}"
    );
    // The outcome lines: one per object, as before.
    let outcomes: Vec<_> = lines.iter().filter(|l| l.get("result").is_some()).collect();
    assert_eq!(outcomes.len(), 3, "{stderr}");
    assert!(git
        .file(&fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));

    // Second run, with the clone cache damaged: the line about it names the automation.
    damage_cache_and_revert(state.path(), git, &fleet, "revert for the JSON run");
    let (code, stderr) = run_logging(&config, state.path(), true).await;
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stderr);
    let cache = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("clone cache"))
        })
        .unwrap_or_else(|| panic!("no clone cache line in {stderr}"));
    assert_eq!(cache["kind"], "ImageUpdateAutomation", "{cache}");
    assert_eq!(cache["namespace"], "default", "{cache}");
    assert_eq!(cache["name"], "fleet", "{cache}");
    assert!(cache["dir"].is_string(), "{cache}");
    // A line that names its object itself (the outcome lines) carries each field once.
    for line in stderr.lines() {
        assert!(line.matches("\"kind\":").count() <= 1, "{line}");
    }

    // The human format names the object too; the outcome lines stay as they were.
    damage_cache_and_revert(state.path(), git, &fleet, "revert for the human run");
    let (code, stderr) = run_logging(&config, state.path(), false).await;
    assert_eq!(code, 0, "{stderr}");
    let cache = stderr
        .lines()
        .find(|l| l.contains("clone cache"))
        .unwrap_or_else(|| panic!("no clone cache line in {stderr}"));
    assert!(cache.contains(" INFO "), "{cache}");
    assert!(
        cache.contains("ImageUpdateAutomation default/fleet: the clone cache"),
        "{cache}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("ImageUpdateAutomation default/fleet: pushed commit")),
        "{stderr}"
    );
}

/// A filter that keeps only the scanner's lines (`TAGLINE_LOG=tagline::scanner=debug`) still
/// lets them name their object, and lets nothing else through: no line of the pipeline's own,
/// no line for the span that names the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanner_lines_name_their_object_under_a_filter_for_the_scanner_alone() {
    let registry = emulator::Emulator::start(unavailable_every_other_time()).await;
    let config = ConfigDir::new();
    config.write(
        "objects.yaml",
        &format!(
            "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  namespace: team
spec:
  image: {host}/team/app
  interval: 5m
  insecure: true
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
  namespace: team
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: '^1.0.0'
",
            host = registry.host()
        ),
    );

    // JSON: the retry line carries the object's fields next to its own.
    let state = tempfile::tempdir().unwrap();
    let (code, stderr) = run_filtered(&config, state.path(), true, "tagline::scanner=debug").await;
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stderr);
    let retry = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("retrying"))
        })
        .unwrap_or_else(|| panic!("no retry line in {stderr}"));
    assert_eq!(retry["level"], "debug", "{retry}");
    assert_eq!(retry["kind"], "ImageRepository", "{retry}");
    assert_eq!(retry["namespace"], "team", "{retry}");
    assert_eq!(retry["name"], "app", "{retry}");
    assert_eq!(retry["repository"], "team/app", "{retry}");
    assert_eq!(retry["attempt"], "1", "{retry}");
    // Besides the outcome lines (one per object), the scanner's debug lines alone.
    let (outcomes, others): (Vec<_>, Vec<_>) =
        lines.iter().partition(|l| l.get("result").is_some());
    assert_eq!(outcomes.len(), 2, "{stderr}");
    for l in others {
        assert_eq!(l["level"], "debug", "{l}");
        assert_eq!(l["registry"], registry.host(), "{l}");
    }

    // Human: `<time> DEBUG tagline::scanner::…: ImageRepository team/app: retrying…`.
    let state = tempfile::tempdir().unwrap();
    let (code, stderr) = run_filtered(&config, state.path(), false, "tagline::scanner=debug").await;
    assert_eq!(code, 0, "{stderr}");
    let retry = stderr
        .lines()
        .find(|l| l.contains("retrying"))
        .unwrap_or_else(|| panic!("no retry line in {stderr}"));
    assert!(
        retry.contains(" DEBUG tagline::scanner::client: ImageRepository team/app: retrying: "),
        "{retry}"
    );
    assert!(retry.contains(" repository=team/app"), "{retry}");
    for l in stderr.lines() {
        if l.starts_with("ImageRepository team/app: ") || l.starts_with("ImagePolicy team/app: ") {
            continue;
        }
        let target = l.split_whitespace().nth(2).unwrap_or_default();
        assert!(target.starts_with("tagline::scanner"), "{l}\n{stderr}");
    }
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("ImageRepository team/app: ")
                || l.starts_with("ImagePolicy team/app: "))
            .count(),
        2,
        "{stderr}"
    );
}
