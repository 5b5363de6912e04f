//! `GitError`: what failed (named for the step), where (URL / branch, secrets redacted) and why.

use std::time::Duration;

/// A failed Git step. Messages name the URL (userinfo redacted) or branch and the cause; they
/// never carry a password, token or key.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Invalid configuration detected before any IO (bad URL, bad key, bad CA...).
    #[error("invalid git configuration for {url}: {cause}")]
    Config { url: String, cause: String },
    /// Setting up the local repository (init, remote, open) failed.
    #[error("preparing local repository in {dir}: {cause}")]
    Local { dir: String, cause: String },
    /// Fetching from the remote failed (network, protocol, server error).
    #[error("cloning {url} (branch '{branch}'): {cause}")]
    Clone {
        url: String,
        branch: String,
        cause: String,
    },
    /// Fetching a branch into an existing clone failed.
    #[error("fetching branch '{branch}' from {url}: {cause}")]
    Fetch {
        url: String,
        branch: String,
        cause: String,
    },
    /// The remote has no such branch.
    #[error("branch '{branch}' not found in {url}")]
    BranchNotFound { url: String, branch: String },
    /// The remote has no such tag, or the commit is not on the branch.
    #[error("{what} not found in {url}")]
    RefNotFound { url: String, what: String },
    /// Checking out files into the work tree failed.
    #[error("checking out branch '{branch}': {cause}")]
    Checkout { branch: String, cause: String },
    /// The server refused the credentials (or required some and none were configured), or
    /// the SSH key could not be used (`hint` then says why, prefixed with ": ").
    #[error("authentication failed for {url}{hint}")]
    Auth { url: String, hint: String },
    /// The server's TLS certificate or SSH host key was not accepted.
    #[error("certificate or host key of {url} not trusted: {cause}")]
    Certificate { url: String, cause: String },
    /// The operation ran past `Remote.timeout`.
    #[error("{step} {url} timed out after {after:?}")]
    Timeout {
        step: &'static str,
        url: String,
        after: Duration,
    },
    /// Staging or writing the commit failed.
    #[error("committing in {dir}: {cause}")]
    Commit { dir: String, cause: String },
    /// Signing the commit failed (bad key, wrong passphrase, signer missing).
    #[error("signing commit: {cause}")]
    Sign { cause: String },
    /// The push could not be carried out (network, protocol).
    #[error("pushing to {url} (ref '{refname}'): {cause}")]
    Push {
        url: String,
        refname: String,
        cause: String,
    },
    /// The server refused to update a ref (hook, protection, non-fast-forward).
    #[error("push to {url} rejected for '{refname}': {reason}")]
    Rejected {
        url: String,
        refname: String,
        reason: String,
    },
}

impl GitError {
    /// Whether trying again later (same configuration) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            GitError::Config { .. }
            | GitError::Auth { .. }
            | GitError::Certificate { .. }
            | GitError::BranchNotFound { .. }
            | GitError::RefNotFound { .. }
            | GitError::Sign { .. } => false,
            GitError::Local { .. }
            | GitError::Clone { .. }
            | GitError::Fetch { .. }
            | GitError::Checkout { .. }
            | GitError::Timeout { .. }
            | GitError::Commit { .. }
            | GitError::Push { .. } => true,
            GitError::Rejected { .. } => self.is_conflict(),
        }
    }

    /// Whether the push was refused because the remote branch moved (non-fast-forward, stale
    /// lease): fetching again (`Checkout::refresh`), rebuilding and pushing again may succeed.
    pub fn is_conflict(&self) -> bool {
        match self {
            GitError::Rejected { reason, .. } => is_conflict_reason(reason),
            _ => false,
        }
    }
}

pub(crate) fn is_conflict_reason(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("non-fast-forward")
        || r.contains("fetch first")
        || r.contains("stale info")
        || r.contains("cannot lock ref")
        || r.contains("failed to update ref")
        || r.contains("lease")
}

/// The URL with any userinfo replaced by `***` (scp-like `user@host:path` keeps its user, which
/// is not a secret).
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            // An SSH user name alone is not a secret; a password always is.
            let shown = if url.starts_with("ssh://") && !userinfo.contains(':') {
                userinfo.to_string()
            } else {
                "***".to_string()
            };
            return format!(
                "{}://{}@{}{}",
                &url[..scheme_end],
                shown,
                &authority[at + 1..],
                &rest[authority_end..]
            );
        }
    }
    url.to_string()
}

/// Replaces every secret in `text` with `***`.
pub(crate) fn scrub(text: &str, url: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    let redacted = redact_url(url);
    if redacted != url {
        out = out.replace(url, &redacted);
    }
    for s in secrets {
        if s.len() >= 3 {
            out = out.replace(s, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo() {
        assert_eq!(
            redact_url("https://bob:hunter2@example.com/org/repo.git"),
            "https://***@example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("https://token@example.com/r"),
            "https://***@example.com/r"
        );
        assert_eq!(
            redact_url("ssh://git@example.com:22/r.git"),
            "ssh://git@example.com:22/r.git"
        );
        assert_eq!(
            redact_url("ssh://git:pw@example.com/r.git"),
            "ssh://***@example.com/r.git"
        );
        assert_eq!(
            redact_url("https://example.com/a@b"),
            "https://example.com/a@b"
        );
        assert_eq!(redact_url("git@github.com:o/r"), "git@github.com:o/r");
    }

    #[test]
    fn scrub_removes_url_and_secrets() {
        let s = scrub(
            "failed https://u:pw1234@h/r with pw1234",
            "https://u:pw1234@h/r",
            &["pw1234"],
        );
        assert!(!s.contains("pw1234"), "{s}");
        assert!(s.contains("https://***@h/r"), "{s}");
    }

    #[test]
    fn retryability() {
        let rej = |reason: &str| GitError::Rejected {
            url: "u".into(),
            refname: "refs/heads/main".into(),
            reason: reason.into(),
        };
        assert!(rej("non-fast-forward").is_retryable());
        assert!(rej("non-fast-forward").is_conflict());
        assert!(!rej("pre-receive hook declined").is_retryable());
        assert!(!GitError::Auth {
            url: "u".into(),
            hint: String::new()
        }
        .is_retryable());
        assert!(GitError::Timeout {
            step: "clone",
            url: "u".into(),
            after: Duration::from_secs(1)
        }
        .is_retryable());
    }
}
