//! Git write-back: clone, commit, push (libgit2), and commit-message rendering.
//!
//! CONTRACT (used by `automation`; the git owner may add, not change). All calls block: the
//! caller runs them on a blocking thread.
//! - `Remote { url, auth, ca_pem, timeout }` as a `GitRepository` and its Secret describe it.
//! - `Checkout::clone(&Remote, branch, dir) -> Result<Checkout, GitError>`.
//! - `Checkout::commit(&self, &Author, message) -> Result<Option<String>, GitError>`: stages
//!   every change in the work tree, commits; None when nothing changed.
//! - `Checkout::push(&self, &Remote, branch) -> Result<(), GitError>`: a rejected ref is an error.

pub mod template;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to authenticate to a Git server (the GitRepository Secret's keys). `Debug` hides secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// A remote repository as a `GitRepository` describes it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub url: String,
    pub auth: Option<Auth>,
    /// Extra root CA (PEM) from the Secret's `ca.crt`.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
}

/// Commit author (committer = author, as Flux does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// A clone with a branch checked out.
pub struct Checkout {
    pub dir: PathBuf,
    pub branch: String,
    /// The commit the branch pointed at when cloned.
    pub head: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{0}")]
    Other(String),
}

impl Checkout {
    pub fn clone(_remote: &Remote, _branch: &str, _dir: &Path) -> Result<Checkout, GitError> {
        todo!("git owner")
    }

    pub fn commit(&self, _author: &Author, _message: &str) -> Result<Option<String>, GitError> {
        todo!("git owner")
    }

    pub fn push(&self, _remote: &Remote, _branch: &str) -> Result<(), GitError> {
        todo!("git owner")
    }
}
