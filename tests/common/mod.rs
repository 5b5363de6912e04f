//! The end-to-end test harness: real peers started once per test binary on 127.0.0.1, the
//! `tagline` binary in a clean environment, and config folders.
//!
//! - [`Registry`]: Debian's `docker-registry`; [`RegistryOptions`] for htpasswd basic auth,
//!   TLS, mTLS; [`Registry::start_token_auth`] for the bearer-token flow. `push_tags`,
//!   `push_variant`, `list_tags`, `list_tags_with_skopeo`, `manifest_digest`,
//!   `delete_manifest`, `pull_secret_yaml`, `cert_secret_yaml`.
//! - [`GitServer`]: `git http-backend` behind lighttpd, HTTP or HTTPS, optional basic auth
//!   ([`GitOptions`]). [`GitDaemon`]: `git://` with push. [`SshServer`]: a private `sshd`
//!   (`start_with_host_keys` for other host key kinds).
//!   All three deref to [`Repos`]: `create_repo`, `commit`, `log`, `file`, `files`, `diff`,
//!   `head`, `branches`, `set_hook`, `raw_commit`.
//! - [`Proxy`]: `tinyproxy` with Basic proxy auth; `requests()` reads which requests went
//!   through it; `secret_yaml` for a `proxySecretRef`.
//! - [`TestCa`]: the process's CA; every TLS peer's certificate comes from it
//!   (`issue_server_pem` / `issue_chain_pem` for a server of its own; `unrelated` for a CA
//!   that signed nothing).
//! - [`gitlib`]: for tests of the library's `tagline::git` API: a scratch `World` with the
//!   git CLI, `served_repo` (a uniquely named repository on a shared server), `author`,
//!   `remote`, `file_url`, `ssh_keygen`.
//! - [`tagline`], [`ConfigDir`], [`unique_name`], [`yaml::secret`], [`git()`].
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! let registry = Registry::start(RegistryOptions::default());
//! let repo = unique_name("team/app");
//! registry.push_tags(&repo, &["1.0.0", "1.1.0"]);
//! let git = GitServer::start(GitOptions::default());
//! let fleet = unique_name("fleet");
//! let url = git.create_repo(&fleet, "main", &[("deploy/app.yaml", "...")]);
//! let config = ConfigDir::new();
//! config.write("objects.yaml", "...");
//! config.write("secret.yaml", &registry.pull_secret_yaml("regcred"));
//! let out = tagline().args(["run", "--once", "--config"]).arg(config.path()).output();
//! assert_eq!(git.log(&fleet, "main")[0].author_name, "...");
//! ```
//!
//! Tests share peers, so each names its repositories with [`unique_name`]. Peers and scratch
//! files never outlive the test process (see [`proc`]). The harness never relies on the host's
//! `SSL_CERT_FILE` / `GIT_SSL_CAINFO` / `CURL_CA_BUNDLE`: TLS peers are signed by the
//! [`TestCa`], which tests hand to tagline explicitly (`ca.crt` in a Secret).
#![allow(dead_code, unused_imports)]

pub mod git;
pub mod gitlib;
pub mod holding_proxy;
pub mod proc;
pub mod proxy;
pub mod registry;
pub mod service;
pub mod socks;
pub mod tls;
pub mod token;
pub mod yaml;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub use git::{git, Commit, GitDaemon, GitOptions, GitServer, Repos, SshServer};
pub use proxy::{Proxy, PROXY_PASSWORD, PROXY_USER};
pub use registry::{Registry, RegistryOptions};
pub use service::Service;
pub use socks::SocksProxy;
pub use tls::TestCa;
pub use yaml::secret;

/// The built `tagline` binary with a clean environment: none of the host's TLS-trust, git or
/// proxy variables (`SSL_*`, `GIT_*`, `CURL_CA_BUNDLE`, `*_proxy`, …), `HOME` and
/// `XDG_CONFIG_HOME` in an empty scratch directory of its own, stdin closed.
pub fn tagline() -> Command {
    let home = proc::scratch_dir("tagline-home").keep();
    fs::create_dir_all(home.join(".config")).expect("create tagline HOME");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagline"));
    proc::scrub_env(&mut cmd, &home);
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// A name unique within this test process: `<prefix>-<n>`. Tests share peers, so each test
/// names its repositories with this.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A config folder for `tagline --config`, removed when dropped.
#[derive(Debug)]
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// An empty config folder.
    pub fn new() -> ConfigDir {
        ConfigDir {
            dir: proc::scratch_dir("config"),
        }
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `content` to `file` (relative; parents created) and returns its path.
    pub fn write(&self, file: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create config subdir");
        }
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Default for ConfigDir {
    fn default() -> Self {
        ConfigDir::new()
    }
}
