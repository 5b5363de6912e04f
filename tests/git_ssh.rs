//! `tagline::git` over SSH against a real `sshd`: ed25519 / ecdsa / rsa identities (OpenSSH and
//! PEM formats, with and without passphrase), host keys checked against the configured
//! known_hosts only.

mod common;

use common::gitlib::*;
use common::SshServer;
use tagline::git::{Auth, Checkout, GitError, Remote};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

fn ssh_remote(url: &str, identity: &str, password: Option<&str>, known_hosts: &str) -> Remote {
    let mut r = remote(url);
    r.auth = Some(Auth::Ssh {
        identity: identity.to_string(),
        password: password.map(str::to_string),
        known_hosts: known_hosts.to_string(),
    });
    r
}

/// The shared server with one ed25519 host key.
fn ed25519_server() -> &'static SshServer {
    SshServer::start()
}

#[test]
fn clone_commit_push_with_each_key_type() {
    let w = World::new();
    let d = ed25519_server();
    let Served { bare, url, .. } = served_repo(d, "main", FILES);
    let keys = w.path("keys");
    let kinds = [
        ("ed25519", ""),
        ("ecdsa", ""),
        ("rsa", ""),
        ("rsa-pem", ""),
        ("ed25519", "key pass phrase"),
    ];
    let generated: Vec<(String, String)> = kinds
        .iter()
        .enumerate()
        .map(|(i, (kind, pass))| ssh_keygen(&keys, &format!("id{i}"), kind, pass))
        .collect();
    for (_, public) in &generated {
        d.authorize_key(public);
    }
    for (i, ((kind, pass), (private, _))) in kinds.iter().zip(&generated).enumerate() {
        let pass = (!pass.is_empty()).then_some(*pass);
        let r = ssh_remote(&url, private, pass, &d.known_hosts());
        let dir = w.path(&format!("clone{i}"));
        let co = Checkout::clone(&r, "main", &dir)
            .unwrap_or_else(|e| panic!("clone with {kind} key: {e}"));
        std::fs::write(dir.join("app.yaml"), format!("image: nginx:{i}\n")).unwrap();
        let id = co.commit(&author(), kind).unwrap().unwrap();
        co.push(&r, "main")
            .unwrap_or_else(|e| panic!("push with {kind} key: {e}"));
        assert_eq!(w.rev(&bare, "main").unwrap(), id, "{kind}");
    }
}

#[test]
fn ecdsa_and_rsa_host_keys() {
    let w = World::new();
    let (private, public) = ssh_keygen(&w.path("keys"), "id", "ed25519", "");
    for host_kind in ["ecdsa", "rsa"] {
        // A server whose only host key is of that kind.
        let d = SshServer::start_with_host_keys(&[host_kind]);
        d.authorize_key(&public);
        let Served { bare, url, .. } = served_repo(d, "main", FILES);
        let r = ssh_remote(&url, &private, None, &d.known_hosts());
        Checkout::clone(&r, "main", &w.path(&format!("c-{host_kind}")))
            .unwrap_or_else(|e| panic!("{host_kind} host key: {e}"));
        let refs = tagline::git::ls_remote(&r).unwrap();
        assert!(
            refs.iter()
                .any(|(n, id)| n == "refs/heads/main" && Some(id.clone()) == w.rev(&bare, "main")),
            "{refs:?}"
        );
    }
}

#[test]
fn changed_or_unknown_host_key_is_refused() {
    let w = World::new();
    let d = ed25519_server();
    let url = served_repo(d, "main", FILES).url;
    let (private, public) = ssh_keygen(&w.path("keys"), "id", "ed25519", "");
    d.authorize_key(&public);
    let (_, other_host) = ssh_keygen(&w.path("keys"), "other-host", "ed25519", "");
    let other: Vec<&str> = other_host.split_whitespace().take(2).collect();
    let port = d.port();
    let cases = [
        // Same host, another key: the key changed.
        (
            format!("[127.0.0.1]:{port} {}\n", other.join(" ")),
            "changed",
        ),
        // The right key, but for another port: unknown host.
        (
            d.known_hosts()
                .replace(&format!(":{port}]"), ":1]")
                .replace(&format!("]:{port}"), "]:1"),
            "not in known_hosts",
        ),
    ];
    for (i, (known_hosts, expect)) in cases.iter().enumerate() {
        let r = ssh_remote(&url, &private, None, known_hosts);
        let err = Checkout::clone(&r, "main", &w.path(&format!("c{i}"))).unwrap_err();
        assert!(matches!(err, GitError::Certificate { .. }), "{err:?}");
        assert!(err.to_string().contains(expect), "{err}");
        assert!(!err.is_retryable());
    }
}

#[test]
fn unauthorized_key_or_wrong_passphrase_is_an_auth_error() {
    let w = World::new();
    let d = ed25519_server();
    let url = served_repo(d, "main", FILES).url;
    let (_, public) = ssh_keygen(&w.path("keys"), "id", "ed25519", "");
    let (stranger, _) = ssh_keygen(&w.path("keys"), "stranger", "ed25519", "");
    let (locked, locked_pub) = ssh_keygen(&w.path("keys"), "locked", "ed25519", "right-phrase");
    d.authorize_key(&public);
    d.authorize_key(&locked_pub);
    for (key, pass) in [
        (&stranger, None),
        (&locked, Some("bad-phrase-42")),
        (&locked, None),
    ] {
        let r = ssh_remote(&url, key, pass, &d.known_hosts());
        let err = Checkout::clone(&r, "main", &w.path("c")).unwrap_err();
        assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains("bad-phrase-42"),
            "{shown}"
        );
        let _ = std::fs::remove_dir_all(w.path("c"));
    }
}

#[test]
fn empty_known_hosts_is_a_configuration_error() {
    let w = World::new();
    let (private, _) = ssh_keygen(&w.path("keys"), "id", "ed25519", "");
    let url = format!("ssh://root@127.0.0.1:1{}", w.path("repo.git").display());
    let r = ssh_remote(&url, &private, None, "# nothing\n");
    let err = Checkout::clone(&r, "main", &w.path("c")).unwrap_err();
    assert!(matches!(err, GitError::Config { .. }), "{err:?}");
}

#[test]
fn only_the_configured_host_key_type_is_asked_for() {
    // The server has ecdsa, rsa and ed25519 host keys; known_hosts trusts only one of them.
    // tagline must ask for that algorithm, whatever libssh2 would prefer by default.
    let w = World::new();
    let d = SshServer::start_with_host_keys(&["ecdsa", "rsa", "ed25519"]);
    let url = served_repo(d, "main", FILES).url;
    let (private, public) = ssh_keygen(&w.path("keys"), "id", "ed25519", "");
    d.authorize_key(&public);
    let lines = d.host_key_lines();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        let r = ssh_remote(&url, &private, None, line);
        Checkout::clone(&r, "main", &w.path(&format!("c{i}")))
            .unwrap_or_else(|e| panic!("known_hosts {line}: {e}"));
    }
}

/// Runs in a child process (see `the_service_accounts_ssh_dir_is_never_read`), with a hostile
/// `$HOME/.ssh`; does nothing when started without its environment.
#[test]
#[ignore = "helper run by the_service_accounts_ssh_dir_is_never_read"]
fn child_clone_with_hostile_home() {
    let (Ok(url), Ok(key), Ok(known_hosts), Ok(dir)) = (
        std::env::var("TAGLINE_TEST_URL"),
        std::env::var("TAGLINE_TEST_KEY"),
        std::env::var("TAGLINE_TEST_KNOWN_HOSTS"),
        std::env::var("TAGLINE_TEST_DIR"),
    ) else {
        return;
    };
    let mut r = remote(&url);
    r.auth = Some(Auth::Ssh {
        identity: std::fs::read_to_string(key).unwrap(),
        password: None,
        known_hosts,
    });
    Checkout::clone(&r, "main", std::path::Path::new(&dir)).unwrap();
}

#[test]
fn the_service_accounts_ssh_dir_is_never_read() {
    let w = World::new();
    let d = SshServer::start_with_host_keys(&["ed25519", "ecdsa"]);
    let url = served_repo(d, "main", FILES).url;
    let keys = w.path("keys");
    let (_, public) = ssh_keygen(&keys, "id", "ed25519", "");
    d.authorize_key(&public);
    // $HOME/.ssh/known_hosts: an unparsable line, and for this very server another key of
    // another type (which would make libssh2 ask for that type).
    let home = w.path("hostile-home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let (_, other) = ssh_keygen(&keys, "other", "ecdsa", "");
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    std::fs::write(
        home.join(".ssh/known_hosts"),
        format!(
            "this is not a known_hosts line\n[127.0.0.1]:{} {}\n",
            d.port(),
            other.join(" ")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_clone_with_hostile_home",
            "--ignored",
            "--nocapture",
        ])
        .env("HOME", &home)
        .env("TAGLINE_TEST_URL", &url)
        .env("TAGLINE_TEST_KEY", keys.join("id"))
        .env("TAGLINE_TEST_KNOWN_HOSTS", &d.host_key_lines()[0])
        .env("TAGLINE_TEST_DIR", w.path("clone"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child_pid = out.id();
    let out = out.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.path("clone/app.yaml").exists());
    // The child's private libgit2 home (its known_hosts) did not outlive the handshake.
    let prefix = format!("tagline-libgit2-home-{child_pid}-");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn concurrent_sessions_each_get_their_own_known_hosts() {
    // Threads trusting different host keys of one server clone at the same time: each must
    // ask for (and accept) its own key type, none may block another for good.
    let w = World::new();
    let d = SshServer::start_with_host_keys(&["ecdsa", "rsa", "ed25519"]);
    let Served { bare, url, .. } = served_repo(d, "main", FILES);
    let (private, public) = ssh_keygen(&w.path("keys"), "id", "ed25519", "");
    d.authorize_key(&public);
    let host_lines = d.host_key_lines();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let line = host_lines[i % 3].clone();
                let r = ssh_remote(&url, &private, None, &line);
                let dir = w.path(&format!("c{i}"));
                scope.spawn(move || {
                    let co = Checkout::clone(&r, "main", &dir)?;
                    tagline::git::ls_remote(&r)?;
                    Ok::<_, GitError>(co.head)
                })
            })
            .collect();
        for h in handles {
            let head = h.join().unwrap().unwrap();
            assert_eq!(Some(head), w.rev(&bare, "main"));
        }
    });
}

#[test]
fn without_a_user_in_the_url_the_user_is_git() {
    let w = World::new();
    let d = ed25519_server();
    let bare = served_repo(d, "main", FILES).bare;
    let (private, public) = ssh_keygen(&w.path("keys"), "id", "ed25519", "");
    d.authorize_key(&public);
    let mut r = remote(&format!("ssh://127.0.0.1:{}{}", d.port(), bare.display()));
    r.auth = Some(Auth::Ssh {
        identity: private,
        password: None,
        known_hosts: d.known_hosts(),
    });
    // This machine has no `git` account: the server refuses it, and says whom it refused.
    let err = Checkout::clone(&r, "main", &w.path("c")).unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    let mut log = String::new();
    for _ in 0..50 {
        log = d.sshd_log();
        if log.contains("user git") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(log.contains("Invalid user git"), "{log}");
}
