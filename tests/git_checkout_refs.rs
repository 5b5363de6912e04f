//! `git.checkout.ref` by semver, name and commit, and the clone cache in the state directory,
//! end to end: the real tagline binary against the real registry and git http-backend.

mod common;
mod e2e_support;

use common::*;
use e2e_support::*;

fn plain() -> Setup {
    setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    )
}

fn configure(s: &Setup, git: &str) {
    s.config.write(
        "objects.yaml",
        &objects_with(
            s.registry,
            s.git,
            &s.image,
            &s.fleet,
            "^1.0.0",
            &Extra {
                git: git.into(),
                ..Default::default()
            },
        ),
    );
}

/// Runs git on the bare repository of `s.fleet`.
fn bare_git(s: &Setup, args: &[&str]) {
    let status = git()
        .arg("--git-dir")
        .arg(s.git.git_dir(&s.fleet))
        .args(args)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

#[test]
fn semver_checks_out_the_highest_matching_tag_and_builds_the_push_branch_on_it() {
    let s = plain();
    bare_git(&s, &["tag", "v1.0.0", &s.initial_head]);
    let second = s
        .git
        .commit(&s.fleet, "main", &[("NOTES", "second\n")], "second");
    bare_git(&s, &["tag", "-a", "-m", "annotated", "v1.1.0", &second]);
    let third = s
        .git
        .commit(&s.fleet, "main", &[("NOTES", "third\n")], "third");
    bare_git(&s, &["tag", "v2.0.0", &third]);
    bare_git(&s, &["tag", "not-a-version", &third]);
    configure(
        &s,
        "    checkout:\n      ref:\n        semver: \"~1\"\n    push:\n      branch: from-semver\n",
    );

    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = s.git.log(&s.fleet, "from-semver");
    assert_eq!(
        log[0].parents,
        vec![second.clone()],
        "built on v1.1.0, not on v2.0.0 or main"
    );
    assert_eq!(
        s.git.file(&s.fleet, "from-semver", "NOTES"),
        "second\n",
        "the tree of v1.1.0"
    );
    assert!(s
        .git
        .file(&s.fleet, "from-semver", "deploy/app.yaml")
        .contains(":1.2.0 #"));
    assert_eq!(
        s.git.head(&s.fleet, "main").as_deref(),
        Some(third.as_str())
    );

    // No tag matches: a clear error, nothing pushed.
    configure(
        &s,
        "    checkout:\n      ref:\n        semver: \">=5.0.0\"\n    push:\n      branch: none\n",
    );
    let run = run_once(&s.config);
    assert_ne!(run.code, 0);
    let outcome = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(
        outcome.contains("a tag matching semver '>=5.0.0' not found"),
        "{outcome}"
    );
    assert!(!s.git.branches(&s.fleet).contains(&"none".to_string()));
}

#[test]
fn name_checks_out_any_ref_and_semver_without_a_push_branch_is_refused() {
    let s = plain();
    let pr = s
        .git
        .commit(&s.fleet, "side", &[("NOTES", "pull request\n")], "pr work");
    bare_git(&s, &["update-ref", "refs/pull/1/head", &pr]);
    bare_git(&s, &["branch", "-D", "side"]);
    configure(
        &s,
        "    checkout:\n      ref:\n        name: refs/pull/1/head\n    push:\n      branch: pr-1-images\n",
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = s.git.log(&s.fleet, "pr-1-images");
    assert_eq!(log[0].parents, vec![pr.clone()]);
    assert_eq!(
        s.git.file(&s.fleet, "pr-1-images", "NOTES"),
        "pull request\n"
    );

    // Flux infers the push branch only from the ref's `branch`; a name without one (and no
    // push.branch) cannot push.
    configure(
        &s,
        "    checkout:\n      ref:\n        name: refs/pull/1/head\n",
    );
    let run = run_once(&s.config);
    assert_ne!(run.code, 0);
    assert!(
        line(&run, "ImageUpdateAutomation default/fleet")
            .contains("push spec not provided, and cannot be inferred"),
        "{}",
        run.stderr
    );
}

#[test]
fn commit_with_branch_pushes_to_that_branch_and_refuses_a_commit_not_on_it() {
    let s = plain();
    let original = s.git.file(&s.fleet, "main", "deploy/app.yaml");
    configure(
        &s,
        &format!(
            "    checkout:\n      ref:\n        branch: main\n        commit: {}\n",
            s.initial_head
        ),
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log[0].parents, vec![s.initial_head.clone()]);
    assert_eq!(
        s.git.file(&s.fleet, "main", "deploy/app.yaml"),
        original.replace(":1.0.0", ":1.2.0"),
    );

    // A commit that is on another branch only: not found on main.
    let side = s.git.commit(
        &s.fleet,
        "side",
        &[("NOTES", "side\n"), ("deploy/app.yaml", &original)],
        "side",
    );
    configure(
        &s,
        &format!("    checkout:\n      ref:\n        branch: main\n        commit: {side}\n"),
    );
    let run = run_once(&s.config);
    assert_ne!(run.code, 0);
    let outcome = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(
        outcome.contains(&format!("commit {side} on branch 'main' not found")),
        "{outcome}"
    );

    // Without a branch the commit is looked for on every branch; the change goes to the
    // push branch, on top of that commit.
    configure(
        &s,
        &format!(
            "    checkout:\n      ref:\n        commit: {side}\n    push:\n      branch: on-side\n"
        ),
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "on-side")[0].parents, vec![side]);
}

fn cache_dirs(state: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state.join("git"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_state_directory_keeps_one_clone_that_later_runs_fetch_into() {
    let s = plain();
    let state = tempfile::tempdir().unwrap();
    let first = run_with_state(&s.config, state.path());
    assert_eq!(first.code, 0, "{}", first.stderr);
    let caches = cache_dirs(state.path());
    assert_eq!(caches.len(), 1, "one clone for the one remote: {caches:?}");
    let cache = caches[0].clone();
    assert!(cache.join(".git").is_dir());
    // Marks this very clone: a fresh clone would not have it.
    let marker = cache.join(".git").join("test-marker");
    std::fs::write(&marker, "kept").unwrap();
    let pushed = s.git.head(&s.fleet, "main").unwrap();

    // Someone else puts the old tag back: the next run builds on their commit.
    let theirs = s.git.commit(
        &s.fleet,
        "main",
        &[(
            "deploy/app.yaml",
            &s.git
                .file(&s.fleet, "main", "deploy/app.yaml")
                .replace(":1.2.0", ":1.0.0"),
        )],
        "revert image",
    );
    assert_ne!(theirs, pushed);
    let second = run_with_state(&s.config, state.path());
    assert_eq!(second.code, 0, "{}", second.stderr);
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log[0].parents, vec![theirs], "built on the new tip");
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));
    assert!(
        marker.exists(),
        "the cached clone was reused, not cloned again"
    );
    assert_eq!(cache_dirs(state.path()), vec![cache.clone()]);
}

#[test]
fn a_corrupt_or_foreign_clone_cache_is_discarded_and_cloned_again() {
    let s = plain();
    let state = tempfile::tempdir().unwrap();
    let first = run_with_state(&s.config, state.path());
    assert_eq!(first.code, 0, "{}", first.stderr);
    let cache = cache_dirs(state.path()).remove(0);
    let marker = cache.join(".git").join("test-marker");

    for (case, damage) in [
        ("objects deleted", 0),
        ("HEAD garbage", 1),
        ("another repository", 2),
        ("a plain directory", 3),
    ] {
        let before = s.git.head(&s.fleet, "main").unwrap();
        match damage {
            0 => {
                std::fs::remove_dir_all(cache.join(".git/objects")).unwrap();
                std::fs::create_dir_all(cache.join(".git/objects")).unwrap();
            }
            1 => std::fs::write(cache.join(".git/HEAD"), "garbage\n").unwrap(),
            2 => {
                std::fs::remove_dir_all(&cache).unwrap();
                let status = git().arg("init").arg("-q").arg(&cache).status().unwrap();
                assert!(status.success());
            }
            _ => {
                std::fs::remove_dir_all(&cache).unwrap();
                std::fs::create_dir_all(cache.join("junk")).unwrap();
            }
        }
        if cache.join(".git").is_dir() {
            std::fs::write(&marker, "damaged").unwrap();
        }
        // Someone moves the branch back so the run has work to do.
        let content = s
            .git
            .file(&s.fleet, "main", "deploy/app.yaml")
            .replace(":1.2.0", ":1.0.0");
        let theirs = s
            .git
            .commit(&s.fleet, "main", &[("deploy/app.yaml", &content)], case);
        assert_ne!(theirs, before);
        let run = run_with_state(&s.config, state.path());
        assert_eq!(run.code, 0, "{case}: {}", run.stderr);
        assert_eq!(
            s.git.log(&s.fleet, "main")[0].parents,
            vec![theirs],
            "{case}: built on the new tip"
        );
        assert!(!marker.exists(), "{case}: cloned afresh");
        assert!(cache.join(".git").is_dir(), "{case}");
    }
}
