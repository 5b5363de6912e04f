//! Push branch ≠ checkout branch ("review branch": created from the checkout tip, forced with
//! a lease, skipped when unchanged) and conflict recovery (`refresh` after a rejected push),
//! against a real `git daemon`.

mod common;

use std::path::Path;

use common::gitlib::*;
use common::GitDaemon;
use tagline::git::{Checkout, GitError, Lease, PushOutcome, Remote};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

/// One automation run in review-branch mode: clone main, branch `review` off its tip, apply
/// the update, commit at `time`, push_review.
fn run(
    w: &World,
    r: &Remote,
    name: &str,
    last_pushed: Option<&str>,
    time: i64,
) -> Result<PushOutcome, GitError> {
    let dir = w.path(name);
    let co = Checkout::clone(r, "main", &dir).unwrap();
    let remote_tip = co.fetch(r, "review").unwrap();
    co.switch_branch("review", &co.head).unwrap();
    assert_eq!(co.current_branch().unwrap(), "review");
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    co.commit_at(&author(), "Update nginx", time)
        .unwrap()
        .expect("a change");
    co.push_review(r, "review", remote_tip.as_deref(), last_pushed)
}

fn parent(w: &World, bare: &Path, rev: &str) -> String {
    w.rev(bare, &format!("{rev}^")).unwrap()
}

#[test]
fn review_branch_is_created_skipped_when_identical_and_rebuilt_on_a_new_base() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let main0 = w.rev(&bare, "main").unwrap();

    // First run: the branch does not exist; it is created from main's tip.
    let PushOutcome::Pushed(first) = run(&w, &r, "run1", None, 1_700_000_000).unwrap() else {
        panic!("expected a push")
    };
    assert_eq!(w.rev(&bare, "refs/heads/review").unwrap(), first);
    assert_eq!(parent(&w, &bare, "review"), main0);
    assert_eq!(w.rev(&bare, "main").unwrap(), main0, "main untouched");

    // Second run, same content on the same base (a different commit time): nothing pushed.
    let out = run(&w, &r, "run2", Some(&first), 1_700_000_600).unwrap();
    assert_eq!(out, PushOutcome::Unchanged(first.clone()));
    assert_eq!(w.rev(&bare, "review").unwrap(), first);

    // main moves: the review branch is rebuilt on the new tip and force-pushed.
    let main1 = w.commit_elsewhere(&bare, "main", &[("other.txt", "x\n")]);
    let PushOutcome::Pushed(second) = run(&w, &r, "run3", Some(&first), 1_700_001_200).unwrap()
    else {
        panic!("expected a push")
    };
    assert_ne!(second, first);
    assert_eq!(w.rev(&bare, "review").unwrap(), second);
    assert_eq!(parent(&w, &bare, "review"), main1);
    assert_eq!(
        w.git(&bare, &["show", "review:app.yaml"]),
        "image: nginx:1.1"
    );
    assert_eq!(w.git(&bare, &["show", "review:other.txt"]), "x");
}

#[test]
fn lease_protects_commits_someone_else_pushed_to_the_review_branch() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let PushOutcome::Pushed(ours) = run(&w, &r, "run1", None, 1_700_000_000).unwrap() else {
        panic!("expected a push")
    };
    let theirs = w.commit_elsewhere(&bare, "review", &[("fixup.txt", "human\n")]);
    w.commit_elsewhere(&bare, "main", &[("other.txt", "x\n")]);
    // We last pushed `ours`; the branch now holds a human's commit on top: refused.
    let err = run(&w, &r, "run2", Some(&ours), 1_700_000_600).unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert!(err.to_string().contains("stale info"), "{err}");
    assert_eq!(w.rev(&bare, "review").unwrap(), theirs);
}

#[test]
fn lease_absent_refuses_to_overwrite_an_existing_branch() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    co.switch_branch("review", &co.head).unwrap();
    std::fs::write(dir.join("app.yaml"), "x\n").unwrap();
    co.commit(&author(), "m").unwrap().unwrap();
    // The branch appears after we looked.
    w.git(&bare, &["branch", "review", "main"]);
    let err = co
        .push_force_with_lease(&r, "review", &Lease::Absent)
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(w.rev(&bare, "review").unwrap(), co.head);
    // With the right lease it goes through, forced.
    co.push_force_with_lease(&r, "review", &Lease::At(co.head.clone()))
        .unwrap();
    assert_eq!(w.rev(&bare, "review").unwrap(), co.head_commit().unwrap());
}

#[test]
fn lease_over_file_transport() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let r = remote(&file_url(&bare));
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "x\n").unwrap();
    co.commit(&author(), "m").unwrap().unwrap();
    let wrong = Lease::At("1111111111111111111111111111111111111111".into());
    let err = co.push_force_with_lease(&r, "main", &wrong).unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(w.rev(&bare, "main").unwrap(), co.head);
    co.push_force_with_lease(&r, "main", &Lease::At(co.head.clone()))
        .unwrap();
    assert_eq!(w.rev(&bare, "main").unwrap(), co.head_commit().unwrap());
}

#[test]
fn refresh_after_a_conflict_then_retry_lands_on_the_new_tip() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let dir = w.path("c");
    let mut co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    std::fs::write(dir.join("untracked-by-us.txt"), "tmp\n").unwrap();
    co.commit(&author(), "bump").unwrap().unwrap();
    let theirs = w.commit_elsewhere(&bare, "main", &[("other.txt", "x\n")]);
    let err = co.push(&r, "main").unwrap_err();
    assert!(err.is_conflict());

    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 3, "bounded retries");
        let tip = co.refresh(&r).unwrap();
        assert_eq!(tip, w.rev(&bare, "main").unwrap());
        assert_eq!(co.head, tip);
        // The work tree is the remote's: their file present, our edit and file gone.
        assert_eq!(
            std::fs::read_to_string(dir.join("other.txt")).unwrap(),
            "x\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("app.yaml")).unwrap(),
            FILES[0].1
        );
        assert!(!dir.join("untracked-by-us.txt").exists());
        assert_eq!(w.git(&dir, &["status", "--porcelain"]), "");
        if attempts == 1 {
            // Someone else wins the race once more.
            w.commit_elsewhere(&bare, "main", &[("other2.txt", "y\n")]);
        }
        std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
        co.commit(&author(), "bump").unwrap().unwrap();
        match co.push(&r, "main") {
            Ok(()) => break,
            Err(e) if e.is_conflict() => continue,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(attempts, 2);
    let pushed = w.rev(&bare, "main").unwrap();
    assert_eq!(pushed, co.head_commit().unwrap());
    assert_ne!(parent(&w, &bare, "main"), theirs);
    assert_eq!(w.git(&bare, &["show", "main:other2.txt"]), "y");
}

#[test]
fn push_with_retries_rebuilds_on_each_new_tip_and_gives_up_after_the_bound() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);

    // Another writer wins the first two races; the third attempt lands.
    let dir = w.path("c");
    let mut co = Checkout::clone(&r, "main", &dir).unwrap();
    let mut calls = 0;
    let pushed = co
        .push_with_retries::<GitError>(&r, "main", 3, |co| {
            calls += 1;
            if calls <= 2 {
                w.commit_elsewhere(&bare, "main", &[(&format!("race{calls}"), "x\n")]);
            }
            std::fs::write(co.dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
            co.commit(&author(), "bump")
        })
        .unwrap()
        .expect("pushed");
    assert_eq!(calls, 3);
    assert_eq!(w.rev(&bare, "main").unwrap(), pushed);
    assert_eq!(w.git(&bare, &["show", "main:race2"]), "x");
    assert_eq!(w.git(&bare, &["show", "main:app.yaml"]), "image: nginx:1.1");

    // Losing every race: the conflict comes back after `attempts` tries.
    let dir = w.path("d");
    let mut co = Checkout::clone(&r, "main", &dir).unwrap();
    let mut calls = 0;
    let err = co
        .push_with_retries::<GitError>(&r, "main", 2, |co| {
            calls += 1;
            w.commit_elsewhere(&bare, "main", &[(&format!("again{calls}"), "x\n")]);
            std::fs::write(co.dir.join("app.yaml"), format!("image: nginx:2.{calls}\n")).unwrap();
            co.commit(&author(), "bump")
        })
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(calls, 2);

    // Nothing to commit: no push, None.
    let mut co = Checkout::clone(&r, "main", &w.path("e")).unwrap();
    let before = w.rev(&bare, "main").unwrap();
    let out = co
        .push_with_retries::<GitError>(&r, "main", 3, |co| co.commit(&author(), "noop"))
        .unwrap();
    assert_eq!(out, None);
    assert_eq!(w.rev(&bare, "main").unwrap(), before);
}

#[test]
fn accumulate_on_an_existing_push_branch_like_flux() {
    // Flux's default when the push branch exists: start from its tip, add a commit on top.
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    w.git(&bare, &["branch", "updates", "main"]);
    let tip0 = w.commit_elsewhere(&bare, "updates", &[("earlier.txt", "1\n")]);
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    let tip = co.fetch(&r, "updates").unwrap().expect("exists");
    assert_eq!(tip, tip0);
    co.switch_branch("updates", &tip).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("earlier.txt")).unwrap(),
        "1\n"
    );
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "bump").unwrap().unwrap();
    co.push(&r, "updates").unwrap();
    assert_eq!(w.rev(&bare, "updates").unwrap(), id);
    assert_eq!(parent(&w, &bare, "updates"), tip0);
    // A missing branch fetches as None.
    assert_eq!(co.fetch(&r, "nope").unwrap(), None);
}

#[test]
fn a_merged_and_deleted_review_branch_is_created_again() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let PushOutcome::Pushed(first) = run(&w, &r, "run1", None, 1_700_000_000).unwrap() else {
        panic!("expected a push")
    };
    w.git(&bare, &["branch", "-D", "review"]);
    let PushOutcome::Pushed(again) = run(&w, &r, "run2", Some(&first), 1_700_000_600).unwrap()
    else {
        panic!("expected a push")
    };
    assert_eq!(w.rev(&bare, "review").unwrap(), again);
}
