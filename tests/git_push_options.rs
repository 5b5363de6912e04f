//! `git.push.refspec` and `git.push.options` against a real `git daemon` whose pre-receive
//! hook records the ref updates and `GIT_PUSH_OPTION_*`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::gitlib::*;
use common::GitDaemon;
use tagline::git::{push_options, Checkout, GitError};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

const RECORDER: &str = r#"#!/bin/sh
log="$(dirname "$0")/../push.log"
while read old new ref; do echo "ref $ref" >> "$log"; done
echo "count ${GIT_PUSH_OPTION_COUNT:-none}" >> "$log"
i=0
while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do
  eval "echo \"option \$GIT_PUSH_OPTION_$i\"" >> "$log"
  i=$((i + 1))
done
"#;

fn log(bare: &Path) -> String {
    std::fs::read_to_string(bare.join("push.log")).unwrap_or_default()
}

#[test]
fn push_options_reach_the_server_hook() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    w.hook(&bare, "pre-receive", RECORDER);
    let r = remote(&url);
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    co.commit(&author(), "bump").unwrap().unwrap();
    let mut opts = BTreeMap::new();
    opts.insert("merge_request.create".to_string(), String::new());
    opts.insert("merge_request.target".to_string(), "release".to_string());
    co.push_with_options(&r, "main", &push_options(&opts))
        .unwrap();
    assert_eq!(
        log(&bare),
        "ref refs/heads/main\ncount 2\noption merge_request.create=\noption merge_request.target=release\n"
    );
    assert_eq!(w.rev(&bare, "main").unwrap(), co.head_commit().unwrap());
}

#[test]
fn without_options_the_hook_sees_none() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    w.hook(&bare, "pre-receive", RECORDER);
    let r = remote(&url);
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    co.commit(&author(), "bump").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    // libgit2 announces the capability with zero options: the hook sees no option.
    let log = log(&bare);
    assert!(log.starts_with("ref refs/heads/main\ncount "), "{log}");
    assert!(!log.contains("option "), "{log}");
}

#[test]
fn refspec_push_after_the_branch_push_like_gerrit_or_agit() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    w.hook(&bare, "pre-receive", RECORDER);
    let r = remote(&url);
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    co.switch_branch("flux-updates", &co.head).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "bump").unwrap().unwrap();
    let opts = vec!["topic=bump".to_string(), "title=Bump nginx".to_string()];
    co.push_with_options(&r, "flux-updates", &opts).unwrap();
    co.push_refspec(&r, "refs/heads/flux-updates:refs/for/main", &opts)
        .unwrap();
    assert_eq!(
        log(&bare),
        "ref refs/heads/flux-updates\ncount 2\noption topic=bump\noption title=Bump nginx\n\
         ref refs/for/main\ncount 2\noption topic=bump\noption title=Bump nginx\n"
    );
    assert_eq!(w.rev(&bare, "refs/for/main").unwrap(), id);
    assert_eq!(w.rev(&bare, "refs/heads/flux-updates").unwrap(), id);
    // Short forms: HEAD and a bare branch name.
    co.push_refspec(&r, "HEAD:auto", &[]).unwrap();
    assert_eq!(w.rev(&bare, "refs/heads/auto").unwrap(), id);
}

#[test]
fn refspec_push_is_not_forced_unless_asked() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let old = w.rev(&bare, "main").unwrap();
    let theirs = w.commit_elsewhere(&bare, "main", &[("x", "x\n")]);
    w.git(&bare, &["branch", "target", &theirs]);
    w.git(&bare, &["update-ref", "refs/heads/main", &old]);
    // Our clone is at the old main: pushing it onto `target` is a non-fast-forward.
    let co = Checkout::clone(&r, "main", &w.path("c")).unwrap();
    assert_eq!(co.head, old);
    let err = co
        .push_refspec(&r, "refs/heads/main:refs/heads/target", &[])
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(w.rev(&bare, "target").unwrap(), theirs);
    co.push_refspec(&r, "+refs/heads/main:refs/heads/target", &[])
        .unwrap();
    assert_eq!(w.rev(&bare, "target").unwrap(), co.head);
}

#[test]
fn malformed_refspecs_are_configuration_errors() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let r = remote(&file_url(&bare));
    let co = Checkout::clone(&r, "main", &w.path("c")).unwrap();
    for bad in [
        "main",
        ":refs/heads/x",
        "main:",
        "refs/heads/*:refs/heads/*",
        "refs/heads/nope:refs/heads/x",
        "main:refs/heads/a..b",
    ] {
        let err = co.push_refspec(&r, bad, &[]).unwrap_err();
        assert!(matches!(err, GitError::Config { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn options_to_a_server_without_push_option_support_are_not_silently_dropped() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    w.git(&bare, &["config", "receive.advertisePushOptions", "false"]);
    let r = remote(&url);
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    co.commit(&author(), "bump").unwrap().unwrap();
    let err = co
        .push_with_options(&r, "main", &["topic=x".to_string()])
        .unwrap_err();
    assert!(matches!(err, GitError::Push { .. }), "{err:?}");
    assert_eq!(w.rev(&bare, "main").unwrap(), co.head);
}
