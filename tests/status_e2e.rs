//! `tagline status` end to end on real parts (Debian's docker-registry, git http-backend):
//! after `run --once` the status shows Flux's fields and the table's columns; a failing
//! policy shows as the last error while Git keeps the old value; a running service's
//! `/api/v1/status` read with `--server` gives the same table as `--config --state-dir`.

mod common;
mod e2e_support;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use e2e_support::*;

fn status(args: &[&str]) -> String {
    let out = tagline()
        .arg("status")
        .args(args)
        .output()
        .expect("run tagline status");
    assert!(
        out.status.success(),
        "tagline status {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn offline(config: &ConfigDir, state: &Path, output: &str) -> String {
    status(&[
        "--config",
        config.path().to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "-o",
        output,
    ])
}

fn item<'a>(doc: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["kind"] == kind && i["metadata"]["name"].is_string())
        .unwrap_or_else(|| panic!("no {kind} in {doc:#}"))
}

/// The table's row for `default/app`, split into its columns (the last error joined back).
fn row(table: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with("default/app "))
        .unwrap_or_else(|| panic!("no row for default/app in:\n{table}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut cols: Vec<String> = words[..8].iter().map(|w| w.to_string()).collect();
    cols.push(words[8..].join(" "));
    cols
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn status_after_runs_shows_fluxs_fields_and_the_table() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let scratch = proc::scratch_dir("status");
    let state = scratch.path().join("state");
    let before = Utc::now() - chrono::TimeDelta::seconds(1);
    let run = run_with_state(&s.config, &state);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let head = s.git.head(&s.fleet, "main").expect("main");
    assert_ne!(head, s.initial_head, "the run pushed");

    let doc: serde_json::Value =
        serde_json::from_str(&offline(&s.config, &state, "json")).expect("JSON");
    let repo = &item(&doc, "ImageRepository")["status"];
    assert_eq!(
        repo["canonicalImageName"],
        format!("{}/{}", s.registry.host(), s.image)
    );
    assert_eq!(repo["lastScanResult"]["tagCount"], 4);
    assert_eq!(
        repo["lastScanResult"]["latestTags"],
        serde_json::json!(["2.0.0", "1.2.0", "1.1.0", "1.0.0"])
    );
    assert!(time(repo["lastScanResult"]["scanTime"].as_str().unwrap()) >= before);
    assert_eq!(
        repo["observedExclusionList"],
        serde_json::json!(["^.*\\.sig$"])
    );
    assert_eq!(repo["conditions"][0]["type"], "Ready");
    assert_eq!(repo["conditions"][0]["status"], "True");
    assert_eq!(repo["conditions"][0]["reason"], "Succeeded");

    let policy = &item(&doc, "ImagePolicy")["status"];
    let name = format!("{}/{}", s.registry.host(), s.image);
    assert_eq!(
        policy["latestRef"],
        serde_json::json!({"name": name, "tag": "1.2.0"})
    );
    assert_eq!(policy["conditions"][0]["reason"], "Succeeded");
    assert_eq!(
        policy["conditions"][0]["message"],
        format!("Latest image tag for {name} resolved to 1.2.0")
    );

    let auto = &item(&doc, "ImageUpdateAutomation")["status"];
    assert_eq!(
        auto["lastPushCommit"], head,
        "the full SHA of the pushed commit"
    );
    assert_eq!(auto["observedSourceRevision"], format!("main@sha1:{head}"));
    assert_eq!(auto["observedPolicies"]["app"]["tag"], "1.2.0");
    let pushed = time(auto["lastPushTime"].as_str().unwrap());
    assert!(pushed >= before);
    let ran = time(auto["lastAutomationRunTime"].as_str().unwrap());
    assert_eq!(auto["conditions"][0]["status"], "True");

    let table = offline(&s.config, &state, "table");
    assert!(table.starts_with("POLICY "), "{table}");
    let cols = row(&table);
    assert_eq!(cols[1], name);
    assert_eq!(
        cols[2..5],
        ["1.2.0", "1.2.0", "2.0.0"],
        "in Git, latest, newest"
    );
    let last_scan = time(&cols[5]);
    // The next scan is the service's: 5m less the repository's fixed jitter (at most 5%).
    let wait = (time(&cols[6]) - last_scan).num_seconds();
    assert!(
        (285..=300).contains(&wait),
        "next scan {wait}s after the last"
    );
    assert_eq!(cols[7], "-", "docker-registry sends no rate-limit headers");
    assert_eq!(cols[8], "-", "no error");

    // A policy that allows nothing: it fails, keeps its latest, Git keeps 1.2.0.
    s.config.write(
        "objects.yaml",
        &objects(s.registry, s.git, &s.image, &s.fleet, "^9.0.0"),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let run = run_with_state(&s.config, &state);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc: serde_json::Value =
        serde_json::from_str(&offline(&s.config, &state, "json")).expect("JSON");
    let policy = &item(&doc, "ImagePolicy")["status"];
    assert_eq!(policy["conditions"][0]["status"], "False");
    assert_eq!(policy["conditions"][0]["reason"], "Failure");
    assert_eq!(policy["latestRef"]["tag"], "1.2.0", "kept on failure");
    let auto = &item(&doc, "ImageUpdateAutomation")["status"];
    assert_eq!(auto["lastPushCommit"], head);
    assert_eq!(time(auto["lastPushTime"].as_str().unwrap()), pushed);
    assert!(time(auto["lastAutomationRunTime"].as_str().unwrap()) > ran);
    let cols = row(&offline(&s.config, &state, "table"));
    assert_eq!(cols[2..5], ["1.2.0", "1.2.0", "2.0.0"]);
    assert!(
        cols[8].starts_with("ImagePolicy default/app: "),
        "last error: {cols:?}"
    );

    // The service serves the same statuses; --server reads them.
    let port = proc::free_port();
    let mut service = Service::builder(&s.config).state(&state).port(port).start();
    let server = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no pass served in time");
        assert!(service.running(), "service exited:\n{}", service.log());
        let out = tagline()
            .args(["status", "--server", &server, "-o", "json"])
            .output()
            .unwrap();
        if out.status.success() {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if doc["passes"].as_u64().unwrap_or(0) >= 1 {
                let repo = &item(&doc, "ImageRepository")["status"];
                assert_eq!(repo["lastScanResult"]["tagCount"], 4);
                assert_eq!(
                    item(&doc, "ImagePolicy")["status"]["latestRef"]["tag"],
                    "1.2.0"
                );
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The state is saved right after the pass: the two views agree once it is.
    let via_server = status(&["--server", &server]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while offline(&s.config, &state, "table") != via_server {
        assert!(
            Instant::now() < deadline,
            "--server and --config differ:\n{via_server}\n{}",
            offline(&s.config, &state, "table")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(row(&via_server)[2..5], ["1.2.0", "1.2.0", "2.0.0"]);
}

/// Review-branch mode (push branch ≠ checkout branch): Flux's `lastPushCommit` is the full
/// SHA of the commit on the review branch; it used to be the 7 hex digits of the outcome
/// line, since no short-circuit record holds the full one in this mode.
#[test]
fn last_push_commit_is_the_full_sha_in_review_branch_mode() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    s.config.write(
        "objects.yaml",
        &objects_with(
            s.registry,
            s.git,
            &s.image,
            &s.fleet,
            "^1.0.0",
            &Extra {
                git: "    push:\n      branch: image-updates\n".into(),
                ..Extra::default()
            },
        ),
    );
    let scratch = proc::scratch_dir("status-review");
    let state = scratch.path().join("state");
    let run = run_with_state(&s.config, &state);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        s.git.head(&s.fleet, "main").as_deref(),
        Some(s.initial_head.as_str()),
        "main is untouched"
    );
    let review = s
        .git
        .head(&s.fleet, "image-updates")
        .expect("review branch");
    assert_eq!(review.len(), 40);
    let doc: serde_json::Value =
        serde_json::from_str(&offline(&s.config, &state, "json")).expect("JSON");
    let auto = &item(&doc, "ImageUpdateAutomation")["status"];
    assert_eq!(auto["lastPushCommit"], review, "{auto:#}");
    assert_eq!(auto["conditions"][0]["reason"], "Succeeded");
}

#[test]
fn status_without_config_or_server_is_a_usage_error() {
    let out = tagline().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let config = ConfigDir::new();
    let out = tagline()
        .args(["status", "--server", "http://127.0.0.1:9", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--server and --config conflict");
}
