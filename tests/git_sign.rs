//! Signed commits (`git.commit.signingKey`): keys made with the real gpg / ssh-keygen, commits
//! signed by tagline, checked with the real `git verify-commit`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::gitlib::*;
use common::proc::Peer;
use tagline::git::{Checkout, GitError, Signer, SigningKey};

const FILES: &[(&str, &str)] = &[("app.yaml", "image: nginx:1.0\n")];

/// A GNUPGHOME with its own gpg-agent, run by the harness as a peer (its own process group,
/// killed when this is dropped or the test process exits) rather than left to gpg to start
/// as a daemon that would outlive the test.
///
/// gpg-agent forks even with `--no-detach` (the process we spawn exits, the agent is its
/// child, which `PR_SET_PDEATHSIG` does not reach). So it runs in command mode: the spawned
/// process becomes `sleep infinity` (it keeps the death signal across exec, so a test process
/// killed hard takes it along) and the agent, its child in the same process group, shuts down
/// by itself within a few seconds of that parent's death.
struct Gpg {
    home: PathBuf,
    _agent: Peer,
}

impl Gpg {
    fn new(w: &World) -> Gpg {
        use std::os::unix::fs::PermissionsExt;
        let home = w.path("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut cmd = Command::new("gpg-agent");
        cmd.env("GNUPGHOME", &home)
            .arg("--homedir")
            .arg(&home)
            .args(["--daemon", "--no-detach", "--allow-loopback-pinentry"])
            .args(["sleep", "infinity"]);
        let mut agent = Peer::spawn("gpg-agent", cmd, &w.path("gpg-agent.log")).unwrap();
        let socket = home.join("S.gpg-agent");
        agent.wait_ready(|| socket.exists()).unwrap();
        Gpg {
            home,
            _agent: agent,
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .args(["--batch", "--no-autostart", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .expect("gpg");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Generates a key; returns its fingerprint.
    fn gen(&self, uid: &str, algo: &str, usage: &str, passphrase: &str) -> String {
        self.run(&[
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            uid,
            algo,
            usage,
            "never",
        ]);
        let listing = self.run(&["--with-colons", "--list-secret-keys", uid]);
        listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_string()
    }

    fn export_secret(&self, fpr: &str, passphrase: &str) -> String {
        self.run(&[
            "--passphrase",
            passphrase,
            "--armor",
            "--export-secret-keys",
            fpr,
        ])
    }
}

/// Clones, changes a file, commits signed, pushes; returns the clone dir.
fn signed_commit(w: &World, bare: &Path, name: &str, signer: &Signer) -> PathBuf {
    let r = remote(&file_url(bare));
    let dir = w.path(name);
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), format!("image: nginx:{name}\n")).unwrap();
    let id = co
        .commit_with(&author(), "signed update", 1_700_000_000, Some(signer))
        .unwrap()
        .unwrap();
    assert_eq!(w.rev(&dir, "HEAD").unwrap(), id);
    assert_eq!(w.rev(&dir, "HEAD^").unwrap(), co.head);
    co.push(&r, "main").unwrap();
    assert_eq!(w.rev(bare, "main").unwrap(), id);
    dir
}

fn verify_commit(w: &World, dir: &Path, extra: &[&str], gnupg: Option<&Path>) -> (bool, String) {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["verify-commit", "-v", "HEAD"]);
    let mut cmd = w.git_cmd(dir, &args);
    if let Some(home) = gnupg {
        cmd.env("GNUPGHOME", home);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn openpgp_signed_commits_verify_with_git() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let gpg = Gpg::new(&w);
    let cases = [
        ("Ed <ed@example.com>", "ed25519", "sign", ""),
        ("Rsa <rsa@example.com>", "rsa2048", "sign", ""),
        // Primary key plus an encryption subkey, passphrase-protected.
        (
            "Locked <locked@example.com>",
            "default",
            "default",
            "s3cret phrase",
        ),
    ];
    for (i, (uid, algo, usage, pass)) in cases.iter().enumerate() {
        let fpr = gpg.gen(uid, algo, usage, pass);
        let key = SigningKey::OpenPgp {
            armored: gpg.export_secret(&fpr, pass),
            passphrase: (!pass.is_empty()).then(|| pass.to_string()),
        };
        let signer = Signer::new(&key).unwrap();
        assert_eq!(signer.public_id().to_uppercase(), fpr, "{uid}");
        let dir = signed_commit(&w, &bare, &format!("pgp{i}"), &signer);
        let (ok, out) = verify_commit(&w, &dir, &[], Some(&gpg.home));
        assert!(ok, "{uid}: {out}");
        assert!(out.contains("Good signature"), "{uid}: {out}");
        assert!(out.contains(&fpr), "{uid}: {out}");
    }
}

#[test]
fn openpgp_signing_subkey_is_used_when_present() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let gpg = Gpg::new(&w);
    let primary = gpg.gen("Sub <sub@example.com>", "ed25519", "cert", "");
    gpg.run(&[
        "--passphrase",
        "",
        "--quick-add-key",
        &primary,
        "ed25519",
        "sign",
        "never",
    ]);
    let listing = gpg.run(&["--with-colons", "--list-secret-keys", &primary]);
    let sub_fpr = listing
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .nth(1)
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_string();
    let key = SigningKey::OpenPgp {
        armored: gpg.export_secret(&primary, ""),
        passphrase: None,
    };
    let signer = Signer::new(&key).unwrap();
    assert_eq!(signer.public_id().to_uppercase(), sub_fpr);
    let dir = signed_commit(&w, &bare, "sub", &signer);
    let (ok, out) = verify_commit(&w, &dir, &[], Some(&gpg.home));
    assert!(ok && out.contains("Good signature"), "{out}");
}

#[test]
fn openpgp_key_errors() {
    let w = World::new();
    let gpg = Gpg::new(&w);
    let locked = gpg.gen("L <l@example.com>", "ed25519", "sign", "right");
    let other = gpg.gen("O <o@example.com>", "ed25519", "sign", "");
    let armored = gpg.export_secret(&locked, "right");
    let no_pass = Signer::new(&SigningKey::OpenPgp {
        armored: armored.clone(),
        passphrase: None,
    })
    .unwrap_err();
    assert!(
        no_pass
            .to_string()
            .contains("can not use passphrase protected signing key without 'passphrase' field"),
        "{no_pass}"
    );
    let wrong = Signer::new(&SigningKey::OpenPgp {
        armored: armored.clone(),
        passphrase: Some("wrong-phrase-9".into()),
    })
    .unwrap_err();
    assert!(matches!(wrong, GitError::Sign { .. }), "{wrong:?}");
    assert!(!wrong.to_string().contains("wrong-phrase-9"));
    assert!(!wrong.is_retryable());
    let both = armored + &gpg.export_secret(&other, "");
    let two = Signer::new(&SigningKey::OpenPgp {
        armored: both,
        passphrase: Some("right".into()),
    })
    .unwrap_err();
    assert!(two.to_string().contains("exactly one"), "{two}");
    let garbage = Signer::new(&SigningKey::OpenPgp {
        armored: "not a key".into(),
        passphrase: None,
    })
    .unwrap_err();
    assert!(matches!(garbage, GitError::Sign { .. }));
}

#[test]
fn ssh_signed_commits_verify_with_git() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    let keys = w.path("keys");
    let signers_file = w.path("allowed_signers");
    let mut allowed = String::new();
    let mut made = Vec::new();
    let kinds = [
        ("ed25519", ""),
        ("ecdsa", ""),
        ("rsa", ""),
        ("ed25519", "pp-42"),
        // PEM / PKCS#8 files, plain and encrypted.
        ("rsa-pem", ""),
        ("rsa-pem", "pp-43"),
        ("ecdsa-pem", ""),
        ("ecdsa384-pem", "pp-44"),
        ("rsa-pkcs8", "pp-45"),
    ];
    for (i, (kind, pass)) in kinds.iter().enumerate() {
        let (private, public) = ssh_keygen(&keys, &format!("sign{i}"), kind, pass);
        allowed.push_str(&format!("bot@example.com namespaces=\"git\" {public}\n"));
        made.push((kind.to_string(), private, pass.to_string()));
    }
    // An Ed25519 PKCS#8 key (ssh-keygen cannot write one): its public key as tagline sees it.
    let pkcs8 = w.path("ed25519.pkcs8");
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&pkcs8)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pkcs8 = std::fs::read_to_string(&pkcs8).unwrap();
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    let signer = Signer::new(&SigningKey::Ssh {
        private_key: pkcs8.clone(),
        passphrase: None,
    })
    .unwrap();
    allowed.push_str(&format!(
        "bot@example.com namespaces=\"git\" {}\n",
        signer.public_id()
    ));
    made.push(("ed25519-pkcs8".to_string(), pkcs8, String::new()));
    std::fs::write(&signers_file, &allowed).unwrap();
    let cfg = format!("gpg.ssh.allowedSignersFile={}", signers_file.display());
    for (i, (kind, private, pass)) in made.iter().enumerate() {
        let signer = Signer::new(&SigningKey::Ssh {
            private_key: private.clone(),
            passphrase: (!pass.is_empty()).then(|| pass.clone()),
        })
        .unwrap();
        let dir = signed_commit(&w, &bare, &format!("ssh{i}"), &signer);
        let (ok, out) = verify_commit(&w, &dir, &["-c", "gpg.format=ssh", "-c", &cfg], None);
        assert!(ok, "{kind}: {out}");
        assert!(out.contains("Good \"git\" signature"), "{kind}: {out}");
    }
    // An unsigned commit does not verify: the check above can fail.
    let r = remote(&file_url(&bare));
    let dir = w.path("unsigned");
    let co = Checkout::clone(&r, "main", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "x\n").unwrap();
    co.commit(&author(), "unsigned").unwrap().unwrap();
    let (ok, _) = verify_commit(&w, &dir, &["-c", "gpg.format=ssh", "-c", &cfg], None);
    assert!(!ok);
}

#[test]
fn ssh_key_errors() {
    let w = World::new();
    let (locked, _) = ssh_keygen(&w.path("keys"), "locked", "ed25519", "right");
    let none = Signer::new(&SigningKey::Ssh {
        private_key: locked.clone(),
        passphrase: None,
    })
    .unwrap_err();
    assert!(none.to_string().contains("'passphrase'"), "{none}");
    let wrong = Signer::new(&SigningKey::Ssh {
        private_key: locked,
        passphrase: Some("nope".into()),
    })
    .unwrap_err();
    assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
    let (pem, _) = ssh_keygen(&w.path("keys"), "locked-pem", "rsa-pem", "right-one");
    assert!(pem.contains("ENCRYPTED"));
    for (pass, expect) in [
        (None, "'passphrase'"),
        (Some("wrong-one"), "wrong passphrase"),
    ] {
        let err = Signer::new(&SigningKey::Ssh {
            private_key: pem.clone(),
            passphrase: pass.map(str::to_string),
        })
        .unwrap_err();
        assert!(err.to_string().contains(expect), "{err}");
    }
    let garbage = Signer::new(&SigningKey::Ssh {
        private_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
        passphrase: None,
    })
    .unwrap_err();
    assert!(matches!(garbage, GitError::Sign { .. }), "{garbage:?}");
    let debug = format!(
        "{:?}",
        SigningKey::Ssh {
            private_key: "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
            passphrase: Some("pp".into())
        }
    );
    assert!(
        !debug.contains("BEGIN") && !debug.contains("pp\""),
        "{debug}"
    );
}

#[test]
fn signed_commit_on_a_detached_tag_checkout() {
    let w = World::new();
    let bare = w.bare_repo("repo", "main", FILES);
    w.git(&bare, &["tag", "v1", "main"]);
    let (private, public) = ssh_keygen(&w.path("keys"), "k", "ed25519", "");
    let signer = Signer::new(&SigningKey::Ssh {
        private_key: private,
        passphrase: None,
    })
    .unwrap();
    let dir = w.path("c");
    let co = Checkout::clone_tag(&remote(&file_url(&bare)), "v1", &dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "x\n").unwrap();
    let id = co
        .commit_with(&author(), "m", 1_700_000_000, Some(&signer))
        .unwrap()
        .unwrap();
    assert_eq!(w.rev(&dir, "HEAD").unwrap(), id);
    assert_eq!(w.rev(&dir, "HEAD^").unwrap(), co.head);
    let signers = w.path("allowed");
    std::fs::write(&signers, format!("bot@example.com {public}\n")).unwrap();
    let cfg = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    let (ok, out) = verify_commit(&w, &dir, &["-c", "gpg.format=ssh", "-c", &cfg], None);
    assert!(ok, "{out}");
}
