//! Git over HTTPS with a client certificate (the GitRepository Secret's `tls.crt` + `tls.key`)
//! against lighttpd + `git http-backend` that enforces one: `run --once` clones and pushes; the
//! same Secret without the certificate fails with a clear error and nothing is pushed; a
//! certificate on a plain `http://` URL is refused by name. Also: without `ca.crt`, the system
//! roots (here `SSL_CERT_FILE`) are loaded when an HTTPS remote first needs them.

mod common;
mod e2e_support;

use common::*;
use e2e_support::*;

fn mtls_git() -> &'static GitServer {
    GitServer::start(GitOptions {
        tls: true,
        client_cert: true,
        basic_auth: Some(("gituser", "gitpass")),
    })
}

#[test]
fn the_client_certificate_carries_clone_and_push() {
    let s = setup(Registry::start(RegistryOptions::default()), mtls_git());
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
    assert!(!run.stderr.contains("PRIVATE KEY"), "{}", run.stderr);
}

#[test]
fn without_the_client_certificate_the_server_refuses_and_nothing_is_pushed() {
    let git = mtls_git();
    let s = setup(Registry::start(RegistryOptions::default()), git);
    let ca = git.ca_pem().expect("TLS server");
    s.config.write(
        "git-secret.yaml",
        &secret(
            "git-auth",
            "Opaque",
            &[
                ("username", "gituser"),
                ("password", "gitpass"),
                ("ca.crt", ca),
            ],
        ),
    );
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(l.contains("failed: "), "{l}");
    assert!(l.contains("may require a client certificate"), "{l}");
    assert!(!run.stderr.contains("gitpass"), "{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
}

#[test]
fn a_client_certificate_needs_an_https_url() {
    let git = GitServer::start(GitOptions::default());
    let s = setup(Registry::start(RegistryOptions::default()), git);
    s.config.write(
        "git-secret.yaml",
        &secret(
            "git-auth",
            "Opaque",
            &[
                ("tls.crt", TestCa::get().client_cert_pem()),
                ("tls.key", TestCa::get().client_key_pem()),
            ],
        ),
    );
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(
        l.contains("'tls.crt' and 'tls.key' need an https:// URL"),
        "{l}"
    );
    assert!(!run.stderr.contains("PRIVATE KEY"), "{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
}

/// An HTTPS remote on libgit2's own transport, without `ca.crt`, trusts the system's roots:
/// the binary starts libgit2 without reading them (`git::init_early`) and loads them before
/// the first HTTPS session. Here the "system" bundle is the test CA, through `SSL_CERT_FILE`.
#[test]
fn without_ca_crt_the_system_roots_are_loaded_when_first_needed() {
    let git = GitServer::start(GitOptions {
        tls: true,
        ..Default::default()
    });
    let s = setup(Registry::start(RegistryOptions::default()), git);
    s.config
        .write("git-secret.yaml", &secret("git-auth", "Opaque", &[]));
    let run = |trust: bool| {
        let mut cmd = e2e_support::tagline_once(&s.config, None);
        if trust {
            cmd.env("SSL_CERT_FILE", TestCa::get().ca_path());
        } else {
            cmd.env("SSL_CERT_FILE", "/dev/null");
        }
        e2e_support::Running::spawn(cmd).wait()
    };
    let untrusted = run(false);
    assert_ne!(untrusted.code, 0, "{}", untrusted.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
    let trusted = run(true);
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));
}
