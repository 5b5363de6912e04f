//! The end-to-end test harness: real peers (an OCI registry, Git servers) started once per
//! test binary on 127.0.0.1, the `tagline` binary in a clean environment, and config folders.
//!
//! Use from an integration test with `mod common;` and e.g.
//!
//! ```ignore
//! let registry = Registry::start(RegistryOptions::default());
//! registry.push_tags("team/app", &["1.0.0", "1.1.0"]);
//! let git = GitServer::start(GitOptions::default());
//! let url = git.create_repo(&unique_name("fleet"), "main", &[("deploy/app.yaml", "...")]);
//! let config = ConfigDir::new();
//! config.write("objects.yaml", "...");
//! let out = tagline().args(["run", "--once", "--config"]).arg(config.path()).output();
//! ```
//!
//! Peers and scratch files never outlive the test process (see [`proc`]). The harness never
//! relies on the host's `SSL_CERT_FILE` / `GIT_SSL_CAINFO` / `CURL_CA_BUNDLE`: every TLS peer
//! is signed by the process's [`TestCa`], which callers hand over explicitly.
#![allow(dead_code, unused_imports)]

pub mod git;
pub mod proc;
pub mod registry;
pub mod tls;
pub mod token;
pub mod yaml;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub use git::{git, Commit, GitDaemon, GitOptions, GitServer, Repos, SshServer};
pub use registry::{Registry, RegistryOptions};
pub use tls::TestCa;

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
