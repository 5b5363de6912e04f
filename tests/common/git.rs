//! Real Git server peers: `git http-backend` behind lighttpd (HTTP or HTTPS, optional basic
//! auth) and `git daemon` (git://, push enabled), each serving a root of bare repositories
//! ([`Repos`]) that tests seed and inspect with the git CLI in a clean environment.

use std::collections::HashMap;
use std::fs;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::proc::{
    output, port_open, run, scratch_dir, scratch_home, scrub_env, start_on_free_port, Peer,
};
use super::tls::TestCa;

/// Author and committer of the commits the harness makes itself.
pub const HARNESS_NAME: &str = "Harness";
/// Email of the commits the harness makes itself.
pub const HARNESS_EMAIL: &str = "harness@tagline.test";

/// A `git` command with a clean environment: no system or user config (`GIT_CONFIG_NOSYSTEM`,
/// an empty scratch `HOME`), none of the host's `GIT_*` / `SSL_*` / `CURL_CA_BUNDLE` variables,
/// no prompts, and the harness as author and committer.
pub fn git() -> Command {
    let mut cmd = Command::new("git");
    clean_git_env(&mut cmd);
    cmd.args([
        "-c",
        "init.defaultBranch=main",
        "-c",
        "advice.detachedHead=false",
    ]);
    cmd
}

fn clean_git_env(cmd: &mut Command) {
    scrub_env(cmd, scratch_home());
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", HARNESS_NAME)
        .env("GIT_AUTHOR_EMAIL", HARNESS_EMAIL)
        .env("GIT_COMMITTER_NAME", HARNESS_NAME)
        .env("GIT_COMMITTER_EMAIL", HARNESS_EMAIL);
}

/// A [`git`] command that trusts the process's [`TestCa`] for HTTPS (`http.sslCAInfo`).
pub fn git_trusting_test_ca() -> Command {
    let mut cmd = git();
    cmd.arg("-c").arg(format!(
        "http.sslCAInfo={}",
        TestCa::get().ca_path().display()
    ));
    cmd
}

/// One commit as `git log` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full SHA-1.
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
    /// The full message (subject, blank line, body), without git's trailing newline.
    pub message: String,
    /// Parent SHAs, first parent first.
    pub parents: Vec<String>,
}

/// A directory of bare repositories served by one git server, and where clients reach them.
/// Repository names may contain `/`; `<name>` lives at `<root>/<name>.git`.
#[derive(Debug)]
pub struct Repos {
    root: PathBuf,
    url_base: String,
}

impl Repos {
    /// The directory holding the bare repositories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The clone URL of `repo`, e.g. `http://127.0.0.1:<p>/git/<repo>.git`.
    pub fn url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.url_base)
    }

    /// The bare repository's directory (`<root>/<repo>.git`).
    pub fn git_dir(&self, repo: &str) -> PathBuf {
        self.root.join(format!("{repo}.git"))
    }

    /// Creates the bare repository `name` (HEAD on `branch`, push over HTTP allowed, push
    /// options advertised) without any commit. Returns its URL.
    pub fn create_empty_repo(&self, name: &str, branch: &str) -> String {
        let dir = self.git_dir(name);
        assert!(!dir.exists(), "repository {name} already exists");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        run(
            "git init --bare",
            git()
                .arg("init")
                .arg("--bare")
                .arg("-q")
                .arg("-b")
                .arg(branch)
                .arg(&dir),
        );
        for (key, value) in [
            ("http.receivepack", "true"),
            ("receive.advertisePushOptions", "true"),
        ] {
            run(
                "git config",
                git().arg("-C").arg(&dir).args(["config", key, value]),
            );
        }
        self.url(name)
    }

    /// Creates the bare repository `name` with one commit on `branch` holding `files`
    /// (`(path, content)`, parents created as needed). Returns its URL.
    pub fn create_repo(&self, name: &str, branch: &str, files: &[(&str, &str)]) -> String {
        let url = self.create_empty_repo(name, branch);
        self.commit(name, branch, files, "Initial commit");
        url
    }

    /// Creates the bare repository `name` with one commit on `branch` holding a copy of the
    /// directory `tree`. Returns its URL.
    pub fn create_repo_from_dir(&self, name: &str, branch: &str, tree: &Path) -> String {
        let url = self.create_empty_repo(name, branch);
        let work = self.work_tree(name, branch);
        copy_dir(tree, work.path());
        self.commit_work_tree(work.path(), branch, "Initial commit");
        url
    }

    /// Adds a commit on `branch` (created if missing) that writes `files` over the current
    /// tree, as another client of the server would; returns the new commit's SHA.
    pub fn commit(
        &self,
        repo: &str,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> String {
        let work = self.work_tree(repo, branch);
        for (path, content) in files {
            let file = work.path().join(path);
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent).expect("create parent dirs");
            }
            fs::write(&file, content).unwrap_or_else(|e| panic!("write {path}: {e}"));
        }
        self.commit_work_tree(work.path(), branch, message)
    }

    /// A temporary clone of `repo` with `branch` checked out; a missing branch starts from
    /// the repository's HEAD (unborn in an empty repository).
    fn work_tree(&self, repo: &str, branch: &str) -> tempfile::TempDir {
        let work = scratch_dir("worktree");
        let dir = work.path();
        run(
            "git clone",
            git()
                .arg("clone")
                .arg("-q")
                .arg(self.git_dir(repo))
                .arg(dir),
        );
        let mut cmd = git();
        cmd.arg("-C").arg(dir);
        if self.head(repo, branch).is_some() {
            cmd.args(["checkout", "-q", branch]);
        } else if self.log_is_empty(dir) {
            cmd.args(["symbolic-ref", "HEAD"])
                .arg(format!("refs/heads/{branch}"));
        } else {
            cmd.args(["checkout", "-q", "-b", branch]);
        }
        run("git checkout", &mut cmd);
        work
    }

    fn log_is_empty(&self, work: &Path) -> bool {
        !output(
            "git rev-parse",
            git()
                .arg("-C")
                .arg(work)
                .args(["rev-parse", "-q", "--verify", "HEAD"]),
        )
        .status
        .success()
    }

    fn commit_work_tree(&self, work: &Path, branch: &str, message: &str) -> String {
        run("git add", git().arg("-C").arg(work).args(["add", "-A"]));
        run(
            "git commit",
            git()
                .arg("-C")
                .arg(work)
                .args(["commit", "-q", "--allow-empty", "-m", message]),
        );
        run(
            "git push",
            git()
                .arg("-C")
                .arg(work)
                .args(["push", "-q", "origin"])
                .arg(format!("HEAD:refs/heads/{branch}")),
        );
        run(
            "git rev-parse",
            git().arg("-C").arg(work).args(["rev-parse", "HEAD"]),
        )
        .trim()
        .to_string()
    }

    /// The commit `branch` points at, `None` when the branch does not exist.
    pub fn head(&self, repo: &str, branch: &str) -> Option<String> {
        let out = output(
            "git rev-parse",
            git()
                .arg("--git-dir")
                .arg(self.git_dir(repo))
                .args(["rev-parse", "--verify", "-q"])
                .arg(format!("refs/heads/{branch}^{{commit}}")),
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The branches of `repo`, sorted.
    pub fn branches(&self, repo: &str) -> Vec<String> {
        run(
            "git for-each-ref",
            git().arg("--git-dir").arg(self.git_dir(repo)).args([
                "for-each-ref",
                "--format=%(refname:short)",
                "refs/heads",
            ]),
        )
        .lines()
        .map(String::from)
        .collect()
    }

    /// The history of `branch` (a branch name or any revision), newest first.
    pub fn log(&self, repo: &str, branch: &str) -> Vec<Commit> {
        let text = run(
            "git log",
            git()
                .arg("--git-dir")
                .arg(self.git_dir(repo))
                .args([
                    "log",
                    "-z",
                    "--format=%H%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%P%x1f%B",
                ])
                .arg(branch)
                .arg("--"),
        );
        text.split('\0')
            .filter(|record| !record.is_empty())
            .map(|record| {
                let fields: Vec<&str> = record.splitn(7, '\x1f').collect();
                assert_eq!(fields.len(), 7, "unexpected git log record {record:?}");
                Commit {
                    sha: fields[0].to_string(),
                    author_name: fields[1].to_string(),
                    author_email: fields[2].to_string(),
                    committer_name: fields[3].to_string(),
                    committer_email: fields[4].to_string(),
                    parents: fields[5].split_whitespace().map(String::from).collect(),
                    message: fields[6].trim_end_matches('\n').to_string(),
                }
            })
            .collect()
    }

    /// The content of `path` at the tip of `branch` (or any revision).
    pub fn file(&self, repo: &str, branch: &str, path: &str) -> String {
        run(
            "git show",
            git()
                .arg("--git-dir")
                .arg(self.git_dir(repo))
                .arg("show")
                .arg(format!("{branch}:{path}")),
        )
    }

    /// The paths of every file at the tip of `branch` (or any revision), sorted.
    pub fn files(&self, repo: &str, branch: &str) -> Vec<String> {
        run(
            "git ls-tree",
            git().arg("--git-dir").arg(self.git_dir(repo)).args([
                "ls-tree",
                "-r",
                "--name-only",
                branch,
            ]),
        )
        .lines()
        .map(String::from)
        .collect()
    }

    /// `git diff <from> <to>`: the patch text between two revisions (branch names, SHAs, …).
    pub fn diff(&self, repo: &str, from: &str, to: &str) -> String {
        run(
            "git diff",
            git().arg("--git-dir").arg(self.git_dir(repo)).args([
                "diff",
                "--no-color",
                "--no-ext-diff",
                from,
                to,
                "--",
            ]),
        )
    }

    /// The raw commit object of `rev` (`git cat-file commit`), e.g. to check a signature.
    pub fn raw_commit(&self, repo: &str, rev: &str) -> String {
        run(
            "git cat-file",
            git()
                .arg("--git-dir")
                .arg(self.git_dir(repo))
                .args(["cat-file", "commit", rev]),
        )
    }

    /// Installs an executable hook (`pre-receive`, `update`, …) with the script `body`
    /// (include the `#!` line) in the bare repository.
    pub fn set_hook(&self, repo: &str, hook: &str, body: &str) {
        let hooks = self.git_dir(repo).join("hooks");
        fs::create_dir_all(&hooks).expect("create hooks dir");
        let path = hooks.join(hook);
        fs::write(&path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod hook");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("read dir entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            fs::create_dir_all(&target).expect("create dir");
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// How a [`GitServer`] is configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GitOptions {
    /// Require HTTP basic auth with this one user (htpasswd file) for fetch and push.
    pub basic_auth: Option<(&'static str, &'static str)>,
    /// Serve HTTPS with a certificate from the process's [`TestCa`] instead of HTTP.
    pub tls: bool,
    /// With `tls`: require a client certificate signed by the [`TestCa`] (mTLS).
    pub client_cert: bool,
}

/// `git http-backend` behind lighttpd, serving its [`Repos`] at `/git/<name>.git`. Derefs to
/// [`Repos`] for the repository helpers. Shared from [`GitServer::start`]; an owned one from
/// [`GitServer::start_owned`] stops when dropped.
#[derive(Debug)]
pub struct GitServer {
    options: GitOptions,
    port: u16,
    repos: Repos,
    peer: Mutex<Peer>,
    _dir: tempfile::TempDir,
}

impl GitServer {
    /// The server for `options`, shared by every test of this test binary: started on first
    /// use on a free port, accepting connections before this returns.
    pub fn start(options: GitOptions) -> &'static GitServer {
        static SHARED: OnceLock<Mutex<HashMap<GitOptions, &'static GitServer>>> = OnceLock::new();
        let mut shared = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shared
            .entry(options)
            .or_insert_with(|| Box::leak(Box::new(GitServer::start_owned(options))))
    }

    /// A server of its own for one test; stops when dropped.
    pub fn start_owned(options: GitOptions) -> GitServer {
        GitServer::launch(options, None)
    }

    /// A server of its own for one test that presents `server_pem` (certificate, any chain,
    /// and key in one PEM file, e.g. from [`TestCa::issue_server_pem`]) instead of the
    /// [`TestCa`]'s server certificate; `options.tls` must be set. Stops when dropped.
    pub fn start_owned_with_cert(options: GitOptions, server_pem: &Path) -> GitServer {
        assert!(options.tls, "a server certificate needs options.tls");
        GitServer::launch(options, Some(server_pem))
    }

    fn launch(options: GitOptions, server_pem: Option<&Path>) -> GitServer {
        let guard = scratch_dir("git-http");
        let dir = guard.path().to_path_buf();
        let root = dir.join("repos");
        for sub in ["repos", "www", "upload", "home"] {
            fs::create_dir_all(dir.join(sub)).expect("create lighttpd dirs");
        }
        if let Some((user, pass)) = options.basic_auth {
            let mut cmd = Command::new("htpasswd");
            let line = run("htpasswd -Bbn", cmd.args(["-Bbn", user, pass]).env_clear());
            fs::write(dir.join("htpasswd"), line.trim_end().to_string() + "\n")
                .expect("write htpasswd");
        }
        let (port, peer) = start_on_free_port("lighttpd", |port| {
            let conf = dir.join("lighttpd.conf");
            fs::write(&conf, lighttpd_config(&dir, port, options, server_pem))
                .expect("write lighttpd.conf");
            let mut cmd = Command::new("lighttpd");
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .arg("-D")
                .arg("-f")
                .arg(&conf);
            let mut peer = Peer::spawn("lighttpd", cmd, &dir.join("lighttpd.log"))
                .map_err(|e| format!("spawn lighttpd: {e}"))?;
            peer.wait_ready(|| port_open(port))?;
            Ok((port, peer))
        });
        let scheme = if options.tls { "https" } else { "http" };
        GitServer {
            options,
            port,
            repos: Repos {
                root,
                url_base: format!("{scheme}://127.0.0.1:{port}/git"),
            },
            peer: Mutex::new(peer),
            _dir: guard,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The options it was started with.
    pub fn options(&self) -> GitOptions {
        self.options
    }

    /// The CA certificate (PEM) that signed its certificate; `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&'static str> {
        self.options.tls.then(|| TestCa::get().ca_pem())
    }

    /// The user and password it requires, if any.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        self.options.basic_auth
    }

    /// The URL of `repo` with the server's credentials in its userinfo (for the git CLI).
    pub fn url_with_credentials(&self, repo: &str) -> String {
        let url = self.url(repo);
        match self.options.basic_auth {
            Some((user, pass)) => url.replacen("://", &format!("://{user}:{pass}@"), 1),
            None => url,
        }
    }

    /// An `Opaque` Secret named `name` for a GitRepository's `secretRef`: `username` and
    /// `password` when the server wants them, `ca.crt` when it speaks HTTPS, `tls.crt` and
    /// `tls.key` when it wants a client certificate.
    pub fn auth_secret_yaml(&self, name: &str) -> String {
        let mut entries = Vec::new();
        if let Some((user, pass)) = self.options.basic_auth {
            entries.push(("username", user));
            entries.push(("password", pass));
        }
        if let Some(ca) = self.ca_pem() {
            entries.push(("ca.crt", ca));
        }
        if self.options.client_cert {
            entries.push(("tls.crt", TestCa::get().client_cert_pem()));
            entries.push(("tls.key", TestCa::get().client_key_pem()));
        }
        super::yaml::secret(name, "Opaque", &entries)
    }

    /// A [`git`] command that can reach this server: it trusts the [`TestCa`] when TLS is on.
    /// Credentials go in the URL ([`GitServer::url_with_credentials`]).
    pub fn git(&self) -> Command {
        if self.options.tls {
            git_trusting_test_ca()
        } else {
            git()
        }
    }

    /// lighttpd's process id.
    pub fn pid(&self) -> u32 {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }

    /// Stops the server now (for tests of an unreachable Git server).
    pub fn stop(&self) {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }
}

impl Deref for GitServer {
    type Target = Repos;
    fn deref(&self) -> &Repos {
        &self.repos
    }
}

fn lighttpd_config(
    dir: &Path,
    port: u16,
    options: GitOptions,
    server_pem: Option<&Path>,
) -> String {
    let backend = http_backend_path();
    let mut modules = vec![
        "mod_auth",
        "mod_authn_file",
        "mod_alias",
        "mod_setenv",
        "mod_cgi",
    ];
    if options.tls {
        modules.push("mod_openssl");
    }
    let modules = modules
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut conf = format!(
        r#"server.modules = ({modules})
server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{www}"
server.upload-dirs = ("{upload}")
server.errorlog = "{errorlog}"
server.max-request-size = 0
alias.url = ("/git" => "{backend}")
$HTTP["url"] =~ "^/git" {{
    cgi.assign = ("" => "")
    setenv.add-environment = (
        "GIT_PROJECT_ROOT" => "{root}",
        "GIT_HTTP_EXPORT_ALL" => "",
        "GIT_CONFIG_NOSYSTEM" => "1",
        "HOME" => "{home}"
    )
"#,
        www = dir.join("www").display(),
        upload = dir.join("upload").display(),
        errorlog = dir.join("lighttpd-error.log").display(),
        backend = backend.display(),
        root = dir.join("repos").display(),
        home = dir.join("home").display(),
    );
    if options.basic_auth.is_some() {
        conf += &format!(
            r#"    auth.backend = "htpasswd"
    auth.backend.htpasswd.userfile = "{}"
    auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
"#,
            dir.join("htpasswd").display()
        );
    }
    conf += "}\n";
    if options.tls {
        conf += &format!(
            "ssl.engine = \"enable\"\nssl.pemfile = \"{}\"\n",
            server_pem
                .map(Path::to_path_buf)
                .unwrap_or_else(|| TestCa::get().server_pem_path())
                .display()
        );
        if options.client_cert {
            conf += &format!(
                "ssl.ca-file = \"{}\"\nssl.verifyclient.activate = \"enable\"\n\
                 ssl.verifyclient.enforce = \"enable\"\n",
                TestCa::get().ca_path().display()
            );
        }
    }
    conf
}

/// Debian's `git http-backend`, else the one beside the `git` in PATH.
fn http_backend_path() -> PathBuf {
    let debian = Path::new("/usr/lib/git-core/git-http-backend");
    if debian.exists() {
        return debian.to_path_buf();
    }
    git_exec_path().join("git-http-backend")
}

fn git_exec_path() -> PathBuf {
    PathBuf::from(run("git --exec-path", git().arg("--exec-path")).trim())
}

/// `git daemon` serving its [`Repos`] at `git://127.0.0.1:<p>/<name>.git`, with push
/// (`receive-pack`) enabled and no auth. Derefs to [`Repos`].
#[derive(Debug)]
pub struct GitDaemon {
    port: u16,
    repos: Repos,
    peer: Mutex<Peer>,
    _dir: tempfile::TempDir,
}

impl GitDaemon {
    /// The daemon shared by every test of this test binary, started on first use.
    pub fn start() -> &'static GitDaemon {
        static SHARED: OnceLock<GitDaemon> = OnceLock::new();
        SHARED.get_or_init(GitDaemon::start_owned)
    }

    /// A daemon of its own for one test; stops when dropped.
    pub fn start_owned() -> GitDaemon {
        let guard = scratch_dir("git-daemon");
        let dir = guard.path().to_path_buf();
        let root = dir.join("repos");
        fs::create_dir_all(&root).expect("create repos dir");
        // Run the daemon binary itself, not `git daemon`: `git` would fork it as a child,
        // which would outlive a killed parent.
        let daemon = git_exec_path().join("git-daemon");
        let (port, peer) = start_on_free_port("git daemon", |port| {
            let mut cmd = Command::new(&daemon);
            clean_git_env(&mut cmd);
            cmd.arg("--reuseaddr")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", root.display()))
                .arg("--export-all")
                .arg("--enable=receive-pack")
                .arg("--informative-errors")
                .arg(&root);
            let mut peer = Peer::spawn("git daemon", cmd, &dir.join("git-daemon.log"))
                .map_err(|e| format!("spawn git daemon: {e}"))?;
            peer.wait_ready(|| port_open(port))?;
            Ok((port, peer))
        });
        GitDaemon {
            port,
            repos: Repos {
                root,
                url_base: format!("git://127.0.0.1:{port}"),
            },
            peer: Mutex::new(peer),
            _dir: guard,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }

    /// Stops the daemon now.
    pub fn stop(&self) {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }
}

impl Deref for GitDaemon {
    type Target = Repos;
    fn deref(&self) -> &Repos {
        &self.repos
    }
}

/// A private `sshd` serving its [`Repos`] over SSH at
/// `ssh://<user>@127.0.0.1:<p>/<abs root>/<name>.git`, with public-key auth only: one ed25519
/// client key ([`SshServer::client_key_path`]) is authorised, and [`SshServer::known_hosts`]
/// holds its (first) host key. Derefs to [`Repos`].
#[derive(Debug)]
pub struct SshServer {
    port: u16,
    user: String,
    dir: PathBuf,
    host_public_key: String,
    host_public_keys: Vec<String>,
    repos: Repos,
    peer: Mutex<Peer>,
    _dir: tempfile::TempDir,
}

impl SshServer {
    /// The SSH server (one ed25519 host key) shared by every test of this test binary,
    /// started on first use.
    pub fn start() -> &'static SshServer {
        SshServer::start_with_host_keys(&["ed25519"])
    }

    /// The SSH server with one host key of each of `kinds` (`ed25519`, `ecdsa`, `rsa`), in
    /// that order, shared by every test of this test binary that asks for the same kinds;
    /// started on first use.
    pub fn start_with_host_keys(kinds: &[&str]) -> &'static SshServer {
        type Shared = Mutex<HashMap<Vec<String>, &'static SshServer>>;
        static SHARED: OnceLock<Shared> = OnceLock::new();
        let mut shared = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shared
            .entry(kinds.iter().map(|k| k.to_string()).collect())
            .or_insert_with(|| Box::leak(Box::new(SshServer::start_owned_with_host_keys(kinds))))
    }

    /// A server of its own for one test; stops when dropped.
    pub fn start_owned() -> SshServer {
        SshServer::start_owned_with_host_keys(&["ed25519"])
    }

    /// A server of its own with one host key of each of `kinds`; stops when dropped.
    pub fn start_owned_with_host_keys(kinds: &[&str]) -> SshServer {
        assert!(!kinds.is_empty(), "sshd needs a host key");
        let guard = scratch_dir("sshd");
        let dir = guard.path().to_path_buf();
        let root = dir.join("repos");
        for sub in ["repos", "home"] {
            fs::create_dir_all(dir.join(sub)).expect("create sshd dirs");
        }
        // sshd's privilege separation directory; present on Debian once openssh-server ran.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let host_keys: Vec<String> = (0..kinds.len())
            .map(|i| match i {
                0 => "host_key".to_string(),
                i => format!("host_key{i}"),
            })
            .collect();
        for (key, kind) in host_keys
            .iter()
            .map(String::as_str)
            .zip(kinds.iter().copied())
            .chain([("client_key", "ed25519")])
        {
            let mut cmd = Command::new("ssh-keygen");
            scrub_env(&mut cmd, scratch_home());
            cmd.args(["-q", "-N", "", "-C", key]);
            match kind {
                "rsa" => cmd.args(["-t", "rsa", "-b", "2048"]),
                other => cmd.args(["-t", other]),
            };
            run("ssh-keygen", cmd.arg("-f").arg(dir.join(key)));
        }
        let read = |name: &str| {
            fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
        };
        fs::write(dir.join("authorized_keys"), read("client_key.pub")).expect("authorize key");
        let host_public_keys: Vec<String> = host_keys
            .iter()
            .map(|key| {
                read(&format!("{key}.pub"))
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let host_public_key = host_public_keys[0].clone();
        let host_key_config: String = host_keys
            .iter()
            .map(|key| format!("HostKey {}\n", dir.join(key).display()))
            .collect();
        let user = run("id -un", Command::new("id").arg("-un"))
            .trim()
            .to_string();
        let (port, peer) = start_on_free_port("sshd", |port| {
            let config = dir.join("sshd_config");
            fs::write(
                &config,
                format!(
                    "Port {port}
ListenAddress 127.0.0.1
{host_key_config}AuthorizedKeysFile {dir}/authorized_keys
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
AllowUsers {user}
LogLevel INFO
SetEnv GIT_CONFIG_NOSYSTEM=1 HOME={dir}/home
",
                    dir = dir.display()
                ),
            )
            .expect("write sshd_config");
            let mut cmd = Command::new("/usr/sbin/sshd");
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .args(["-D", "-e", "-f"])
                .arg(&config);
            let mut peer = Peer::spawn("sshd", cmd, &dir.join("sshd.log"))
                .map_err(|e| format!("spawn sshd: {e}"))?;
            peer.wait_ready(|| port_open(port))?;
            Ok((port, peer))
        });
        let known_hosts: String = host_public_keys
            .iter()
            .map(|key| format!("[127.0.0.1]:{port} {key}\n"))
            .collect();
        fs::write(dir.join("known_hosts"), known_hosts).expect("write known_hosts");
        SshServer {
            port,
            repos: Repos {
                url_base: format!("ssh://{user}@127.0.0.1:{port}{}", root.display()),
                root,
            },
            user,
            dir,
            host_public_key,
            host_public_keys,
            peer: Mutex::new(peer),
            _dir: guard,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user in its URLs (the user the tests run as).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The host key as `<type> <base64>`.
    pub fn host_public_key(&self) -> &str {
        &self.host_public_key
    }

    /// A `known_hosts` line for it: `[127.0.0.1]:<p> <type> <base64>` (newline-terminated),
    /// for its first host key.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key)
    }

    /// One `known_hosts` line (newline-terminated) per host key, in the order of the kinds
    /// it was started with.
    pub fn host_key_lines(&self) -> Vec<String> {
        self.host_public_keys
            .iter()
            .map(|key| format!("[127.0.0.1]:{} {key}\n", self.port))
            .collect()
    }

    /// Everything sshd logged so far (`LogLevel INFO`: refused users and keys included).
    pub fn sshd_log(&self) -> String {
        let path = self
            .peer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log_path()
            .to_path_buf();
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Path of the authorised client's private key (OpenSSH format, no passphrase).
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    /// The authorised client's private key (OpenSSH PEM, no passphrase).
    pub fn client_key(&self) -> String {
        fs::read_to_string(self.client_key_path()).expect("read client key")
    }

    /// An `Opaque` Secret named `name` for a GitRepository's `secretRef` over SSH:
    /// `identity` (the client key) and `known_hosts`.
    pub fn auth_secret_yaml(&self, name: &str) -> String {
        super::yaml::secret(
            name,
            "Opaque",
            &[
                ("identity", &self.client_key()),
                ("known_hosts", &self.known_hosts()),
            ],
        )
    }

    /// Authorises one more public key (an `authorized_keys` line). Safe from parallel tests:
    /// the file is replaced whole (sshd never reads a half-written one) under a lock.
    pub fn authorize_key(&self, public_key_line: &str) {
        static LOCK: Mutex<()> = Mutex::new(());
        let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.dir.join("authorized_keys");
        let mut keys = fs::read_to_string(&path).expect("read authorized_keys");
        keys.push_str(public_key_line.trim_end());
        keys.push('\n');
        let next = self.dir.join("authorized_keys.next");
        fs::write(&next, keys).expect("write authorized_keys");
        fs::rename(&next, &path).expect("replace authorized_keys");
    }

    /// A [`git`] command whose `ssh` uses the client key and trusts only the host key.
    pub fn git(&self) -> Command {
        let mut cmd = git();
        cmd.env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
                 -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
                self.client_key_path().display(),
                self.dir.join("known_hosts").display()
            ),
        );
        cmd
    }

    /// sshd's process id.
    pub fn pid(&self) -> u32 {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }

    /// Stops the server now.
    pub fn stop(&self) {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }
}

impl Deref for SshServer {
    type Target = Repos;
    fn deref(&self) -> &Repos {
        &self.repos
    }
}
