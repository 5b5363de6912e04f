//! `tagline::git` over HTTP and HTTPS (lighttpd + git-http-backend): basic auth, a private CA
//! handed over as `ca_pem`, untrusted certificates.

mod common;

use common::gitlib::*;
use common::{GitOptions, GitServer, TestCa};
use tagline::git::{Auth, Checkout, GitError, Remote};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

const BASIC: Option<(&str, &str)> = Some(("bot", "pw-1234"));

/// The shared plain-HTTP server, basic auth `bot:pw-1234`.
fn http() -> &'static GitServer {
    GitServer::start(GitOptions {
        basic_auth: BASIC,
        ..Default::default()
    })
}

/// The shared HTTPS server (certificate from the test CA), basic auth `bot:pw-1234`.
fn https() -> &'static GitServer {
    GitServer::start(GitOptions {
        basic_auth: BASIC,
        tls: true,
        ..Default::default()
    })
}

/// An HTTPS server of its own presenting `server_pem`, basic auth `bot:pw-1234`.
fn https_with_cert(server_pem: &std::path::Path) -> GitServer {
    GitServer::start_owned_with_cert(
        GitOptions {
            basic_auth: BASIC,
            tls: true,
            ..Default::default()
        },
        server_pem,
    )
}

fn test_ca() -> Option<Vec<u8>> {
    Some(TestCa::get().ca_pem().as_bytes().to_vec())
}

fn basic(url: String, password: &str) -> Remote {
    let mut r = remote(&url);
    r.auth = Some(Auth::Basic {
        username: "bot".into(),
        password: password.into(),
    });
    r
}

#[test]
fn http_and_https_with_basic_auth_and_a_private_ca() {
    let w = World::new();

    // Plain HTTP.
    let plain = served_repo(http(), "main", FILES);
    let r = basic(plain.url.clone(), "pw-1234");
    let refs = tagline::git::ls_remote(&r).unwrap();
    assert!(refs.iter().any(|(n, _)| n == "refs/heads/main"), "{refs:?}");
    let err = tagline::git::ls_remote(&basic(r.url.clone(), "bad-pw-31")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    let dir = w.path("http");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "over http").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&plain.bare, "main").unwrap(), id);

    // HTTPS with the CA given explicitly, by IP and by name.
    let secure = served_repo(https(), "main", FILES);
    for host in ["127.0.0.1", "localhost"] {
        let mut r = basic(secure.url.replacen("127.0.0.1", host, 1), "pw-1234");
        assert!(r.url.starts_with(&format!("https://{host}:")), "{}", r.url);
        r.ca_pem = test_ca();
        let dir = w.path(&format!("https-{host}"));
        let co = Checkout::clone(&r, "main", &dir).unwrap();
        std::fs::write(dir.join("app.yaml"), format!("image: nginx:{host}\n")).unwrap();
        let id = co.commit(&author(), "over https").unwrap().unwrap();
        co.push(&r, "main").unwrap();
        assert_eq!(w.rev(&secure.bare, "main").unwrap(), id);
    }
}

#[test]
fn https_without_or_with_another_ca_is_refused() {
    let w = World::new();
    let url = served_repo(https(), "main", FILES).url;
    let other_ca = TestCa::unrelated();
    for ca in [None, Some(other_ca.ca_pem().as_bytes().to_vec())] {
        let mut r = basic(url.clone(), "pw-1234");
        r.ca_pem = ca;
        let err = Checkout::clone(&r, "main", &w.path("c")).unwrap_err();
        assert!(matches!(err, GitError::Certificate { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
        assert!(!err.is_retryable());
        let _ = std::fs::remove_dir_all(w.path("c"));
    }
}

#[test]
fn a_certificate_for_another_host_name_is_refused_even_from_the_ca() {
    let w = World::new();
    let server = https_with_cert(&TestCa::get().issue_server_pem("DNS:git.example.com"));
    let url = served_repo(&server, "main", FILES).url;
    let mut r = basic(url, "pw-1234");
    r.ca_pem = test_ca();
    let err = Checkout::clone(&r, "main", &w.path("c")).unwrap_err();
    assert!(matches!(err, GitError::Certificate { .. }), "{err:?}");
}

#[test]
fn a_ca_that_is_not_pem_is_a_configuration_error() {
    let mut r = remote("https://127.0.0.1:1/git/repo.git");
    r.ca_pem = Some(b"not a certificate".to_vec());
    let w = World::new();
    let err = Checkout::clone(&r, "main", &w.path("c")).unwrap_err();
    assert!(matches!(err, GitError::Config { .. }), "{err:?}");
}

#[test]
fn wrong_password_against_a_real_server() {
    let w = World::new();
    let url = served_repo(http(), "main", FILES).url;
    let err = Checkout::clone(&basic(url.clone(), "wrong-pw"), "main", &w.path("c")).unwrap_err();
    assert_eq!(err.to_string(), format!("authentication failed for {url}"));
    let err = Checkout::clone(&remote(&url), "main", &w.path("d")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
}

#[test]
fn credentials_in_the_url_are_used_when_the_secret_has_none() {
    let w = World::new();
    let served = served_repo(http(), "main", FILES);
    let r = remote(&served.url.replacen("http://", "http://bot:pw-1234@", 1));
    assert!(r.url.contains("bot:pw-1234@127.0.0.1"), "{}", r.url);
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "m").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&served.bare, "main").unwrap(), id);
    // A wrong one in the URL fails cleanly, once, without showing it.
    let r = remote(&served.url.replacen("http://", "http://bot:wrong-pw-77@", 1));
    let err = Checkout::clone(&r, "main", &w.path("d")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrong-pw-77"));
}

#[test]
fn a_server_certificate_from_an_intermediate_ca_verifies_against_the_root() {
    // ca.crt holds only the root (the test CA); the server sends leaf + intermediate.
    let w = World::new();
    let server = https_with_cert(&TestCa::get().issue_chain_pem());
    let served = served_repo(&server, "main", FILES);
    let mut r = basic(served.url.clone(), "pw-1234");
    r.ca_pem = test_ca();
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "x\n").unwrap();
    let id = co.commit(&author(), "m").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&served.bare, "main").unwrap(), id);
    // Another root does not verify it.
    let other_root = TestCa::unrelated();
    r.ca_pem = Some(other_root.ca_pem().as_bytes().to_vec());
    let err = Checkout::clone(&r, "main", &w.path("d")).unwrap_err();
    assert!(matches!(err, GitError::Certificate { .. }), "{err:?}");
}
