//! Helpers for tests of the library's `tagline::git` API: a scratch [`World`] with the git CLI
//! (clean configuration) to make and inspect repositories, repositories on the shared servers
//! ([`served_repo`]), and the [`author`] / [`remote`] values the API takes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tagline::git::{Author, Remote};

use super::git::{git, Repos};
use super::proc::{run, scratch_dir, scratch_home, scrub_env};
use super::unique_name;

/// A scratch directory for one test (clones, local bare repositories, keys), removed when
/// dropped and at the latest when the test process exits.
pub struct World {
    tmp: tempfile::TempDir,
}

impl World {
    /// An empty scratch directory.
    pub fn new() -> World {
        World {
            tmp: scratch_dir("gitlib"),
        }
    }

    /// The scratch directory.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// `<scratch>/<rel>` (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `git <args>` in `dir` with the harness's clean configuration; panics on failure;
    /// returns stdout, trimmed.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_cmd(dir, args).output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The `git <args>` command in `dir` (the harness's [`git()`]), stdin closed.
    pub fn git_cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = git();
        cmd.current_dir(dir)
            .args(args)
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// A local bare repository `<scratch>/<name>.git` whose branch `branch` holds `files` in
    /// one commit (push options advertised, push over HTTP allowed).
    pub fn bare_repo(&self, name: &str, branch: &str, files: &[(&str, &str)]) -> PathBuf {
        let bare = self.path(&format!("{name}.git"));
        let seed = self.path(&format!("{name}.seed"));
        fs::create_dir_all(&seed).unwrap();
        self.git(&seed, &["init", "-q", "-b", branch]);
        write_files(&seed, files);
        self.git(&seed, &["add", "-A"]);
        self.git(&seed, &["commit", "-q", "-m", "seed"]);
        self.git(
            self.root(),
            &["init", "-q", "--bare", "-b", branch, bare.to_str().unwrap()],
        );
        self.git(&bare, &["config", "receive.advertisePushOptions", "true"]);
        self.git(&bare, &["config", "http.receivepack", "true"]);
        self.git(&seed, &["push", "-q", bare.to_str().unwrap(), branch]);
        bare
    }

    /// Commits `files` on top of `branch` of `bare` from a separate clone (another writer);
    /// returns the new commit.
    pub fn commit_elsewhere(&self, bare: &Path, branch: &str, files: &[(&str, &str)]) -> String {
        let other = tempfile::tempdir_in(self.root()).unwrap();
        let dir = other.path().join("w");
        self.git(
            self.root(),
            &[
                "clone",
                "-q",
                "-b",
                branch,
                bare.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        write_files(&dir, files);
        self.git(&dir, &["add", "-A"]);
        self.git(&dir, &["commit", "-q", "-m", "elsewhere"]);
        self.git(&dir, &["push", "-q", "origin", branch]);
        self.git(&dir, &["rev-parse", "HEAD"])
    }

    /// The commit (or object) `rev` names in `repo`, or None.
    pub fn rev(&self, repo: &Path, rev: &str) -> Option<String> {
        let out = self
            .git_cmd(repo, &["rev-parse", "--verify", "-q", rev])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    }

    /// Installs an executable hook script in a (bare) git directory.
    pub fn hook(&self, git_dir: &Path, name: &str, script: &str) {
        let hooks = git_dir.join("hooks");
        fs::create_dir_all(&hooks).unwrap();
        let p = hooks.join(name);
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

/// A repository on a shared server, named uniquely for the test that made it.
#[derive(Debug, Clone)]
pub struct Served {
    /// Its name on the server (`repo-<n>`).
    pub name: String,
    /// Its bare directory, for the git CLI.
    pub bare: PathBuf,
    /// Its clone URL on the server.
    pub url: String,
}

/// A new bare repository `repo-<n>` on the server of `repos` whose `branch` holds `files` in
/// one commit.
pub fn served_repo(repos: &Repos, branch: &str, files: &[(&str, &str)]) -> Served {
    let name = unique_name("repo");
    let url = repos.create_repo(&name, branch, files);
    Served {
        bare: repos.git_dir(&name),
        name,
        url,
    }
}

/// The author of the commits the tests have tagline make.
pub fn author() -> Author {
    Author {
        name: "Tagline Bot".into(),
        email: "bot@example.com".into(),
    }
}

/// A remote for `url`: no auth, no CA, no proxy, a 30 s timeout.
pub fn remote(url: &str) -> Remote {
    Remote {
        url: url.to_string(),
        auth: None,
        ca_pem: None,
        timeout: Duration::from_secs(30),
        proxy: None,
        client_identity: None,
    }
}

/// `file://<path>`.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// `ssh-keygen`s a key of `kind` into `<dir>/<name>` and returns (private key text, public
/// key line). `kind` is `<type>[-<format>]`: type `ed25519`, `ecdsa`, `ecdsa384`, `rsa`
/// (2048 bits); format `pem` or `pkcs8` (else OpenSSH's own).
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> (String, String) {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    scrub_env(&mut cmd, scratch_home());
    cmd.arg("-q").arg("-N").arg(passphrase).arg("-C").arg(name);
    let (kind, format) = kind.split_once('-').unwrap_or((kind, ""));
    match kind {
        "rsa" => cmd.args(["-t", "rsa", "-b", "2048"]),
        "ecdsa384" => cmd.args(["-t", "ecdsa", "-b", "384"]),
        other => cmd.args(["-t", other]),
    };
    match format {
        "pem" => cmd.args(["-m", "PEM"]),
        "pkcs8" => cmd.args(["-m", "PKCS8"]),
        _ => &mut cmd,
    };
    run("ssh-keygen", cmd.arg("-f").arg(&path));
    (
        fs::read_to_string(&path).unwrap(),
        fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string(),
    )
}
