//! Checkouts by tag and by commit (detached HEAD), then work on a push branch, over a real
//! `git daemon` and file://.

mod common;

use common::gitlib::*;
use common::GitDaemon;
use tagline::git::{Checkout, GitError};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

#[test]
fn tag_checkout_then_push_to_a_branch() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let tagged = w.rev(&bare, "main").unwrap();
    w.git(&bare, &["tag", "-a", "-m", "v1", "v1.0.0", "main"]);
    w.git(&bare, &["tag", "light", "main"]);
    w.commit_elsewhere(&bare, "main", &[("later.txt", "x\n")]);
    for (i, url) in [url, file_url(&bare)].iter().enumerate() {
        let r = remote(url);
        for tag in ["v1.0.0", "light"] {
            let dir = w.path(&format!("{tag}-{i}"));
            let co = Checkout::clone_tag(&r, tag, &dir).unwrap();
            assert_eq!(co.head, tagged, "{tag} peels to its commit");
            assert_eq!(co.branch, "");
            assert!(!dir.join("later.txt").exists());
            assert_eq!(w.git(&dir, &["status", "--porcelain"]), "");
            // No branch to push to until one is made.
            std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
            let id = co.commit(&author(), "bump").unwrap().unwrap();
            assert!(co.push(&r, "main").is_err());
            let branch = format!("update-{tag}-{i}");
            co.switch_branch(&branch, &id).unwrap();
            co.push(&r, &branch).unwrap();
            assert_eq!(w.rev(&bare, &branch).unwrap(), id);
            assert_eq!(w.rev(&bare, &format!("{branch}^")).unwrap(), tagged);
        }
    }
    let err = Checkout::clone_tag(&remote(&file_url(&bare)), "v9", &w.path("v9")).unwrap_err();
    assert!(matches!(err, GitError::RefNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("tag 'v9'"), "{err}");
    assert!(!err.is_retryable());
}

#[test]
fn commit_checkout_within_a_branch() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let first = w.rev(&bare, "main").unwrap();
    w.commit_elsewhere(&bare, "main", &[("later.txt", "x\n")]);
    w.git(&bare, &["branch", "side", &first]);
    let side = w.commit_elsewhere(&bare, "side", &[("side.txt", "s\n")]);
    let r = remote(&url);

    let dir = w.path("c");
    let co = Checkout::clone_commit(&r, "main", &first, &dir).unwrap();
    assert_eq!(co.head, first);
    assert_eq!(w.rev(&dir, "HEAD").unwrap(), first);
    assert!(!dir.join("later.txt").exists());

    // A commit that is not on the branch is refused.
    let err = Checkout::clone_commit(&r, "main", &side, &w.path("d")).unwrap_err();
    assert!(matches!(err, GitError::RefNotFound { .. }), "{err:?}");
    let err = Checkout::clone_commit(&r, "main", "not-a-sha", &w.path("e")).unwrap_err();
    assert!(matches!(err, GitError::Config { .. }), "{err:?}");
}

#[test]
fn ls_remote_lists_heads_and_tags_without_cloning() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    w.git(&bare, &["branch", "other", "main"]);
    w.git(&bare, &["tag", "-a", "-m", "t", "v1", "main"]);
    let main = w.rev(&bare, "main").unwrap();
    let tag_object = w.rev(&bare, "refs/tags/v1").unwrap();
    for url in [url, file_url(&bare)] {
        let refs = tagline::git::ls_remote(&remote(&url)).unwrap();
        let get = |name: &str| {
            refs.iter()
                .find(|(n, _)| n == name)
                .map(|(_, id)| id.clone())
        };
        assert_eq!(
            get("refs/heads/main"),
            Some(main.clone()),
            "{url}: {refs:?}"
        );
        assert_eq!(get("refs/heads/other"), Some(main.clone()));
        assert_eq!(get("refs/tags/v1"), Some(tag_object.clone()));
        assert_eq!(get("refs/heads/nope"), None);
    }
    let err = tagline::git::ls_remote(&remote(&file_url(&w.path("absent.git")))).unwrap_err();
    assert!(matches!(err, GitError::Fetch { .. }), "{err:?}");
}

#[test]
fn any_ref_can_be_checked_out() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let main = w.rev(&bare, "main").unwrap();
    let pr = w.commit_elsewhere(&bare, "main", &[("pr.txt", "p\n")]);
    w.git(&bare, &["update-ref", "refs/pull/7/head", &pr]);
    w.git(&bare, &["update-ref", "refs/heads/main", &main]);
    let r = remote(&url);
    let dir = w.path("c");
    let co = Checkout::clone_ref(&r, "refs/pull/7/head", &dir).unwrap();
    assert_eq!(co.head, pr);
    assert!(dir.join("pr.txt").exists());
    for bad in ["pull/7/head", "refs/pull/../x"] {
        let err = Checkout::clone_ref(&r, bad, &w.path("x")).unwrap_err();
        assert!(matches!(err, GitError::Config { .. }), "{bad}: {err:?}");
    }
    let err = Checkout::clone_ref(&r, "refs/pull/8/head", &w.path("y")).unwrap_err();
    assert!(matches!(err, GitError::RefNotFound { .. }), "{err:?}");
}
