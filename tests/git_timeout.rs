//! `Remote.timeout` against a server that accepts connections and never answers. In a test
//! binary of its own: libgit2's socket timeout is process-wide (the smallest among running
//! sessions), and these short timeouts must not cut other tests' connections.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::gitlib::*;
use tagline::git::{Checkout, GitError};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold connections without a byte of answer.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let w = World::new();
    let mut r = remote(&format!("git://127.0.0.1:{port}/repo.git"));
    r.timeout = Duration::from_secs(2);
    let err = Checkout::clone(&r, "main", &w.path("clone")).unwrap_err();
    assert!(matches!(err, GitError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[test]
fn a_push_to_a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let dir = w.path("clone");
    let co = Checkout::clone(&remote(&file_url(&bare)), "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "x\n").unwrap();
    co.commit(&author(), "m").unwrap().unwrap();
    let mut r = remote(&format!("git://127.0.0.1:{port}/repo.git"));
    r.timeout = Duration::from_secs(2);
    let err = co.push(&r, "main").unwrap_err();
    assert!(matches!(err, GitError::Timeout { .. }), "{err:?}");
}
