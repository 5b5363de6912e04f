//! Restart persistence of scans, against the real binary and a real registry whose access log
//! says which requests reached it: a service killed with SIGKILL after its first pass does not
//! rescan before the interval when restarted (and keeps its latest tag); a cold or missing state
//! file scans; `run --once` with the registry gone uses the stored list.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;

fn objects(registry: &Registry, repo: &str, interval: &str) -> String {
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
spec:
  image: {image}
  interval: {interval}
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
      range: '>=1.0.0'
",
        image = registry.image(repo)
    )
}

fn tag_lists(registry: &Registry, repo: &str) -> usize {
    let path = format!("/v2/{repo}/tags/list");
    registry
        .requests()
        .iter()
        .filter(|r| r.contains(&path))
        .count()
}

/// `tagline run` as a service on `state`, SIGKILLed when dropped.
fn start(config: &ConfigDir, state: &Path) -> Service {
    Service::builder(config)
        .state(state)
        .without_listen()
        .start()
}

/// Waits for the first pass's policy line (printed after the pass's state is saved).
fn wait_for_pass(service: &mut Service) -> String {
    service.wait_for("the first pass", |s| {
        s.log().contains("ImagePolicy default/app:")
    });
    service.log()
}

fn run_once(config: &ConfigDir, state: &Path) -> Output {
    tagline()
        .args(["run", "--once", "--config"])
        .arg(config.path())
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run tagline run --once")
}

#[test]
fn a_killed_service_restarts_without_rescanning_or_downgrading_and_a_cold_state_scans() {
    let registry = Registry::start_owned_with_access_log(RegistryOptions::default());
    let repo = unique_name("restart/app");
    registry.push_tags(&repo, &["1.0.0", "1.1.0"]);
    let config = ConfigDir::new();
    config.write("objects.yaml", &objects(&registry, &repo, "1h"));
    let state = proc::scratch_dir("state");
    let old = format!("{}:1.1.0", registry.image(&repo));
    let new = format!("{}:1.2.0", registry.image(&repo));

    let mut first = start(&config, state.path());
    let log = wait_for_pass(&mut first);
    assert!(
        log.contains("ImageRepository default/app: scanned 2 tags"),
        "{log}"
    );
    assert!(log.contains(&format!("latest is {old}")), "{log}");
    first.kill();
    assert_eq!(tag_lists(&registry, &repo), 1);

    registry.push_tags(&repo, &["1.2.0"]);
    let before = registry.requests().len();
    let mut second = start(&config, state.path());
    let log = wait_for_pass(&mut second);
    second.kill();
    assert!(
        log.contains("ImageRepository default/app: 2 tags from the scan"),
        "{log}"
    );
    assert!(log.contains(&format!("latest is {old}")), "{log}");
    assert!(!log.contains("1.2.0") && !log.contains("1.0.0"), "{log}");
    let after: Vec<String> = registry.requests().split_off(before);
    assert!(
        after.iter().all(|r| !r.contains("/tags/list")),
        "the restarted service listed tags: {after:?}"
    );

    // A missing state file: the service scans at once and moves to the newer tag.
    std::fs::remove_file(state.path().join("state.json")).expect("remove state.json");
    let mut third = start(&config, state.path());
    let log = wait_for_pass(&mut third);
    third.kill();
    assert!(log.contains("scanned 3 tags"), "{log}");
    assert!(log.contains(&format!("latest is {new}")), "{log}");
    assert_eq!(tag_lists(&registry, &repo), 2);

    // A cold state directory (a new, empty one): the same.
    let cold = proc::scratch_dir("cold-state");
    let out = run_once(&config, cold.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("scanned 3 tags") && stderr.contains(&new),
        "{stderr}"
    );
    assert_eq!(tag_lists(&registry, &repo), 3);
}

#[test]
fn run_once_twice_uses_the_stored_list_when_the_registry_is_gone() {
    let registry = Registry::start_owned_with_access_log(RegistryOptions::default());
    let repo = unique_name("restart/once");
    registry.push_tags(&repo, &["2.0.0", "2.3.1", "2.10.0"]);
    let latest = format!("{}:2.10.0", registry.image(&repo));
    let state = proc::scratch_dir("state");

    // Within the interval: no request at all, the stored list stands, exit 0.
    let config = ConfigDir::new();
    config.write("objects.yaml", &objects(&registry, &repo, "1h"));
    let out = run_once(&config, state.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("latest is {latest}")), "{stderr}");
    registry.stop();
    let out = run_once(&config, state.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ImageRepository default/app: 3 tags from the scan"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("latest is {latest}")), "{stderr}");

    // Past the interval: the scan fails (registry gone), the policy still answers from the
    // stored list, and the run reports the failure.
    let config = ConfigDir::new();
    config.write("objects.yaml", &objects(&registry, &repo, "1s"));
    std::thread::sleep(Duration::from_millis(1100));
    let out = run_once(&config, state.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ImageRepository default/app: failed: connecting to"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("ImagePolicy default/app: latest is {latest}")),
        "{stderr}"
    );
}
