//! `tagline::git` over HTTP and HTTPS (lighttpd + git-http-backend): basic auth, a private CA
//! handed over as `ca_pem`, untrusted certificates.

#[path = "git_harness.rs"]
mod harness;

use harness::*;
use tagline::git::{Auth, Checkout, GitError, Remote};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

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
    let bare = w.bare_repo("repo", "main", FILES);
    let (ca, pem) = make_tls(&w, "a");
    let h = lighttpd(&w, w.tmp.path(), "bot", "pw-1234", &pem);

    // Plain HTTP.
    let r = basic(
        format!("http://127.0.0.1:{}/git/repo.git", h.server.port),
        "pw-1234",
    );
    let refs = tagline::git::ls_remote(&r).unwrap();
    assert!(refs.iter().any(|(n, _)| n == "refs/heads/main"), "{refs:?}");
    let err = tagline::git::ls_remote(&basic(r.url.clone(), "bad-pw-31")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    let dir = w.path("http");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "over http").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&bare, "main").unwrap(), id);

    // HTTPS with the CA given explicitly, by IP and by name.
    for host in ["127.0.0.1", "localhost"] {
        let mut r = basic(
            format!("https://{host}:{}/git/repo.git", h.tls_port),
            "pw-1234",
        );
        r.ca_pem = Some(std::fs::read(&ca).unwrap());
        let dir = w.path(&format!("https-{host}"));
        let co = Checkout::clone(&r, "main", &dir).unwrap();
        std::fs::write(dir.join("app.yaml"), format!("image: nginx:{host}\n")).unwrap();
        let id = co.commit(&author(), "over https").unwrap().unwrap();
        co.push(&r, "main").unwrap();
        assert_eq!(w.rev(&bare, "main").unwrap(), id);
    }
}

#[test]
fn https_without_or_with_another_ca_is_refused() {
    let w = World::new();
    w.bare_repo("repo", "main", FILES);
    let (_, pem) = make_tls(&w, "server");
    let (other_ca, _) = make_tls(&w, "other");
    let h = lighttpd(&w, w.tmp.path(), "bot", "pw-1234", &pem);
    let url = format!("https://127.0.0.1:{}/git/repo.git", h.tls_port);
    for ca in [None, Some(std::fs::read(&other_ca).unwrap())] {
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
    w.bare_repo("repo", "main", FILES);
    let (ca, pem) = make_tls_for(&w, "a", "DNS:git.example.com");
    let h = lighttpd(&w, w.tmp.path(), "bot", "pw-1234", &pem);
    let mut r = basic(
        format!("https://127.0.0.1:{}/git/repo.git", h.tls_port),
        "pw-1234",
    );
    r.ca_pem = Some(std::fs::read(&ca).unwrap());
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
    w.bare_repo("repo", "main", FILES);
    let (_, pem) = make_tls(&w, "a");
    let h = lighttpd(&w, w.tmp.path(), "bot", "pw-1234", &pem);
    let url = format!("http://127.0.0.1:{}/git/repo.git", h.server.port);
    let err = Checkout::clone(&basic(url.clone(), "wrong-pw"), "main", &w.path("c")).unwrap_err();
    assert_eq!(err.to_string(), format!("authentication failed for {url}"));
    let err = Checkout::clone(&remote(&url), "main", &w.path("d")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
}

#[test]
fn credentials_in_the_url_are_used_when_the_secret_has_none() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let (_, pem) = make_tls(&w, "a");
    let h = lighttpd(&w, w.tmp.path(), "bot", "pw-1234", &pem);
    let r = remote(&format!(
        "http://bot:pw-1234@127.0.0.1:{}/git/repo.git",
        h.server.port
    ));
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "image: nginx:1.1\n").unwrap();
    let id = co.commit(&author(), "m").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&bare, "main").unwrap(), id);
    // A wrong one in the URL fails cleanly, once, without showing it.
    let r = remote(&format!(
        "http://bot:wrong-pw-77@127.0.0.1:{}/git/repo.git",
        h.server.port
    ));
    let err = Checkout::clone(&r, "main", &w.path("d")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrong-pw-77"));
}

#[test]
fn a_server_certificate_from_an_intermediate_ca_verifies_against_the_root() {
    // ca.crt holds only the root; the server sends leaf + intermediate.
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let (root, pem) = make_tls_chain(&w, "a");
    let h = lighttpd(&w, w.tmp.path(), "bot", "pw-1234", &pem);
    let mut r = basic(
        format!("https://127.0.0.1:{}/git/repo.git", h.tls_port),
        "pw-1234",
    );
    r.ca_pem = Some(std::fs::read(&root).unwrap());
    let dir = w.path("c");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "x\n").unwrap();
    let id = co.commit(&author(), "m").unwrap().unwrap();
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(&bare, "main").unwrap(), id);
    // Another root does not verify it.
    let (other_root, _) = make_tls_chain(&w, "b");
    r.ca_pem = Some(std::fs::read(&other_root).unwrap());
    let err = Checkout::clone(&r, "main", &w.path("d")).unwrap_err();
    assert!(matches!(err, GitError::Certificate { .. }), "{err:?}");
}
