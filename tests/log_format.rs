//! `tagline run --once --log-format json` writes JSON lines like the service does: one object
//! per line, each naming its object; the human format stays as it was.

mod common;
mod e2e_support;

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
