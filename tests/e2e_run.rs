//! `tagline run --once` end to end on real parts: Debian's docker-registry and git
//! http-backend behind lighttpd, both on 127.0.0.1, started once for this test binary.

mod common;
mod e2e_support;

use common::*;
use e2e_support::*;

fn assert_updates_once(s: &Setup) {
    let first = run_once(&s.config);
    assert_eq!(first.code, 0, "stderr:\n{}", first.stderr);
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 2, "exactly one new commit: {log:#?}");
    let commit = &log[0];
    assert_eq!(commit.parents, vec![s.initial_head.clone()]);
    assert_eq!(commit.author_name, "Tagline Bot");
    assert_eq!(commit.author_email, "bot@example.com");
    assert_eq!(commit.committer_email, "bot@example.com");
    assert_eq!(commit.message.trim_end(), "Bump images for default/fleet");

    // The only change is 1.0.0 -> 1.2.0 on the marked line.
    let before = DEPLOYMENT
        .replace("REGISTRY", s.registry.host())
        .replace("IMAGE", &s.image);
    let after = before.replace(
        &format!("{}/{}:1.0.0", s.registry.host(), s.image),
        &format!("{}/{}:1.2.0", s.registry.host(), s.image),
    );
    assert_ne!(before, after);
    assert_eq!(s.git.file(&s.fleet, "main", "deploy/app.yaml"), after);
    let diff = s.git.diff(&s.fleet, &s.initial_head, &commit.sha);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed.len(), 2, "one line out, one line in:\n{diff}");
    assert!(changed[0].ends_with(&format!(
        "{}:1.0.0 # {{\"$imagepolicy\": \"default:app\"}}",
        s.image
    )));
    assert!(changed[1].ends_with(&format!(
        "{}:1.2.0 # {{\"$imagepolicy\": \"default:app\"}}",
        s.image
    )));

    let automation = line(&first, "ImageUpdateAutomation default/fleet");
    assert!(
        automation.contains(&format!("pushed commit {}", &commit.sha[..7])),
        "{automation}"
    );
    assert!(
        automation.contains("app.yaml: ") && automation.contains(":1.0.0 -> "),
        "{automation}"
    );
    let policy = line(&first, "ImagePolicy default/app");
    assert!(
        policy.ends_with(&format!("{}/{}:1.2.0", s.registry.host(), s.image)),
        "{policy}"
    );

    // Nothing new: no commit, success.
    let second = run_once(&s.config);
    assert_eq!(second.code, 0, "stderr:\n{}", second.stderr);
    assert_eq!(
        s.git.log(&s.fleet, "main").len(),
        2,
        "a second run adds no commit"
    );
    assert!(line(&second, "ImageUpdateAutomation default/fleet").contains("no changes"));
}

#[test]
fn plain_registry_and_git_server() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    assert_updates_once(&s);
}

#[test]
fn basic_auth_on_both_and_registry_behind_tls() {
    let s = setup(
        Registry::start(RegistryOptions {
            htpasswd: Some(("reguser", "regpass")),
            tls: true,
            ..Default::default()
        }),
        GitServer::start(GitOptions {
            basic_auth: Some(("gituser", "gitpass")),
            ..Default::default()
        }),
    );
    assert_updates_once(&s);
}

fn auth_setup() -> Setup {
    setup(
        Registry::start(RegistryOptions {
            htpasswd: Some(("reguser", "regpass")),
            ..Default::default()
        }),
        GitServer::start(GitOptions {
            basic_auth: Some(("gituser", "gitpass")),
            ..Default::default()
        }),
    )
}

/// Runs tagline on a broken setup and checks: non-zero exit, the failing object's line says
/// `expected`, no secret in the output, and the Git repository is untouched.
fn assert_fails_cleanly(s: &Setup, object: &str, expected: &str) -> Run {
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "stderr:\n{}", run.stderr);
    let l = if object.is_empty() {
        run.stderr.lines().next().unwrap_or_default()
    } else {
        line(&run, object)
    };
    assert!(
        l.contains(expected),
        "expected '{expected}' in: {l}\nall:\n{}",
        run.stderr
    );
    for secret in ["regpass", "gitpass", "wrongpass"] {
        assert!(
            !run.stderr.contains(secret),
            "secret leaked:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        s.git.head(&s.fleet, "main").as_deref(),
        Some(s.initial_head.as_str())
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
    run
}

#[test]
fn yaml_syntax_error_in_the_config() {
    let s = auth_setup();
    s.config
        .write("broken.yaml", "apiVersion: v1\nkind: [unclosed\n");
    let run = assert_fails_cleanly(&s, "", "broken.yaml (document 1): invalid YAML");
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn policy_naming_a_missing_image_repository() {
    let s = auth_setup();
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0").replace(
        "  imageRepositoryRef:\n    name: app",
        "  imageRepositoryRef:\n    name: nothere",
    );
    s.config.write("objects.yaml", &objects);
    assert_fails_cleanly(
        &s,
        "ImagePolicy default/app",
        "ImageRepository default/nothere not found",
    );
}

#[test]
fn secret_that_does_not_exist() {
    let s = auth_setup();
    std::fs::remove_file(s.config.path().join("registry-secret.yaml")).unwrap();
    assert_fails_cleanly(
        &s,
        "ImageRepository default/app",
        "Secret default/regcred not found",
    );
}

#[test]
fn wrong_registry_credentials() {
    let s = auth_setup();
    let json = format!(
        r#"{{"auths":{{"{}":{{"username":"reguser","password":"wrongpass"}}}}}}"#,
        s.registry.host()
    );
    s.config.write(
        "registry-secret.yaml",
        &secret(
            "regcred",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", &json)],
        ),
    );
    let run = assert_fails_cleanly(&s, "ImageRepository default/app", "authentication failed");
    assert!(line(&run, "ImagePolicy default/app").contains("failed"));
}

#[test]
fn wrong_git_credentials() {
    let s = auth_setup();
    s.config.write(
        "git-secret.yaml",
        &secret(
            "git-auth",
            "Opaque",
            &[("username", "gituser"), ("password", "wrongpass")],
        ),
    );
    let run = assert_fails_cleanly(
        &s,
        "ImageUpdateAutomation default/fleet",
        "authentication failed",
    );
    // The registry side still worked: the policy elected its tag.
    assert!(line(&run, "ImagePolicy default/app").contains(":1.2.0"));
}

#[test]
fn unreachable_registry() {
    let s = auth_setup();
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace(s.registry.host(), &format!("127.0.0.1:{port}"));
    s.config.write("objects.yaml", &objects);
    assert_fails_cleanly(
        &s,
        "ImageRepository default/app",
        &format!("127.0.0.1:{port}"),
    );
}

#[test]
fn registry_that_does_not_trust_us_without_the_ca() {
    let s = setup(
        Registry::start(RegistryOptions {
            htpasswd: Some(("reguser", "regpass")),
            tls: true,
            ..Default::default()
        }),
        GitServer::start(GitOptions::default()),
    );
    std::fs::remove_file(s.config.path().join("registry-ca.yaml")).unwrap();
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace("  certSecretRef:\n    name: registry-ca\n", "");
    s.config.write("objects.yaml", &objects);
    assert_fails_cleanly(&s, "ImageRepository default/app", "certificate");
}

#[test]
fn state_dir_keeps_fresh_scans_and_the_last_good_list() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let state = tempfile::tempdir().unwrap();
    let first = run_with_state(&s.config, state.path());
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);

    // A new tag, but the scan is younger than its 5m interval: not scanned again.
    s.registry.push_tags(&s.image, &["1.3.0"]);
    let second = run_with_state(&s.config, state.path());
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        line(&second, "ImageRepository default/app").contains("4 tags from the scan"),
        "{}",
        second.stderr
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
    // Neither the branch nor the policy moved: a ref listing, no clone.
    assert!(
        line(&second, "ImageUpdateAutomation default/fleet")
            .ends_with("no change since last reconciliation"),
        "{}",
        second.stderr
    );

    // Someone else commits: the branch moved, so the automation looks again (and finds
    // nothing to change).
    s.git
        .commit(&s.fleet, "main", &[("NOTES.md", "notes\n")], "notes");
    let moved = run_with_state(&s.config, state.path());
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert!(
        line(&moved, "ImageUpdateAutomation default/fleet").contains("no changes on main"),
        "{}",
        moved.stderr
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 3);

    // Interval over: the new tag is seen and lands.
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace("interval: 5m\n  insecure", "interval: 1ms\n  insecure");
    s.config.write("objects.yaml", &objects);
    let third = run_with_state(&s.config, state.path());
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.3.0 #"));

    // The scan starts failing (its certSecretRef names a Secret that does not exist): the
    // policy keeps choosing from the last good list, nothing is downgraded or committed,
    // and the run reports the failure.
    s.config.write(
        "objects.yaml",
        &objects.replace(
            "insecure: true",
            "insecure: true\n  certSecretRef:\n    name: no-such-secret",
        ),
    );
    let fourth = run_with_state(&s.config, state.path());
    assert_ne!(fourth.code, 0, "{}", fourth.stderr);
    assert!(line(&fourth, "ImageRepository default/app").contains("failed"));
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 4, "{}\n{log:#?}", fourth.stderr);
}

#[test]
fn plan_shows_the_diff_and_pushes_nothing() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let out = tagline()
        .args(["plan", "--config"])
        .arg(s.config.path())
        .output()
        .expect("run tagline plan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let old = format!(
        "-          image: {}/{}:1.0.0 # {{\"$imagepolicy\": \"default:app\"}}",
        s.registry.host(),
        s.image
    );
    let new = format!(
        "+          image: {}/{}:1.2.0 # {{\"$imagepolicy\": \"default:app\"}}",
        s.registry.host(),
        s.image
    );
    assert!(stdout.contains(&old) && stdout.contains(&new), "{stdout}");
    assert!(stdout.contains("app.yaml"), "{stdout}");
    assert!(stderr.contains("would commit to main"), "{stderr}");
    assert_eq!(
        s.git.head(&s.fleet, "main").as_deref(),
        Some(s.initial_head.as_str())
    );
}

#[test]
fn git_repository_ignore_keeps_files_out() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0").replace(
        "  interval: 1m\n  ref:",
        "  interval: 1m\n  ignore: |\n    # not ours to change\n    deploy/app.yaml\n  ref:",
    );
    assert!(objects.contains("deploy/app.yaml"));
    s.config.write("objects.yaml", &objects);
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        line(&run, "ImageUpdateAutomation default/fleet").contains("no changes"),
        "{}",
        run.stderr
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
}
