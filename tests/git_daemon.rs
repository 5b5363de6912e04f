//! `tagline::git` over the git protocol against a real `git daemon` (push lands, hooks and
//! non-fast-forward rejections are errors, shallow clones), plus scripted HTTP peers for what
//! a real server here cannot show (a wrong password tried once, bearer header, 403/404, a TLS
//! connection cut short).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::gitlib::*;
use common::GitDaemon;
use tagline::git::{Auth, Checkout, GitError};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

#[test]
fn clone_commit_push_over_git_daemon() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let dir = w.path("clone");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    assert_eq!(co.head, w.rev(&bare, "main").unwrap());
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "bump").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&bare, "refs/heads/main").unwrap(), id);
    assert_eq!(w.git(&bare, &["show", "main:app.yaml"]), "image: nginx:1.1");
}

#[test]
fn pre_receive_rejection_is_an_error() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    w.hook(
        &bare,
        "pre-receive",
        "#!/bin/sh\necho 'no bots here' >&2\nexit 1\n",
    );
    let r = remote(&url);
    let dir = w.path("clone");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    co.commit(&author(), "bump").unwrap().unwrap();
    let err = co.push(&r, "main").unwrap_err();
    match &err {
        GitError::Rejected {
            refname, reason, ..
        } => {
            assert_eq!(refname, "refs/heads/main");
            assert!(reason.contains("hook declined"), "{reason}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!err.is_conflict());
    assert_eq!(w.rev(&bare, "main").unwrap(), co.head);
}

#[test]
fn non_fast_forward_push_is_a_conflict() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let r = remote(&url);
    let dir = w.path("clone");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    let theirs = w.commit_elsewhere(&bare, "main", &[("other.txt", "x\n")]);
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    co.commit(&author(), "bump").unwrap().unwrap();
    let err = co.push(&r, "main").unwrap_err();
    assert!(matches!(err, GitError::Rejected { .. }), "{err:?}");
    assert!(err.is_conflict(), "{err}");
    assert!(err.is_retryable());
    assert_eq!(w.rev(&bare, "main").unwrap(), theirs);
}

/// A server that answers every HTTP request with 401, counting the ones that carried
/// credentials.
fn always_401() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let with_auth = Arc::new(AtomicUsize::new(0));
    let counter = with_auth.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                if line == "\r\n" {
                    let _ = stream.write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n",
                    );
                }
            }
        }
    });
    (port, with_auth)
}

#[test]
fn wrong_password_fails_after_one_attempt_without_leaking_it() {
    let (port, with_auth) = always_401();
    let w = World::new();
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let mut r = remote(&url);
    r.auth = Some(Auth::Basic {
        username: "bob".into(),
        password: "s3cret-pw".into(),
    });
    let err = Checkout::clone(&r, "main", &w.path("clone")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("authentication failed for {url}"));
    assert!(!format!("{err:?}").contains("s3cret-pw"));
    assert!(!err.is_retryable());
    assert_eq!(with_auth.load(Ordering::SeqCst), 1);
}

#[test]
fn credentials_in_the_url_never_reach_the_error() {
    let (port, _) = always_401();
    let w = World::new();
    let url = format!("http://bob:s3cret-pw@127.0.0.1:{port}/repo.git");
    let err = Checkout::clone(&remote(&url), "main", &w.path("clone")).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(
        shown.contains(&format!("http://***@127.0.0.1:{port}/repo.git")),
        "{shown}"
    );
}

#[test]
fn network_clones_are_shallow_and_still_push() {
    let w = World::new();
    let Served { bare, url, .. } = served_repo(GitDaemon::start(), "main", FILES);
    let first = w.rev(&bare, "main").unwrap();
    w.commit_elsewhere(&bare, "main", &[("b.txt", "b\n")]);
    let r = remote(&url);
    let dir = w.path("clone");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    assert_eq!(
        w.git(&dir, &["rev-parse", "--is-shallow-repository"]),
        "true"
    );
    let has_first = w
        .git_cmd(&dir, &["cat-file", "-e", &first])
        .status()
        .unwrap()
        .success();
    assert!(!has_first, "older history not fetched");
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "bump").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&bare, "main").unwrap(), id);
    w.git(&bare, &["fsck", "--strict"]);
}

/// A server answering 401 to everything, recording the Authorization headers it got.
fn recording_401() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    sink.lock().unwrap().push(line.trim().to_string());
                }
                if line == "\r\n" {
                    let _ = stream.write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"git\"\r\nContent-Length: 0\r\n\r\n",
                    );
                }
            }
        }
    });
    (port, seen)
}

#[test]
fn bearer_token_is_sent_as_authorization_header() {
    let (port, seen) = recording_401();
    let w = World::new();
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let mut r = remote(&url);
    r.auth = Some(Auth::Bearer("tok-123456".into()));
    let err = Checkout::clone(&r, "main", &w.path("clone")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("tok-123456"));
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    // Header names are case-insensitive (tagline's HTTP transport sends them lower-case).
    assert!(
        seen.iter().all(|h| h
            .split_once(':')
            .is_some_and(|(name, value)| name.eq_ignore_ascii_case("authorization")
                && value.trim() == "Bearer tok-123456")),
        "{seen:?}"
    );
}

#[test]
fn clone_refuses_a_non_empty_directory_and_keeps_no_credentials_on_disk() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let dir = w.path("clone");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stray"), "x").unwrap();
    let err = Checkout::clone(&remote(&file_url(&bare)), "main", &dir).unwrap_err();
    assert!(matches!(err, GitError::Local { .. }), "{err:?}");

    // Credentials in the URL are not written into the clone's configuration.
    let served = served_repo(GitDaemon::start(), "main", FILES);
    let url = served.url.replacen("git://", "git://bob:s3cret-pw@", 1);
    let dir = w.path("clone2");
    Checkout::clone(&remote(&url), "main", &dir).unwrap();
    let config = std::fs::read_to_string(dir.join(".git/config")).unwrap();
    assert!(!config.contains("s3cret-pw"), "{config}");
}

#[test]
fn a_tls_connection_cut_short_is_a_retryable_clone_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hang up at once, before any TLS byte.
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    let w = World::new();
    let err = Checkout::clone(
        &remote(&format!("https://127.0.0.1:{port}/repo.git")),
        "main",
        &w.path("clone"),
    )
    .unwrap_err();
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(err.is_retryable());
}

/// A server answering every HTTP request with `status`.
fn always(status: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    let _ = stream.write_all(
                        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                    );
                }
            }
        }
    });
    port
}

#[test]
fn http_403_is_an_access_error_and_404_a_missing_repository() {
    let w = World::new();
    let port = always("403 Forbidden");
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let err = Checkout::clone(&remote(&url), "main", &w.path("a")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("403"), "{err}");
    assert!(!err.is_retryable());

    let port = always("404 Not Found");
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let err = Checkout::clone(&remote(&url), "main", &w.path("b")).unwrap_err();
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(err.to_string().contains("repository not found"), "{err}");
}
