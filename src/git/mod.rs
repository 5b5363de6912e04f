//! Git write-back: clone, commit, push (libgit2), and commit-message rendering.
//!
//! CONTRACT (used by `automation`; the git owner may add, not change). All calls block: the
//! caller runs them on a blocking thread.
//! - `Remote { url, auth, ca_pem, timeout, proxy, client_identity }` as a `GitRepository` and
//!   its Secrets describe it.
//! - `Checkout::clone(&Remote, branch, dir) -> Result<Checkout, GitError>`.
//! - `Checkout::commit(&self, &Author, message) -> Result<Option<String>, GitError>`: stages
//!   every change in the work tree, commits; None when nothing changed.
//! - `Checkout::push(&self, &Remote, branch) -> Result<(), GitError>`: a rejected ref is an error.
//!
//! Added by the git owner:
//! - `Auth::Ssh { identity, password, known_hosts }`; host keys are checked against
//!   `known_hosts` only.
//! - `GitError::{is_retryable, is_conflict}`; `redact_url`.
//! - `Checkout::clone_tag(&Remote, tag, dir)`, `clone_ref(&Remote, refname, dir)`,
//!   `clone_commit(&Remote, branch, sha, dir)`:
//!   detached checkouts (then `switch_branch` to the push branch before pushing).
//! - `Checkout::commit_at` (explicit time), `current_branch`, `head_commit`.
//! - Review branch: `fetch(&Remote, branch) -> Option<tip>`, `switch_branch(branch, at)`,
//!   `push_force_with_lease(&Remote, branch, &Lease)`, `push_review(&Remote, branch,
//!   remote_tip, last_pushed) -> PushOutcome` (skips when the remote has the same tree on the
//!   same parents).
//! - `push_with_options(&Remote, branch, options)`, `push_refspec(&Remote, refspec,
//!   options)` (`git.push.refspec`, `git.push.options`), `push_options(map)`.
//! - `ls_remote(&Remote) -> [(ref, id)]` (no download).
//! - Signing: `Signer::new(&SigningKey::{OpenPgp, Ssh})` once, then
//!   `Checkout::commit_with(author, message, time, Some(&signer))` (gpgsig header).
//! - Conflicts: a push rejected because the branch moved is `is_conflict()`; then
//!   `refresh(&mut self, &Remote)` fetches and resets to the new tip, the caller rebuilds its
//!   change and pushes again (a bounded number of times); `push_with_retries` does that loop.
//!
//! Clones fetch only the branch (or tag), no other tags, depth 1 over the network (local paths
//! and file:// fetch whole history: libgit2 has no shallow local transport). Nothing from the
//! repository is executed: libgit2 runs no hooks and no external filter drivers, and the
//! host's system/global/XDG git configuration and `$HOME/.ssh` are ignored.

mod error;
mod http;
mod sign;
mod ssh;
mod transport;

pub mod template;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::build::CheckoutBuilder;
use git2::{AutotagOption, FetchOptions, IndexAddOption, Oid, PushOptions, Repository};

pub use error::{redact_url, GitError};
pub use sign::{Signer, SigningKey};
pub use transport::init_early;
use transport::Session;

/// How to authenticate to a Git server (the GitRepository Secret's keys). `Debug` hides secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
    /// SSH: `identity` is the private key text (PEM or OpenSSH format), `password` its
    /// passphrase, `known_hosts` the only host keys accepted. The user comes from the URL
    /// (`git` when absent).
    Ssh {
        identity: String,
        password: Option<String>,
        known_hosts: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::Ssh { .. } => f.write_str("Ssh(***)"),
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
    /// `spec.proxySecretRef`: used for HTTP(S) remotes only.
    pub proxy: Option<Proxy>,
    /// The client certificate and key (`tls.crt` + `tls.key`) for an HTTPS remote.
    pub client_identity: Option<crate::scanner::ClientIdentity>,
}

/// A proxy for HTTP(S) remotes (the `proxySecretRef` Secret's `address`, `username`,
/// `password`): an HTTP(S) proxy, or SOCKS5 (`socks5://`, `socks5h://` to have names resolved
/// by the proxy), as Flux takes. `Debug`
/// hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://host:port` (or `https://`, `socks5://`, `socks5h://`).
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("address", &redact_url(&self.address))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Proxy {
    /// Checks the address: an `http://`, `https://`, `socks5://` or `socks5h://` URL with a
    /// host. (Remotes with a proxy go through tagline's HTTP transport, `http.rs`.)
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.address)
            .map_err(|e| format!("proxy address '{}': {e}", redact_url(&self.address)))?;
        if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h")
            || url.host_str().is_none()
        {
            return Err(format!(
                "proxy address '{}': expected http://host:port, https://, socks5:// or socks5h://",
                redact_url(&self.address)
            ));
        }
        Ok(())
    }

    /// Whether this is a SOCKS5 proxy (its login travels in the URL, not in a header).
    pub(crate) fn is_socks(&self) -> bool {
        self.address.to_ascii_lowercase().starts_with("socks")
    }

    /// The address with the credentials as userinfo (percent-encoded).
    pub(crate) fn url_with_credentials(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.address) else {
            return self.address.clone();
        };
        if let Some(user) = &self.username {
            let _ = url.set_username(user);
            let _ = url.set_password(self.password.as_deref());
        }
        url.to_string()
    }
}

/// Commit author (committer = author, as Flux does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// A clone with a branch checked out.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub dir: PathBuf,
    pub branch: String,
    /// The commit the branch pointed at when cloned.
    pub head: String,
    /// The tag a `Reference::SemVer` checkout chose.
    pub tag: Option<String>,
}

/// What to check out (Flux's `checkout.ref`, one kind chosen).
#[derive(Debug, Clone)]
pub enum Reference {
    /// A branch: checked out as a local branch.
    Branch(String),
    /// A tag (detached).
    Tag(String),
    /// The highest tag whose version (read as Flux reads tags) the range admits; among equal
    /// versions (differing in build metadata only) the one whose commit is newest, then the
    /// greatest name (detached). `text` is the range as written, for messages.
    SemVer {
        range: crate::policy::Range,
        text: String,
    },
    /// Any full ref name, e.g. `refs/pull/7/head` (detached).
    Name(String),
    /// A commit id, looked for on `branch` when given, else on every branch (detached).
    Commit { sha: String, branch: Option<String> },
}

impl Reference {
    fn check(&self, url: &str) -> Result<(), GitError> {
        let bad = |cause: String| {
            Err(GitError::Config {
                url: redact_url(url),
                cause,
            })
        };
        match self {
            Reference::Branch(b) => check_branch_name(url, b),
            Reference::Commit {
                branch: Some(b), ..
            } => check_branch_name(url, b),
            Reference::Tag(t)
                if t.is_empty() || !git2::Reference::is_valid_name(&format!("refs/tags/{t}")) =>
            {
                bad(format!("tag '{t}' is not a valid tag name"))
            }
            Reference::Name(n) if !n.starts_with("refs/") || !git2::Reference::is_valid_name(n) => {
                bad(format!("ref '{n}' is not a valid ref name"))
            }
            _ => Ok(()),
        }
    }
}

/// What a forced push expects the remote branch to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The branch must not exist.
    Absent,
    /// The branch must point at this commit.
    At(String),
}

/// What `Checkout::push_review` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// HEAD (this commit) was pushed.
    Pushed(String),
    /// The remote branch already had the same content on the same base (this commit);
    /// nothing was pushed.
    Unchanged(String),
}

/// `git.push.options` as git push options, `key=value` in key order (an empty value gives
/// `key=`, as go-git sends it for Flux; GitLab reads `merge_request.create=` as set).
pub fn push_options(options: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    options.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Name of the remote recorded in the clone.
const ORIGIN: &str = "origin";

fn branch_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/{ORIGIN}/{branch}")
}

fn check_branch_name(url: &str, branch: &str) -> Result<(), GitError> {
    // `url` is only used in the error message.
    if branch.is_empty() || !git2::Reference::is_valid_name(&branch_ref(branch)) {
        return Err(GitError::Config {
            url: redact_url(url),
            cause: format!("'{branch}' is not a valid branch name"),
        });
    }
    Ok(())
}

fn local_err(dir: &Path) -> impl Fn(git2::Error) -> GitError + '_ {
    move |e| GitError::Local {
        dir: dir.display().to_string(),
        cause: e.message().to_string(),
    }
}

impl Checkout {
    /// Clones `branch` of `remote` (that branch only, no tags) into `dir` (created if absent,
    /// must be empty) and checks it out.
    pub fn clone(remote: &Remote, branch: &str, dir: &Path) -> Result<Checkout, GitError> {
        Self::obtain(remote, &Reference::Branch(branch.to_string()), dir, false)
    }

    /// Clones the tag `tag` (Flux's `checkout.ref.tag`) and checks out its commit with a
    /// detached HEAD; `branch` is empty. Commits go on top of it; pushing needs a branch:
    /// `switch_branch(push_branch, &head)` first.
    pub fn clone_tag(remote: &Remote, tag: &str, dir: &Path) -> Result<Checkout, GitError> {
        Self::obtain(remote, &Reference::Tag(tag.to_string()), dir, false)
    }

    /// Clones any ref (Flux's `checkout.ref.name`, e.g. `refs/pull/7/head` or
    /// `refs/heads/main`) and checks out its commit with a detached HEAD; `branch` is empty.
    pub fn clone_ref(remote: &Remote, refname: &str, dir: &Path) -> Result<Checkout, GitError> {
        Self::obtain(remote, &Reference::Name(refname.to_string()), dir, false)
    }

    /// Clones `branch` with its history and checks out `commit` (Flux's `checkout.ref.commit`)
    /// with a detached HEAD; `branch` is empty. The commit must be on that branch.
    pub fn clone_commit(
        remote: &Remote,
        branch: &str,
        commit: &str,
        dir: &Path,
    ) -> Result<Checkout, GitError> {
        let reference = Reference::Commit {
            sha: commit.to_string(),
            branch: Some(branch.to_string()),
        };
        Self::obtain(remote, &reference, dir, false)
    }

    /// Checks out `reference` of `remote` in `dir`. Without `cached`, `dir` is created if
    /// absent and must be empty (a fresh clone, shallow where the transport allows). With
    /// `cached`, `dir` is a cache kept between runs: a clone of the same remote left there by
    /// an earlier call is brought up to date by fetching only what it lacks, and its branch,
    /// HEAD and work tree are reset to the remote tip (local commits and edits dropped); a
    /// directory holding anything else (another remote, a broken repository, stray files) is
    /// deleted and cloned afresh, and so is a cache that fails while being updated (other
    /// than for credentials, certificates, a timeout or a missing ref). The caller keeps two
    /// users from sharing one `dir` at the same time.
    pub fn obtain(
        remote: &Remote,
        reference: &Reference,
        dir: &Path,
        cached: bool,
    ) -> Result<Checkout, GitError> {
        reference.check(&remote.url)?;
        let session = Session::new(remote, "cloning")?;
        let (repo, reused) = prepare(&session, dir, cached)?;
        match Self::checkout_in(&repo, &session, reference, dir, reused) {
            Err(e) if reused && cache_may_be_at_fault(&e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "discarding the cached clone");
                drop(repo);
                discard(dir)?;
                let (repo, _) = prepare(&session, dir, cached)?;
                Self::checkout_in(&repo, &session, reference, dir, false)
            }
            other => other,
        }
    }

    fn checkout_in(
        repo: &Repository,
        session: &Session,
        reference: &Reference,
        dir: &Path,
        reused: bool,
    ) -> Result<Checkout, GitError> {
        // A fresh clone fetches depth 1; a cache fetches only the commits it lacks.
        let shallow = !reused;
        match reference {
            Reference::Branch(branch) => {
                let tip =
                    fetch_branch_opts(repo, session, branch, true, shallow)?.ok_or_else(|| {
                        GitError::BranchNotFound {
                            url: session.url(),
                            branch: branch.to_string(),
                        }
                    })?;
                let checkout = Checkout {
                    dir: dir.to_path_buf(),
                    branch: branch.to_string(),
                    head: tip.to_string(),
                    tag: None,
                };
                checkout.reset_branch_to(repo, branch, tip)?;
                Ok(checkout)
            }
            Reference::Tag(tag) => {
                let refname = format!("refs/tags/{tag}");
                Self::fetch_detached(
                    repo,
                    session,
                    &refname,
                    &format!("tag '{tag}'"),
                    dir,
                    shallow,
                )
            }
            Reference::Name(refname) => Self::fetch_detached(
                repo,
                session,
                refname,
                &format!("ref '{refname}'"),
                dir,
                shallow,
            ),
            Reference::Commit { sha, branch } => {
                let wanted = Oid::from_str(sha).map_err(|_| GitError::Config {
                    url: session.url(),
                    cause: format!("'{sha}' is not a commit id"),
                })?;
                match branch {
                    Some(branch) => {
                        let tip = fetch_ref(
                            repo,
                            session,
                            &branch_ref(branch),
                            &tracking_ref(branch),
                            branch,
                            true,
                            false,
                        )?
                        .ok_or_else(|| GitError::BranchNotFound {
                            url: session.url(),
                            branch: branch.to_string(),
                        })?;
                        let on_branch =
                            tip == wanted || repo.graph_descendant_of(tip, wanted).unwrap_or(false);
                        if !on_branch {
                            return Err(GitError::RefNotFound {
                                url: session.url(),
                                what: format!("commit {sha} on branch '{branch}'"),
                            });
                        }
                    }
                    None => {
                        // Like Flux: every branch, whole history; the commit must be in it.
                        let spec = format!("+refs/heads/*:refs/remotes/{ORIGIN}/*");
                        clear_refs(repo, &format!("refs/remotes/{ORIGIN}/"))?;
                        fetch_refspec(repo, session, &spec, "(all branches)", true, false)?;
                        if repo.find_commit(wanted).is_err() {
                            return Err(GitError::RefNotFound {
                                url: session.url(),
                                what: format!("commit {sha} on any branch"),
                            });
                        }
                    }
                }
                Self::detached(repo, dir, sha, wanted)
            }
            Reference::SemVer { range, text } => {
                clear_refs(repo, "refs/tags/")?;
                let label = format!("tags for semver '{text}'");
                fetch_refspec(
                    repo,
                    session,
                    "+refs/tags/*:refs/tags/*",
                    &label,
                    true,
                    shallow,
                )?;
                let (tag, commit) =
                    highest_tag(repo, range).ok_or_else(|| GitError::RefNotFound {
                        url: session.url(),
                        what: format!("a tag matching semver '{text}'"),
                    })?;
                let mut checkout = Self::detached(repo, dir, &tag, commit)?;
                checkout.tag = Some(tag);
                Ok(checkout)
            }
        }
    }

    fn fetch_detached(
        repo: &Repository,
        session: &Session,
        refname: &str,
        what: &str,
        dir: &Path,
        shallow: bool,
    ) -> Result<Checkout, GitError> {
        let target = fetch_ref(repo, session, refname, refname, refname, true, shallow)?
            .ok_or_else(|| GitError::RefNotFound {
                url: session.url(),
                what: what.to_string(),
            })?;
        let commit = repo
            .find_object(target, None)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| GitError::Checkout {
                branch: refname.to_string(),
                cause: e.message().to_string(),
            })?
            .id();
        Self::detached(repo, dir, refname, commit)
    }

    fn detached(
        repo: &Repository,
        dir: &Path,
        label: &str,
        commit: Oid,
    ) -> Result<Checkout, GitError> {
        let co_err = |e: git2::Error| GitError::Checkout {
            branch: label.to_string(),
            cause: e.message().to_string(),
        };
        let object = repo.find_object(commit, None).map_err(co_err)?;
        repo.set_head_detached(commit).map_err(co_err)?;
        let mut opts = CheckoutBuilder::new();
        opts.force().remove_untracked(true);
        repo.checkout_tree(&object, Some(&mut opts))
            .map_err(co_err)?;
        Ok(Checkout {
            dir: dir.to_path_buf(),
            branch: String::new(),
            head: commit.to_string(),
            tag: None,
        })
    }

    fn open(&self) -> Result<Repository, GitError> {
        Repository::open(&self.dir).map_err(local_err(&self.dir))
    }

    /// Points local `branch` at `tip`, makes it HEAD and forces the work tree to match.
    fn reset_branch_to(&self, repo: &Repository, branch: &str, tip: Oid) -> Result<(), GitError> {
        let co_err = |e: git2::Error| GitError::Checkout {
            branch: branch.to_string(),
            cause: e.message().to_string(),
        };
        let commit = repo.find_commit(tip).map_err(co_err)?;
        repo.reference(&branch_ref(branch), tip, true, "tagline: checkout")
            .map_err(co_err)?;
        repo.set_head(&branch_ref(branch)).map_err(co_err)?;
        let mut opts = CheckoutBuilder::new();
        opts.force().remove_untracked(true);
        repo.checkout_tree(commit.as_object(), Some(&mut opts))
            .map_err(co_err)?;
        Ok(())
    }

    /// Stages every change in the work tree (additions, modifications, deletions) and commits
    /// it with author = committer = `author`, at the current time. `None` (and no commit) when
    /// the tree is unchanged.
    pub fn commit(&self, author: &Author, message: &str) -> Result<Option<String>, GitError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.commit_at(author, message, now)
    }

    /// `commit` at the given time (seconds since the epoch, UTC).
    pub fn commit_at(
        &self,
        author: &Author,
        message: &str,
        time: i64,
    ) -> Result<Option<String>, GitError> {
        self.commit_with(author, message, time, None)
    }

    /// `commit_at`, signed by `signer` when given (`gpgsig` header: OpenPGP or SSH).
    pub fn commit_with(
        &self,
        author: &Author,
        message: &str,
        time: i64,
        signer: Option<&Signer>,
    ) -> Result<Option<String>, GitError> {
        let dir = self.dir.display().to_string();
        let err = |e: git2::Error| GitError::Commit {
            dir: dir.clone(),
            cause: e.message().to_string(),
        };
        let repo = self.open()?;
        let mut index = repo.index().map_err(err)?;
        index
            .add_all(["*"], IndexAddOption::DEFAULT, None)
            .map_err(err)?;
        index.update_all(["*"], None).map_err(err)?;
        index.write().map_err(err)?;
        let tree_id = index.write_tree().map_err(err)?;
        let parent = match repo.head() {
            Ok(h) => Some(h.peel_to_commit().map_err(err)?),
            Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
            Err(e) => return Err(err(e)),
        };
        match &parent {
            Some(p) if p.tree_id() == tree_id => return Ok(None),
            None if index.is_empty() => return Ok(None),
            _ => {}
        }
        let tree = repo.find_tree(tree_id).map_err(err)?;
        let sig = git2::Signature::new(&author.name, &author.email, &git2::Time::new(time, 0))
            .map_err(err)?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let oid = match signer {
            None => repo
                .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
                .map_err(err)?,
            Some(signer) => {
                let buf = repo
                    .commit_create_buffer(&sig, &sig, message, &tree, &parents)
                    .map_err(err)?;
                let signature = signer.sign(&buf)?;
                let content = std::str::from_utf8(&buf).map_err(|e| GitError::Commit {
                    dir: dir.clone(),
                    cause: format!("commit is not UTF-8: {e}"),
                })?;
                let oid = repo
                    .commit_signed(content, &signature, Some("gpgsig"))
                    .map_err(err)?;
                // commit_signed writes the object only: move the branch HEAD is on.
                let head = repo.find_reference("HEAD").map_err(err)?;
                match head.symbolic_target().ok().flatten() {
                    Some(branch) => {
                        let branch = branch.to_string();
                        repo.reference(&branch, oid, true, "tagline: signed commit")
                            .map_err(err)?;
                    }
                    // Detached (tag or commit checkout).
                    None => repo.set_head_detached(oid).map_err(err)?,
                }
                oid
            }
        };
        Ok(Some(oid.to_string()))
    }

    /// Pushes HEAD to `refs/heads/<branch>` of `remote` (not forced). A ref the server refuses
    /// (hook, protection, non-fast-forward) is `GitError::Rejected`.
    pub fn push(&self, remote: &Remote, branch: &str) -> Result<(), GitError> {
        self.push_with_options(remote, branch, &[])
    }

    /// `push` with git push options (`git.push.options`, e.g. `merge_request.create`); the
    /// server must advertise push options when any are given.
    pub fn push_with_options(
        &self,
        remote: &Remote,
        branch: &str,
        options: &[String],
    ) -> Result<(), GitError> {
        check_branch_name(&remote.url, branch)?;
        let repo = self.open()?;
        let (src, head) = self.head_branch_ref(&repo)?;
        push_refspecs(
            &repo,
            remote,
            &[format!("{src}:{}", branch_ref(branch))],
            options,
            &[],
        )?;
        let _ = repo.reference(&tracking_ref(branch), head, true, "tagline: pushed");
        Ok(())
    }

    /// Pushes `refspec` (`git.push.refspec`: `[+]<src>:<dst>`, `src` a local ref such as
    /// `refs/heads/<push branch>` or `HEAD`), with push options. A leading `+` forces.
    pub fn push_refspec(
        &self,
        remote: &Remote,
        refspec: &str,
        options: &[String],
    ) -> Result<(), GitError> {
        let repo = self.open()?;
        let bad = |why: &str| GitError::Config {
            url: redact_url(&remote.url),
            cause: format!("push refspec '{refspec}': {why}"),
        };
        let (force, spec) = match refspec.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", refspec),
        };
        let (src, dst) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected <src>:<dst>"))?;
        if src.is_empty() || dst.is_empty() || dst.contains(':') || spec.contains('*') {
            return Err(bad("expected <src>:<dst> without wildcards"));
        }
        let src = if src == "HEAD" {
            self.head_branch_ref(&repo)?.0
        } else if src.starts_with("refs/") {
            src.to_string()
        } else {
            branch_ref(src)
        };
        repo.refname_to_id(&src)
            .map_err(|_| bad(&format!("no local ref '{src}'")))?;
        let dst = if dst.starts_with("refs/") {
            dst.to_string()
        } else {
            branch_ref(dst)
        };
        if !git2::Reference::is_valid_name(&dst) {
            return Err(bad(&format!("'{dst}' is not a valid ref name")));
        }
        push_refspecs(
            &repo,
            remote,
            &[format!("{force}{src}:{dst}")],
            options,
            &[],
        )
    }

    /// HEAD's branch ref name and commit.
    fn head_branch_ref(&self, repo: &Repository) -> Result<(String, Oid), GitError> {
        let head = repo.head().map_err(local_err(&self.dir))?;
        let name = head
            .name()
            .ok()
            .filter(|n| n.starts_with("refs/heads/"))
            .map(str::to_string);
        match (name, head.target()) {
            (Some(name), Some(oid)) => Ok((name, oid)),
            _ => Err(GitError::Local {
                dir: self.dir.display().to_string(),
                cause: "HEAD is not on a branch".into(),
            }),
        }
    }

    /// The branch HEAD is on.
    pub fn current_branch(&self) -> Result<String, GitError> {
        let repo = self.open()?;
        let head = repo.head().map_err(local_err(&self.dir))?;
        head.name()
            .ok()
            .and_then(|n| n.strip_prefix("refs/heads/"))
            .map(str::to_string)
            .ok_or_else(|| GitError::Local {
                dir: self.dir.display().to_string(),
                cause: "HEAD is not on a branch".into(),
            })
    }

    /// The commit HEAD points at.
    pub fn head_commit(&self) -> Result<String, GitError> {
        let repo = self.open()?;
        let oid = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map_err(local_err(&self.dir))?
            .id();
        Ok(oid.to_string())
    }

    /// Fetches `branch` of `remote` into `refs/remotes/origin/<branch>` and returns its tip,
    /// None when the remote has no such branch. The work tree is not touched.
    pub fn fetch(&self, remote: &Remote, branch: &str) -> Result<Option<String>, GitError> {
        check_branch_name(&remote.url, branch)?;
        let session = Session::new(remote, "fetching from")?;
        let repo = self.open()?;
        Ok(fetch_branch(&repo, &session, branch, false)?.map(|o| o.to_string()))
    }

    /// Fetches the checkout branch again and resets the local branch, HEAD and the work tree
    /// to its new tip (local commits and edits are dropped): the step before rebuilding the
    /// changes after a push was rejected as a conflict. Returns the new tip (also `self.head`).
    pub fn refresh(&mut self, remote: &Remote) -> Result<String, GitError> {
        let session = Session::new(remote, "fetching from")?;
        let repo = self.open()?;
        let tip = fetch_branch(&repo, &session, &self.branch, false)?.ok_or_else(|| {
            GitError::BranchNotFound {
                url: session.url(),
                branch: self.branch.clone(),
            }
        })?;
        let branch = self.branch.clone();
        self.reset_branch_to(&repo, &branch, tip)?;
        self.head = tip.to_string();
        Ok(self.head.clone())
    }

    /// Commit-and-push with bounded conflict retries: `rebuild` applies the change to the
    /// work tree and commits (returning the commit, or None when there is nothing to commit);
    /// then HEAD is pushed to `branch`. When the push is refused because the branch moved
    /// (`is_conflict`), the clone is `refresh`ed to the new tip and `rebuild` runs again, at
    /// most `attempts` times in all. Returns the pushed commit, or None if nothing changed.
    /// Meant for pushes to the checkout branch (`refresh` resets to it); a review branch is
    /// protected by its lease instead (`push_review`).
    pub fn push_with_retries<E: From<GitError>>(
        &mut self,
        remote: &Remote,
        branch: &str,
        attempts: u32,
        mut rebuild: impl FnMut(&Checkout) -> Result<Option<String>, E>,
    ) -> Result<Option<String>, E> {
        let mut attempt = 1;
        loop {
            let Some(commit) = rebuild(self)? else {
                return Ok(None);
            };
            match self.push(remote, branch) {
                Ok(()) => return Ok(Some(commit)),
                Err(e) if e.is_conflict() && attempt < attempts => {
                    attempt += 1;
                    self.refresh(remote)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Creates local `branch` at `at` (a commit of this clone, e.g. `self.head` or a tip
    /// returned by `fetch`), replacing any local branch of that name, and checks it out
    /// (work tree forced to match).
    pub fn switch_branch(&self, branch: &str, at: &str) -> Result<(), GitError> {
        check_branch_name("", branch)?;
        let repo = self.open()?;
        let oid = Oid::from_str(at).map_err(|e| GitError::Checkout {
            branch: branch.to_string(),
            cause: e.message().to_string(),
        })?;
        self.reset_branch_to(&repo, branch, oid)
    }

    /// Pushes HEAD to `refs/heads/<branch>`, forced, but only if the remote ref is as `lease`
    /// says (like `git push --force-with-lease`); otherwise `GitError::Rejected` with
    /// `is_conflict()`.
    pub fn push_force_with_lease(
        &self,
        remote: &Remote,
        branch: &str,
        lease: &Lease,
    ) -> Result<(), GitError> {
        check_branch_name(&remote.url, branch)?;
        let repo = self.open()?;
        let (src, head) = self.head_branch_ref(&repo)?;
        let dst = branch_ref(branch);
        let expected = match lease {
            Lease::Absent => None,
            Lease::At(c) => Some(Oid::from_str(c).map_err(|e| GitError::Config {
                url: redact_url(&remote.url),
                cause: format!("lease '{c}': {}", e.message()),
            })?),
        };
        push_refspecs(
            &repo,
            remote,
            &[format!("+{src}:{dst}")],
            &[],
            &[(dst.clone(), expected)],
        )?;
        let _ = repo.reference(&tracking_ref(branch), head, true, "tagline: pushed");
        Ok(())
    }

    /// The review-branch push: HEAD (built on the checkout tip) goes to `branch`, forced with
    /// a lease: when `fetch` saw no such branch (`remote_tip` None) it must still be absent
    /// (a merged-and-deleted review branch is created again); otherwise it must be at
    /// `last_pushed` (what tagline last pushed there), or at `remote_tip` if None. Nothing is
    /// pushed when the remote branch already holds the same content (tree) on top of the
    /// same parents: `PushOutcome::Unchanged` names that remote commit.
    pub fn push_review(
        &self,
        remote: &Remote,
        branch: &str,
        remote_tip: Option<&str>,
        last_pushed: Option<&str>,
    ) -> Result<PushOutcome, GitError> {
        let repo = self.open()?;
        let head = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map_err(local_err(&self.dir))?;
        if let Some(tip) = remote_tip {
            let theirs = Oid::from_str(tip)
                .and_then(|o| repo.find_commit(o))
                .map_err(|e| GitError::Local {
                    dir: self.dir.display().to_string(),
                    cause: format!("remote tip {tip} (fetch it first): {}", e.message()),
                })?;
            // From the commit objects: in a shallow clone the boundary commits show no
            // parents through libgit2's grafts.
            let same_parents = raw_parents(&repo, theirs.id()) == raw_parents(&repo, head.id());
            if theirs.id() == head.id() || (theirs.tree_id() == head.tree_id() && same_parents) {
                return Ok(PushOutcome::Unchanged(theirs.id().to_string()));
            }
        }
        // A branch that is gone (merged and deleted) is simply created again; one that is
        // there must still be what we last pushed (or, if we never did, what we fetched).
        let lease = match remote_tip {
            None => Lease::Absent,
            Some(tip) => Lease::At(last_pushed.unwrap_or(tip).to_string()),
        };
        self.push_force_with_lease(remote, branch, &lease)?;
        Ok(PushOutcome::Pushed(head.id().to_string()))
    }
}

/// The refs the remote advertises (`git ls-remote`): `(name, commit id)` pairs, in the
/// server's order; a ref without an id is skipped. Nothing is downloaded: enough to see
/// whether a branch moved since the last run (Flux's short-circuit). With a bearer token the
/// listing goes through tagline's HTTP transport (libgit2's connect call takes no extra HTTP
/// headers).
pub fn ls_remote(remote: &Remote) -> Result<Vec<(String, String)>, GitError> {
    let session = Session::new(remote, "listing")?;
    let mut detached =
        git2::Remote::create_detached(session.libgit2_url().as_str()).map_err(|e| {
            GitError::Config {
                url: session.url(),
                cause: session.scrub(e.message()),
            }
        })?;
    let list_err = |cause: String| GitError::Fetch {
        url: session.url(),
        branch: "(ref listing)".into(),
        cause,
    };
    let connection = detached
        .connect_auth(
            git2::Direction::Fetch,
            Some(session.callbacks()),
            session.proxy_options(),
        )
        .map_err(|e| session.error(&e, list_err))?;
    let heads = connection
        .list()
        .map_err(|e| session.error(&e, list_err))?
        .iter()
        .filter(|h| !h.oid().is_zero())
        .map(|h| (h.name().to_string(), h.oid().to_string()))
        .collect();
    Ok(heads)
}

/// The parent ids written in a commit object (ignoring shallow grafts).
fn raw_parents(repo: &Repository, commit: Oid) -> Vec<Oid> {
    let Ok(odb) = repo.odb() else {
        return Vec::new();
    };
    let Ok(obj) = odb.read(commit) else {
        return Vec::new();
    };
    obj.data()
        .split(|b| *b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .filter_map(|hex| std::str::from_utf8(hex).ok())
        .filter_map(|hex| Oid::from_str(hex.trim()).ok())
        .collect()
}

fn is_local_url(url: &str) -> bool {
    url.starts_with("file://") || (!url.contains("://") && Path::new(url).exists())
}

/// Fetches `branch` into its tracking ref (dropping a stale one first) and returns its tip,
/// None when the remote has no such branch. `clone` says which error variant to use.
fn fetch_branch(
    repo: &Repository,
    session: &Session,
    branch: &str,
    clone: bool,
) -> Result<Option<Oid>, GitError> {
    fetch_branch_opts(repo, session, branch, clone, true)
}

/// `fetch_branch`, depth 1 only when `shallow`.
fn fetch_branch_opts(
    repo: &Repository,
    session: &Session,
    branch: &str,
    clone: bool,
    shallow: bool,
) -> Result<Option<Oid>, GitError> {
    fetch_ref(
        repo,
        session,
        &branch_ref(branch),
        &tracking_ref(branch),
        branch,
        clone,
        shallow,
    )
}

/// Fetches the remote ref `src` into the local ref `dst` (dropping a stale one first), depth 1
/// when `shallow` (and the transport allows it), and returns its target, None when the remote
/// has no such ref. `label` names it in errors.
fn fetch_ref(
    repo: &Repository,
    session: &Session,
    src: &str,
    dst: &str,
    label: &str,
    clone: bool,
    shallow: bool,
) -> Result<Option<Oid>, GitError> {
    if let Ok(mut stale) = repo.find_reference(dst) {
        stale.delete().map_err(|e| GitError::Local {
            dir: repo.path().display().to_string(),
            cause: e.message().to_string(),
        })?;
    }
    fetch_refspec(
        repo,
        session,
        &format!("+{src}:{dst}"),
        label,
        clone,
        shallow,
    )?;
    match repo.refname_to_id(dst) {
        Ok(oid) => Ok(Some(oid)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(GitError::Local {
            dir: repo.path().display().to_string(),
            cause: e.message().to_string(),
        }),
    }
}

/// Fetches one refspec (no tags beyond it), depth 1 when `shallow` and the transport allows
/// it. `clone` says which error variant to use; `label` names what is fetched in errors.
fn fetch_refspec(
    repo: &Repository,
    session: &Session,
    refspec: &str,
    label: &str,
    clone: bool,
    shallow: bool,
) -> Result<(), GitError> {
    let mut remote =
        repo.remote_anonymous(&session.libgit2_url())
            .map_err(|e| GitError::Config {
                url: session.url(),
                cause: session.scrub(e.message()),
            })?;
    let headers = session.headers();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut fo = FetchOptions::new();
    fo.remote_callbacks(session.callbacks())
        .download_tags(AutotagOption::None)
        .update_fetchhead(false)
        .custom_headers(&header_refs);
    if let Some(proxy) = session.proxy_options() {
        fo.proxy_options(proxy);
    }
    // Shallow (depth 1) like Flux, except where libgit2 cannot (local paths / file://).
    if shallow && !is_local_url(&session.remote.url) {
        fo.depth(1);
    }
    let fetch_err = |cause: String| {
        if clone {
            GitError::Clone {
                url: session.url(),
                branch: label.to_string(),
                cause,
            }
        } else {
            GitError::Fetch {
                url: session.url(),
                branch: label.to_string(),
                cause,
            }
        }
    };
    remote
        .fetch(&[refspec], Some(&mut fo), None)
        .map_err(|e| session.error(&e, fetch_err))?;
    if session.past_deadline() {
        return Err(session.timeout());
    }
    Ok(())
}

/// Config key marking a clone as the cache of one remote: a digest of its URL (never the URL
/// itself, which may hold credentials).
const CACHE_KEY: &str = "tagline.remote";

fn remote_key(url: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(url.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The repository a checkout goes in, and whether it is a cache being reused. Without
/// `cached`, a new repository in `dir` (created if absent, must be empty).
fn prepare(session: &Session, dir: &Path, cached: bool) -> Result<(Repository, bool), GitError> {
    let key = remote_key(&session.remote.url);
    if cached && dir.exists() {
        if let Some(repo) = reusable(dir, &key) {
            return Ok((repo, true));
        }
        tracing::info!(dir = %dir.display(), "the clone cache holds no usable clone of this remote; cloning afresh");
        discard(dir)?;
    }
    let repo = init_clone(session, dir)?;
    if cached {
        repo.config()
            .and_then(|mut c| c.set_str(CACHE_KEY, &key))
            .map_err(local_err(dir))?;
    }
    Ok((repo, false))
}

/// The cached clone in `dir` if it is one of the remote `key` names, with a readable HEAD.
fn reusable(dir: &Path, key: &str) -> Option<Repository> {
    let repo = Repository::open_ext(
        dir,
        git2::RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&std::ffi::OsStr>(),
    )
    .ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    if repo.is_bare() || workdir != dir.canonicalize().ok()? {
        return None;
    }
    if repo.config().ok()?.get_string(CACHE_KEY).ok()? != key {
        return None;
    }
    let readable = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .and_then(|c| c.tree().map(|_| ()))
        .is_ok();
    readable.then_some(repo)
}

fn discard(dir: &Path) -> Result<(), GitError> {
    let result = if dir.is_dir() {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::remove_file(dir)
    };
    result.map_err(|e| GitError::Local {
        dir: dir.display().to_string(),
        cause: format!("discarding the cached clone: {e}"),
    })
}

/// Whether a failure while updating a cached clone may come from the cache itself (so a fresh
/// clone is worth one try): not for credentials, certificates, timeouts or missing refs.
fn cache_may_be_at_fault(e: &GitError) -> bool {
    matches!(
        e,
        GitError::Local { .. }
            | GitError::Checkout { .. }
            | GitError::Clone { .. }
            | GitError::Fetch { .. }
            | GitError::Commit { .. }
    )
}

/// Deletes the local refs under `prefix` (e.g. `refs/tags/`) before a wildcard fetch, so a ref
/// deleted on the remote does not linger in a cache.
fn clear_refs(repo: &Repository, prefix: &str) -> Result<(), GitError> {
    let dir = repo.path().display().to_string();
    let err = |e: git2::Error| GitError::Local {
        dir: dir.clone(),
        cause: e.message().to_string(),
    };
    let names: Vec<String> = repo
        .references_glob(&format!("{prefix}*"))
        .map_err(err)?
        .filter_map(|r| r.ok().and_then(|r| r.name().ok().map(str::to_string)))
        .collect();
    for name in names {
        if let Ok(mut r) = repo.find_reference(&name) {
            r.delete().map_err(err)?;
        }
    }
    Ok(())
}

/// The tag `Reference::SemVer` picks among the local tags, with its commit.
fn highest_tag(repo: &Repository, range: &crate::policy::Range) -> Option<(String, Oid)> {
    use crate::policy::Version;
    let mut tags: Vec<(String, Oid, i64)> = Vec::new();
    for r in repo.references_glob("refs/tags/*").ok()?.flatten() {
        let Some(name) = r.name().ok().and_then(|n| n.strip_prefix("refs/tags/")) else {
            continue;
        };
        let name = name.to_string();
        let Ok(commit) = r.peel_to_commit() else {
            continue;
        };
        tags.push((name, commit.id(), commit.committer().when().seconds()));
    }
    tags.iter()
        .filter_map(|(name, id, time)| {
            let v = Version::parse(name)?;
            range.satisfies(&v).then_some((v, *time, name, *id))
        })
        .max_by(|a, b| {
            a.0.precedence(&b.0)
                .then_with(|| a.1.cmp(&b.1))
                .then_with(|| a.2.cmp(b.2))
        })
        .map(|(_, _, name, id)| (name.clone(), id))
}

/// Creates the repository of a clone in `dir` (created if absent, must be empty), with an
/// `origin` remote recorded for people looking at the clone; fetches and pushes use the
/// `Remote` itself, so credentials in the URL are not written to .git/config.
fn init_clone(session: &Session, dir: &Path) -> Result<Repository, GitError> {
    let io_err = |e: std::io::Error| GitError::Local {
        dir: dir.display().to_string(),
        cause: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    if std::fs::read_dir(dir).map_err(io_err)?.next().is_some() {
        return Err(GitError::Local {
            dir: dir.display().to_string(),
            cause: "the clone directory is not empty".into(),
        });
    }
    let repo = Repository::init(dir).map_err(local_err(dir))?;
    repo.remote_with_fetch(
        ORIGIN,
        &session.url(),
        &format!("+refs/heads/*:refs/remotes/{ORIGIN}/*"),
    )
    .map_err(|e| GitError::Config {
        url: session.url(),
        cause: session.scrub(e.message()),
    })?;
    Ok(repo)
}

/// Pushes `refspecs` with `push_options`, failing on any ref the server refuses. Each lease
/// `(remote ref, expected)` cancels the push unless the server advertises that ref at
/// `expected` (None: absent); the server then updates it only from that value (the old value
/// of a ref update is compare-and-swap in the git protocol).
fn push_refspecs(
    repo: &Repository,
    remote: &Remote,
    refspecs: &[String],
    push_options: &[String],
    leases: &[(String, Option<Oid>)],
) -> Result<(), GitError> {
    let session = Session::new(remote, "pushing to")?;
    let refname = refspecs
        .iter()
        .map(|r| r.rsplit(':').next().unwrap_or(r))
        .collect::<Vec<_>>()
        .join(", ");
    let mut r = repo
        .remote_anonymous(&session.libgit2_url())
        .map_err(|e| GitError::Config {
            url: session.url(),
            cause: session.scrub(e.message()),
        })?;
    let rejected: std::rc::Rc<std::cell::RefCell<Vec<(String, String)>>> = Default::default();
    let mut cb = session.callbacks();
    let sink = rejected.clone();
    cb.push_update_reference(move |name, status| {
        if let Some(reason) = status {
            sink.borrow_mut()
                .push((name.to_string(), reason.to_string()));
        }
        Ok(())
    });
    let stale: std::rc::Rc<std::cell::RefCell<Option<String>>> = Default::default();
    let stale_sink = stale.clone();
    let leases = leases.to_vec();
    cb.push_negotiation(move |updates| {
        for u in updates {
            let Ok(dst) = u.dst_refname() else { continue };
            for (name, expected) in &leases {
                if name != dst {
                    continue;
                }
                let actual = (!u.src().is_zero()).then(|| u.src());
                if actual != *expected {
                    let show = |o: Option<Oid>| o.map_or("nothing".to_string(), |o| o.to_string());
                    let why = format!(
                        "stale info: expected {} at {dst}, the remote has {}",
                        show(*expected),
                        show(actual)
                    );
                    *stale_sink.borrow_mut() = Some(why.clone());
                    return Err(git2::Error::from_str(&why));
                }
            }
        }
        Ok(())
    });
    let headers = session.headers();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let option_refs: Vec<&str> = push_options.iter().map(String::as_str).collect();
    let mut po = PushOptions::new();
    po.remote_callbacks(cb).custom_headers(&header_refs);
    if let Some(proxy) = session.proxy_options() {
        po.proxy_options(proxy);
    }
    if !option_refs.is_empty() {
        po.remote_push_options(&option_refs);
    }
    let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
    let result = r.push(&specs, Some(&mut po));
    drop(po);
    if let Some(reason) = stale.borrow().clone() {
        return Err(GitError::Rejected {
            url: session.url(),
            refname: refname.clone(),
            reason,
        });
    }
    if let Some((name, reason)) = rejected.borrow().first() {
        return Err(GitError::Rejected {
            url: session.url(),
            refname: name.clone(),
            reason: session.scrub(reason),
        });
    }
    result.map_err(|e| {
        let msg = e.message().to_string();
        // libgit2 refuses a non-fast-forward update itself, before sending anything.
        if e.code() == git2::ErrorCode::NotFastForward
            || (error::is_conflict_reason(&msg) && !session.past_deadline())
        {
            return GitError::Rejected {
                url: session.url(),
                refname: refname.clone(),
                reason: format!("non-fast-forward: {}", session.scrub(&msg)),
            };
        }
        session.error(&e, |cause| GitError::Push {
            url: session.url(),
            refname: refname.clone(),
            cause,
        })
    })
}
