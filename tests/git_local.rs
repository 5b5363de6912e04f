//! `tagline::git` against local repositories (file:// URLs and plain paths), checked with the
//! git CLI.

mod common;

use common::gitlib::*;
use tagline::git::{Checkout, GitError};

const FILES: &[(&str, &str)] = &[
    (
        "apps/app.yaml",
        "image: nginx:1.0 # {\"$imagepolicy\": \"ns:p\"}\n",
    ),
    ("apps/old.yaml", "gone: soon\n"),
    ("README.md", "hello\n"),
];

#[test]
fn clone_checks_out_the_branch_tip() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let dir = w.path("clone");
    let co = Checkout::clone(&remote(&file_url(&bare)), "main", &dir).unwrap();
    assert_eq!(co.head, w.rev(&bare, "refs/heads/main").unwrap());
    assert_eq!(co.branch, "main");
    assert_eq!(
        std::fs::read_to_string(dir.join("apps/app.yaml")).unwrap(),
        FILES[0].1
    );
    // The clone is a normal repository for the git CLI, on the branch, clean.
    assert_eq!(w.git(&dir, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(w.git(&dir, &["status", "--porcelain"]), "");
}

#[test]
fn clone_from_a_plain_path_fetches_only_that_branch_and_no_tags() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    w.git(&bare, &["branch", "other", "main"]);
    w.git(&bare, &["tag", "v1", "main"]);
    let dir = w.path("clone");
    let co = Checkout::clone(&remote(bare.to_str().unwrap()), "other", &dir).unwrap();
    assert_eq!(co.branch, "other");
    let refs = w.git(&dir, &["for-each-ref", "--format=%(refname)"]);
    let refs: Vec<&str> = refs.lines().collect();
    assert_eq!(refs, ["refs/heads/other", "refs/remotes/origin/other"]);
}

#[test]
fn missing_branch_is_a_clear_error() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let url = file_url(&bare);
    let err = Checkout::clone(&remote(&url), "nope", &w.path("clone")).unwrap_err();
    assert!(
        matches!(err, GitError::BranchNotFound { ref branch, .. } if branch == "nope"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("'nope'") && msg.contains(&url), "{msg}");
    assert!(!err.is_retryable());
}

#[test]
fn missing_repository_is_a_clone_error_naming_the_url() {
    let w = World::new();
    let url = file_url(&w.path("absent.git"));
    let err = Checkout::clone(&remote(&url), "main", &w.path("clone")).unwrap_err();
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn commit_stages_additions_modifications_and_deletions_then_push_lands() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let dir = w.path("clone");
    let r = remote(&file_url(&bare));
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("apps/app.yaml"), "image: nginx:1.1\n").unwrap();
    std::fs::remove_file(dir.join("apps/old.yaml")).unwrap();
    std::fs::write(dir.join("apps/new.yaml"), "new: file\n").unwrap();
    std::fs::write(dir.join(".hidden"), "dot\n").unwrap();

    let id = co
        .commit_at(&author(), "Update nginx\n\nbody\n", 1_700_000_000)
        .unwrap()
        .expect("a commit");
    assert_eq!(w.rev(&dir, "HEAD").unwrap(), id);
    assert_eq!(w.rev(&dir, "HEAD^").unwrap(), co.head);
    let status = w.git(&dir, &["show", "--name-status", "--format=", "HEAD"]);
    let mut lines: Vec<&str> = status.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "A\t.hidden",
            "A\tapps/new.yaml",
            "D\tapps/old.yaml",
            "M\tapps/app.yaml"
        ]
    );
    assert_eq!(
        w.git(&dir, &["show", "-s", "--format=%an <%ae>|%cn <%ce>|%at|%ct|%B", "HEAD"]),
        "Tagline Bot <bot@example.com>|Tagline Bot <bot@example.com>|1700000000|1700000000|Update nginx\n\nbody"
    );
    assert_eq!(w.git(&dir, &["status", "--porcelain"]), "");

    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&bare, "refs/heads/main").unwrap(), id);
    w.git(&bare, &["fsck", "--strict"]);
}

#[test]
fn commit_with_current_time() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let dir = w.path("clone");
    let co = Checkout::clone(&remote(&file_url(&bare)), "main", &dir).unwrap();
    std::fs::write(dir.join("README.md"), "changed\n").unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    co.commit(&author(), "now").unwrap().unwrap();
    let t: u64 = w
        .git(&dir, &["show", "-s", "--format=%ct", "HEAD"])
        .parse()
        .unwrap();
    assert!(t >= before && t <= before + 600, "{t} vs {before}");
}

#[test]
fn no_change_is_no_commit() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let dir = w.path("clone");
    let co = Checkout::clone(&remote(&file_url(&bare)), "main", &dir).unwrap();
    assert_eq!(co.commit(&author(), "nothing").unwrap(), None);
    // Rewriting a file with identical bytes is no change either.
    std::fs::write(dir.join("README.md"), "hello\n").unwrap();
    assert_eq!(co.commit(&author(), "nothing").unwrap(), None);
    assert_eq!(w.rev(&dir, "HEAD").unwrap(), co.head);
}

#[test]
fn repository_hooks_are_not_run() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let dir = w.path("clone");
    let co = Checkout::clone(&remote(&file_url(&bare)), "main", &dir).unwrap();
    let marker = w.path("hook-ran");
    for hook in ["pre-commit", "commit-msg", "post-commit", "pre-push"] {
        w.hook(
            &dir.join(".git"),
            hook,
            &format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
        );
    }
    std::fs::write(dir.join("README.md"), "changed\n").unwrap();
    co.commit(&author(), "m").unwrap().unwrap();
    co.push(&remote(&file_url(&bare)), "main").unwrap();
    assert!(!marker.exists());
}
