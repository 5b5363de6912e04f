//! The one pipeline both front ends drive: scan → evaluate → update → commit → push → outcome.
//!
//! `reconcile` does all the work that does not depend on a failure: a failed scan fails the
//! policies that read it (which fall back to the last good tag list, if the store has one), a
//! failed policy keeps its previous latest reference, and each automation runs with the
//! policies that have one. Every object ends in exactly one `Outcome`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::api::{
    Config, DigestReflection, GitRef, GitRepository, ImagePolicy, ImageRepository,
    ImageUpdateAutomation, Kind, NamespacedName, Secret, SigningKeyType,
};
use crate::git::template::{self, TemplateData};
use crate::git::{self, Author, Checkout, PushOutcome, Reference, Remote, Signer, SigningKey};
use crate::image::ImageRef;
use crate::scanner::{self, ClientIdentity, Credentials, Manners, ProxyConfig, ScanOptions};
use crate::schedule::Interval;
use crate::store::{AutomationRecord, ScanRecord, Store};
use crate::writer::{self, fs::Update, Setters};

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Reconciled; the text says what it did.
    Ok(String),
    /// Not reconciled (suspended); not a failure.
    Skipped(String),
    /// Failed; the text is the cause.
    Failed(String),
}

/// The result of reconciling one object: one line for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: Kind,
    pub id: NamespacedName,
    pub status: Status,
    /// Things worth a human's look that did not fail the object (e.g. a marker naming an
    /// unknown policy), each one line.
    pub warnings: Vec<String>,
    /// How long reconciling this object took (zero when nothing was done).
    pub took: Duration,
}

impl Outcome {
    pub fn new(kind: Kind, id: &NamespacedName, status: Status) -> Outcome {
        Outcome {
            kind,
            id: id.clone(),
            status,
            warnings: Vec::new(),
            took: Duration::ZERO,
        }
    }

    fn took(mut self, took: Duration) -> Outcome {
        self.took = took;
        self
    }

    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Failed(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, text) = match &self.status {
            Status::Ok(t) => ("", t),
            Status::Skipped(t) => ("skipped: ", t),
            Status::Failed(t) => ("failed: ", t),
        };
        write!(f, "{} {}: {word}{text}", self.kind, self.id)
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Compute the changes but write, commit and push nothing (`tagline plan`).
    pub dry_run: bool,
    /// The current time (None: the system clock); scans younger than their interval are not
    /// repeated.
    pub now: Option<SystemTime>,
    /// Which objects a pass looks at (default: all of them).
    pub selection: Selection,
    /// How hard each registry host may be pressed (in-flight scans, requests per second).
    pub manners: Manners,
    /// Where to keep one clone per Git remote between runs (`<state-dir>/git`); None: a
    /// fresh temporary clone each run.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Which repositories and policies a pass reconciles; the service narrows a pass to the
/// objects that are due, `run --once` takes them all.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The repositories that may be scanned (None: all). One that is left out, or whose last
    /// scan is still fresh, is not scanned and gets no outcome; its stored list stands.
    pub repositories: Option<BTreeSet<NamespacedName>>,
    /// Repositories to scan even though their last scan is fresh (a webhook asked).
    pub force: BTreeSet<NamespacedName>,
    /// The policies to evaluate besides those whose repository was scanned in this pass
    /// (None: all).
    pub policies: Option<BTreeSet<NamespacedName>>,
}

/// How much earlier than its interval a repository is rescanned, or an automation run
/// again: a fraction of the interval fixed per object, so objects that share an interval
/// drift apart instead of firing together.
const JITTER: f64 = 0.05;

/// The time between an object's runs: its interval less its fixed jitter.
pub fn period(kind: Kind, id: &NamespacedName, interval: Duration) -> Duration {
    let key = format!("{kind}/{id}");
    interval.saturating_sub(Interval::new(interval, &key, JITTER).offset())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When a repository's stored scan goes stale (seconds since the Unix epoch); None when it
/// has no usable stored scan (it is due at once).
pub fn scan_due(repo: &ImageRepository, store: &Store) -> Option<u64> {
    let key = repo.id.to_string();
    let record = store.scan(&key)?;
    store.tags(&key)?;
    if record.fingerprint != fingerprint(repo) {
        return None;
    }
    Some(record.time + period(Kind::ImageRepository, &repo.id, repo.interval).as_secs())
}

/// The result of one pass over every object.
#[derive(Debug, Default)]
pub struct Report {
    /// In order: repositories, policies, automations; each sorted by namespace/name.
    pub outcomes: Vec<Outcome>,
    /// Per automation, the file changes it made (or, in a dry run, would make).
    pub updates: BTreeMap<NamespacedName, Update>,
    /// Per automation, the commit it pushed in this pass (what Flux's push event reports).
    pub pushes: BTreeMap<NamespacedName, Push>,
    /// Per policy whose latest reference changed in this pass: the new one and the one
    /// before (none the first time).
    pub latest_changes: BTreeMap<NamespacedName, (ImageRef, Option<ImageRef>)>,
    /// Per repository scanned in this pass: its tag count, or why the scan failed (a stable
    /// word: `ScanError::reason`, or `Options` when its options could not be built).
    pub scans: BTreeMap<NamespacedName, Result<usize, &'static str>>,
    /// Per repository reconciled in this pass: how many tags the store holds for it.
    pub repository_tags: BTreeMap<NamespacedName, usize>,
    /// Registry requests sent in this pass, by (host, status code or `error`).
    pub registry_requests: BTreeMap<(String, String), u64>,
    /// Per registry host: the rate-limit headers its last answering scan carried.
    pub rate_limits: BTreeMap<String, scanner::RateLimit>,
}

/// A commit an automation pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub branch: String,
    /// The full commit SHA.
    pub commit: String,
    /// The full commit message.
    pub message: String,
    /// `git.push.refspec`, when one was pushed too.
    pub refspec: Option<String>,
}

impl Report {
    /// Whether any object failed.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(Outcome::failed)
    }
}

/// Reconciles every object once.
pub async fn reconcile(config: &Config, store: &mut Store, options: &Options) -> Report {
    let mut report = refresh(config, store, options).await;
    run_automations(config, store, options, &mut report).await;
    record_status(config, store, options, &report);
    report
}

/// Leaves in the store what a pass did, for the objects' Flux status (not in a dry run).
pub fn record_status(config: &Config, store: &mut Store, options: &Options, report: &Report) {
    if !options.dry_run {
        let now = unix_secs(options.now.unwrap_or_else(SystemTime::now));
        crate::status::record(config, store, report, now);
    }
}

/// Scans the selected repositories whose last scan is stale (or that are forced),
/// concurrently, and evaluates the policies that read them (and the selected ones). Two
/// repositories that would send the same requests share one scan.
pub async fn refresh(config: &Config, store: &mut Store, options: &Options) -> Report {
    let mut report = Report::default();
    let selection = &options.selection;
    let now_secs = unix_secs(options.now.unwrap_or_else(SystemTime::now));
    let mut scanned: BTreeMap<NamespacedName, Result<Vec<String>, String>> = BTreeMap::new();
    let mut fresh = Vec::new();
    let mut scans = tokio::task::JoinSet::new();
    let mut sharing: Vec<(ScanOptions, ImageRepository, Vec<NamespacedName>)> = Vec::new();
    let mut pass_options = PassOptions {
        manners: options.manners,
        ..PassOptions::default()
    };
    let requests = pass_options.requests.clone();
    for repo in config.repositories.values() {
        if selection
            .repositories
            .as_ref()
            .is_some_and(|only| !only.contains(&repo.id))
            && !selection.force.contains(&repo.id)
        {
            continue;
        }
        if repo.suspend {
            report.outcomes.push(Outcome::new(
                Kind::ImageRepository,
                &repo.id,
                Status::Skipped("suspended".into()),
            ));
            continue;
        }
        let key = repo.id.to_string();
        if let (Some(due), Some(tags), false) = (
            scan_due(repo, store),
            store.tags(&key),
            selection.force.contains(&repo.id),
        ) {
            if now_secs < due {
                if selection.repositories.is_none() {
                    let age = now_secs.saturating_sub(store.scan(&key).map_or(0, |r| r.time));
                    fresh.push(Outcome::new(
                        Kind::ImageRepository,
                        &repo.id,
                        Status::Ok(format!(
                            "{} tags from the scan {age}s ago; next scan in {}s",
                            tags.len(),
                            due - now_secs
                        )),
                    ));
                }
                continue;
            }
        }
        match pass_options.get(repo, &config.secrets).cloned() {
            Ok(options) => {
                let same = sharing.iter_mut().find(|(o, r, _)| {
                    r.image == repo.image
                        && o.credentials == options.credentials
                        && o.ca_pem == options.ca_pem
                        && o.insecure == options.insecure
                        && o.proxy == options.proxy
                        && same_patterns(&o.exclusion, &options.exclusion)
                        && o.client_identity
                            .as_ref()
                            .map(|c| (&c.cert_pem, &c.key_pem))
                            == options
                                .client_identity
                                .as_ref()
                                .map(|c| (&c.cert_pem, &c.key_pem))
                });
                match same {
                    Some((_, _, ids)) => ids.push(repo.id.clone()),
                    None => sharing.push((options, repo.clone(), vec![repo.id.clone()])),
                }
            }
            Err(e) => {
                report.scans.insert(repo.id.clone(), Err("Options"));
                scanned.insert(repo.id.clone(), Err(e));
            }
        }
    }
    for (options, repo, ids) in sharing {
        scans.spawn(async move {
            let started = Instant::now();
            let result = scanner::scan(&repo.image, &options).await;
            let host = repo.image.api_host().to_string();
            let rate_limit = result.as_ref().ok().and_then(|r| r.rate_limit.clone());
            let reason = result
                .as_ref()
                .map(|r| r.tags.len())
                .map_err(|e| e.reason());
            let result = result.map(|r| r.tags).map_err(|e| e.to_string());
            (ids, result, started.elapsed(), (host, rate_limit, reason))
        });
    }
    let mut took = BTreeMap::new();
    while let Some(joined) = scans.join_next().await {
        let (ids, result, elapsed, (host, rate_limit, reason)) =
            joined.expect("scan task does not panic");
        if let Some(r) = rate_limit {
            report.rate_limits.insert(host, r);
        }
        for id in ids {
            report.scans.insert(id.clone(), reason);
            scanned.insert(id.clone(), result.clone());
            took.insert(id, elapsed);
        }
    }
    for (id, result) in &scanned {
        let key = id.to_string();
        let status = match result {
            Ok(tags) => {
                let repo = &config.repositories[id];
                store.set_scan(
                    &key,
                    tags.clone(),
                    ScanRecord {
                        time: now_secs,
                        fingerprint: fingerprint(repo),
                    },
                );
                let exclusion = repo.exclusion.iter().map(|r| r.as_str().to_string());
                store.set_exclusion(&key, exclusion.collect());
                Status::Ok(format!("scanned {} tags", tags.len()))
            }
            Err(e) => Status::Failed(e.clone()),
        };
        report.outcomes.push(
            Outcome::new(Kind::ImageRepository, id, status)
                .took(took.get(id).copied().unwrap_or_default()),
        );
    }
    report.outcomes.extend(fresh);
    sort_outcomes(&mut report.outcomes);
    for o in &report.outcomes {
        if o.kind == Kind::ImageRepository {
            if let Some(tags) = store.tags(&o.id.to_string()) {
                report.repository_tags.insert(o.id.clone(), tags.len());
            }
        }
    }

    // Evaluate the policies whose repository was scanned, and the selected ones, against
    // their repository's tags (the stored list when the scan failed or was not needed).
    for policy in config.policies.values() {
        let selected = selection
            .policies
            .as_ref()
            .is_none_or(|only| only.contains(&policy.id))
            || scanned.contains_key(&policy.repository);
        if !selected {
            continue;
        }
        let started = Instant::now();
        let before = store.latest(&policy.id.to_string()).cloned();
        let status = evaluate(config, policy, &scanned, store, &mut pass_options).await;
        if let Some(after) = store.latest(&policy.id.to_string()) {
            if before.as_ref() != Some(after) {
                let change = (after.clone(), before);
                report.latest_changes.insert(policy.id.clone(), change);
            }
        }
        report
            .outcomes
            .push(Outcome::new(Kind::ImagePolicy, &policy.id, status).took(started.elapsed()));
    }
    report.registry_requests = requests.counts();
    report
}

/// Runs every automation in `config` with the policies that have a latest reference,
/// adding their outcomes and changes to `report`.
pub async fn run_automations(
    config: &Config,
    store: &mut Store,
    options: &Options,
    report: &mut Report,
) {
    for automation in config.automations.values() {
        let started = Instant::now();
        let mut outcome = Outcome::new(
            Kind::ImageUpdateAutomation,
            &automation.id,
            Status::Skipped("suspended".into()),
        );
        if !automation.suspend {
            match update(config, automation, store, options).await {
                Ok((text, update, observed, pushed)) => {
                    if let Some(push) = pushed {
                        report.pushes.insert(automation.id.clone(), push);
                    }
                    if let Some(record) = observed {
                        store.set_automation(&automation.id.to_string(), record);
                    }
                    outcome.warnings = update
                        .diagnostics
                        .iter()
                        .map(|d| match d.line {
                            Some(l) => format!("{}:{l}: {}", d.path, d.message),
                            None => format!("{}: {}", d.path, d.message),
                        })
                        .collect();
                    outcome.status = Status::Ok(text);
                    if !update.files.is_empty() {
                        report.updates.insert(automation.id.clone(), update);
                    }
                }
                Err(e) => outcome.status = Status::Failed(e),
            }
        }
        report.outcomes.push(outcome.took(started.elapsed()));
    }
}

/// What a scan's result depends on, for telling whether a stored scan still applies. Secret
/// names only, never their contents.
fn fingerprint(repo: &ImageRepository) -> String {
    let patterns: Vec<&str> = repo.exclusion.iter().map(|r| r.as_str()).collect();
    format!(
        "{}|insecure={}|secret={}|cert={}|exclude={}",
        repo.image.canonical(),
        repo.insecure,
        repo.secret_ref.as_deref().unwrap_or_default(),
        repo.cert_secret_ref.as_deref().unwrap_or_default(),
        patterns.join("\u{1f}")
    )
}

fn same_patterns(a: &[regex::Regex], b: &[regex::Regex]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.as_str() == y.as_str())
}

fn sort_outcomes(outcomes: &mut [Outcome]) {
    outcomes.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
}

fn secret<'c>(
    secrets: &'c BTreeMap<NamespacedName, Secret>,
    namespace: &str,
    name: &str,
    field: &str,
) -> Result<&'c Secret, String> {
    secrets
        .get(&NamespacedName::new(namespace, name))
        .ok_or_else(|| format!("{field}: Secret {namespace}/{name} not found"))
}

/// Scan options built at most once per repository per pass (they parse the docker config and
/// the PEM material of the repository's Secrets), shared by its scan and every digest lookup.
#[derive(Default)]
struct PassOptions {
    built: BTreeMap<NamespacedName, Result<ScanOptions, String>>,
    /// How hard each registry host may be pressed.
    manners: Manners,
    /// Counts every request this pass sends to registries.
    requests: scanner::RequestLog,
}

impl PassOptions {
    fn get(
        &mut self,
        repo: &ImageRepository,
        secrets: &BTreeMap<NamespacedName, Secret>,
    ) -> Result<&ScanOptions, String> {
        self.built
            .entry(repo.id.clone())
            .or_insert_with(|| {
                scan_options(repo, secrets).map(|o| ScanOptions {
                    manners: self.manners,
                    requests: Some(self.requests.clone()),
                    ..o
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

#[cfg(test)]
thread_local! {
    /// How many times `scan_options` ran on this thread (tests of `PassOptions`).
    static SCAN_OPTIONS_BUILT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn scan_options(
    repo: &ImageRepository,
    secrets: &BTreeMap<NamespacedName, Secret>,
) -> Result<ScanOptions, String> {
    #[cfg(test)]
    SCAN_OPTIONS_BUILT.with(|c| c.set(c.get() + 1));
    let ns = &repo.id.namespace;
    let credentials = match &repo.secret_ref {
        Some(name) => {
            let s = secret(secrets, ns, name, "spec.secretRef")?;
            let json = s
                .data
                .get(".dockerconfigjson")
                .or_else(|| s.data.get(".dockercfg"))
                .ok_or_else(|| {
                    format!("spec.secretRef: Secret {ns}/{name} has no '.dockerconfigjson' key")
                })?;
            Credentials::from_docker_config(json, &repo.image.registry)
                .map_err(|e| format!("spec.secretRef: Secret {ns}/{name}: {e}"))?
        }
        None => None,
    };
    let (ca_pem, client_identity) = match &repo.cert_secret_ref {
        Some(name) => {
            let s = secret(secrets, ns, name, "spec.certSecretRef")?;
            let ca = s
                .data
                .get("ca.crt")
                .or_else(|| s.data.get("caFile"))
                .cloned();
            let identity = match (s.data.get("tls.crt"), s.data.get("tls.key")) {
                (Some(cert), Some(key)) => Some(ClientIdentity {
                    cert_pem: cert.clone(),
                    key_pem: key.clone(),
                }),
                (None, None) => None,
                _ => {
                    return Err(format!(
                        "spec.certSecretRef: Secret {ns}/{name} needs both 'tls.crt' and 'tls.key'"
                    ))
                }
            };
            if ca.is_none() && identity.is_none() {
                return Err(format!(
                    "spec.certSecretRef: Secret {ns}/{name} has neither 'ca.crt' nor 'tls.crt' and 'tls.key'"
                ));
            }
            (ca, identity)
        }
        None => (None, None),
    };
    // Flux: `address` is required; `username` and `password` optional. Without the Secret
    // the environment's HTTPS_PROXY / HTTP_PROXY / NO_PROXY apply (in the scanner).
    let proxy = match &repo.proxy_secret_ref {
        Some(name) => {
            let s = secret(secrets, ns, name, "spec.proxySecretRef")?;
            let text = |key: &str| -> Result<Option<String>, String> {
                s.data
                    .get(key)
                    .map(|v| {
                        String::from_utf8(v.clone()).map_err(|_| {
                            format!("spec.proxySecretRef: Secret {ns}/{name}: '{key}' is not UTF-8")
                        })
                    })
                    .transpose()
            };
            let address = text("address")?
                .filter(|a| !a.trim().is_empty())
                .ok_or_else(|| {
                    format!("spec.proxySecretRef: Secret {ns}/{name} has no 'address' key")
                })?;
            Some(ProxyConfig {
                address,
                username: text("username")?,
                password: text("password")?,
            })
        }
        None => None,
    };
    Ok(ScanOptions {
        credentials,
        ca_pem,
        insecure: repo.insecure,
        timeout: repo.timeout,
        exclusion: repo.exclusion.clone(),
        client_identity,
        proxy,
        ..ScanOptions::default()
    })
}

async fn evaluate(
    config: &Config,
    policy: &ImagePolicy,
    scanned: &BTreeMap<NamespacedName, Result<Vec<String>, String>>,
    store: &mut Store,
    pass_options: &mut PassOptions,
) -> Status {
    if policy.suspend {
        return Status::Skipped("suspended".into());
    }
    let Some(repo) = config.repositories.get(&policy.repository) else {
        return Status::Failed(format!(
            "spec.imageRepositoryRef: ImageRepository {} not found",
            policy.repository
        ));
    };
    let key = repo.id.to_string();
    let tags: &[String] = match scanned.get(&repo.id) {
        Some(Ok(tags)) => tags,
        _ => match store.tags(&key) {
            // The scan failed or was skipped: the last good list still stands.
            Some(tags) => tags,
            None => {
                return Status::Failed(format!(
                    "ImageRepository {} has no tags yet (its scan did not succeed)",
                    repo.id
                ))
            }
        },
    };
    let tag = match policy.policy.latest(tags) {
        Ok(tag) => tag,
        Err(e) => return Status::Failed(e.to_string()),
    };
    let previous = store.latest(&policy.id.to_string()).cloned();
    let digest = match policy.digest_reflection {
        DigestReflection::Never => None,
        DigestReflection::IfNotPresent => match &previous {
            Some(p) if p.name == repo.image.original && p.tag == tag && p.digest.is_some() => {
                p.digest.clone()
            }
            _ => match reflect_digest(repo, &tag, pass_options.get(repo, &config.secrets)).await {
                Ok(d) => Some(d),
                Err(e) => return Status::Failed(e),
            },
        },
        DigestReflection::Always => {
            match reflect_digest(repo, &tag, pass_options.get(repo, &config.secrets)).await {
                Ok(d) => Some(d),
                Err(e) => return Status::Failed(e),
            }
        }
    };
    let latest = ImageRef {
        name: repo.image.original.clone(),
        tag,
        digest,
    };
    let text = match previous {
        Some(p) if p != latest => format!("latest is {latest} (previously {p})"),
        _ => format!("latest is {latest}"),
    };
    store.set_latest(&policy.id.to_string(), latest);
    Status::Ok(text)
}

/// The manifest digest of the chosen tag, with the repository's credentials, TLS and proxy
/// (`options`: this pass's, see [`PassOptions`]).
async fn reflect_digest(
    repo: &ImageRepository,
    tag: &str,
    options: Result<&ScanOptions, String>,
) -> Result<String, String> {
    scanner::digest(&repo.image, tag, options?)
        .await
        .map_err(|e| format!("reflecting the digest of tag {tag}: {e}"))
}

/// Finds what to check out and where to push the way Flux does (image-automation-controller
/// `configurePush`): the ref is `git.checkout.ref`, else the GitRepository's `spec.ref`, else
/// branch `master`; one kind is checked out, by precedence commit > name > tag > semver >
/// branch. Push to `git.push.branch`; else to the ref's `branch` field (whatever kind is
/// checked out), which must then be set. Returns (reference, push branch, switch): `switch`
/// when the push branch differs from the ref's branch (`master` when no ref is given): then
/// the push branch is a review branch.
fn branches(
    automation: &ImageUpdateAutomation,
    source: &GitRepository,
) -> Result<(Reference, String, bool), String> {
    let (reference, ref_branch, field) = match (&automation.checkout, &source.reference) {
        (Some(r), _) => (
            Some(r.clone()),
            automation.checkout_branch.clone(),
            "spec.git.checkout.ref",
        ),
        (None, Some(r)) => (
            Some(r.clone()),
            source.reference_branch.clone(),
            "GitRepository spec.ref",
        ),
        (None, None) => (None, None, ""),
    };
    let checkout = match reference {
        None => Reference::Branch("master".into()),
        Some(GitRef::Branch(b)) => Reference::Branch(b),
        Some(GitRef::Tag(t)) => Reference::Tag(t),
        Some(GitRef::Name(n)) => Reference::Name(n),
        Some(GitRef::Commit(sha)) => Reference::Commit {
            sha,
            branch: ref_branch.clone(),
        },
        Some(GitRef::SemVer(text)) => {
            let range = crate::policy::Range::parse(&text)
                .map_err(|e| format!("{field}.semver: invalid semver range {text:?}: {e}"))?;
            Reference::SemVer { range, text }
        }
    };
    match &automation.push_branch {
        Some(push) => {
            let base = match (&automation.checkout, &source.reference) {
                (None, None) => Some("master".to_string()),
                _ => ref_branch,
            };
            let switch = base.as_deref() != Some(push.as_str());
            Ok((checkout, push.clone(), switch))
        }
        None => match ref_branch {
            Some(b) => Ok((checkout, b, false)),
            None => Err(
                "spec.git.push.branch: push spec not provided, and cannot be inferred from .spec.git.checkout.ref or GitRepository .spec.ref".into(),
            ),
        },
    }
}

/// Label of a checkout for outcome lines.
fn reference_label(reference: &Reference, checkout: &Checkout) -> String {
    match reference {
        Reference::Branch(b) => b.clone(),
        Reference::Tag(t) => format!("tag {t}"),
        Reference::Name(n) => n.clone(),
        Reference::Commit { sha, .. } => format!("commit {}", &sha[..sha.len().min(7)]),
        Reference::SemVer { .. } => format!("tag {}", checkout.tag.as_deref().unwrap_or("?")),
    }
}

/// The clone cache of one remote under `cache_dir`: a directory named by a digest of the URL
/// (the URL may hold credentials), and the lock file that keeps two runs from using it at
/// once.
fn cache_paths(cache_dir: &std::path::Path, url: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(url.as_bytes());
    let key: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    (cache_dir.join(&key), cache_dir.join(format!("{key}.lock")))
}

fn remote(
    source: &GitRepository,
    secrets: &BTreeMap<NamespacedName, Secret>,
) -> Result<Remote, String> {
    let ns = &source.id.namespace;
    let mut auth = None;
    let mut ca_pem = None;
    if let Some(name) = &source.secret_ref {
        let s = secret(
            secrets,
            ns,
            name,
            &format!("GitRepository {}: spec.secretRef", source.id),
        )?;
        let text = |k: &str| {
            s.data
                .get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let is_ssh = source.url.starts_with("ssh://")
            || (!source.url.contains("://") && source.url.contains('@'));
        auth = if is_ssh {
            match (text("identity"), text("known_hosts")) {
                (Some(identity), Some(known_hosts)) => Some(git::Auth::Ssh {
                    identity,
                    password: text("password"),
                    known_hosts,
                }),
                (None, _) => {
                    return Err(format!(
                        "GitRepository {}: Secret {ns}/{name} has no 'identity' key for SSH",
                        source.id
                    ))
                }
                (_, None) => {
                    return Err(format!(
                        "GitRepository {}: Secret {ns}/{name} has no 'known_hosts' key for SSH",
                        source.id
                    ))
                }
            }
        } else {
            match (text("username"), text("password"), text("bearerToken")) {
                (Some(_), _, Some(_)) => {
                    return Err(format!(
                        "GitRepository {}: Secret {ns}/{name} has both 'bearerToken' and 'username'; use one",
                        source.id
                    ))
                }
                (None, _, Some(token)) => Some(git::Auth::Bearer(token)),
                (Some(username), password, None) => Some(git::Auth::Basic {
                    username,
                    password: password.unwrap_or_default(),
                }),
                (None, Some(_), None) => {
                    return Err(format!(
                        "GitRepository {}: Secret {ns}/{name} has a 'password' but no 'username'",
                        source.id
                    ))
                }
                (None, None, None) => None,
            }
        };
        ca_pem = s
            .data
            .get("ca.crt")
            .or_else(|| s.data.get("caFile"))
            .cloned();
    }
    let proxy = match &source.proxy_secret_ref {
        None => None,
        Some(name) => {
            let s = secret(
                secrets,
                ns,
                name,
                &format!("GitRepository {}: spec.proxySecretRef", source.id),
            )?;
            let text = |k: &str| {
                s.data
                    .get(k)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            let Some(address) = text("address") else {
                return Err(format!(
                    "GitRepository {}: Secret {ns}/{name} has no 'address' key for the proxy",
                    source.id
                ));
            };
            let proxy = git::Proxy {
                address,
                username: text("username"),
                password: text("password"),
            };
            proxy
                .check()
                .map_err(|e| format!("GitRepository {}: spec.proxySecretRef: {e}", source.id))?;
            Some(proxy)
        }
    };
    Ok(Remote {
        url: source.url.clone(),
        auth,
        ca_pem,
        timeout: source.timeout,
        proxy,
    })
}

/// The setters an automation applies: the latest reference of every policy in its namespace
/// that its selector picks.
pub fn setters(config: &Config, automation: &ImageUpdateAutomation, store: &Store) -> Setters {
    config
        .policies
        .values()
        .filter(|p| p.id.namespace == automation.id.namespace)
        .filter(|p| automation.selector.matches(&p.labels))
        .filter_map(|p| {
            store
                .latest(&p.id.to_string())
                .map(|latest| (format!("{}:{}", p.id.namespace, p.id.name), latest.clone()))
        })
        .collect()
}

/// Renders the commit message over the change set.
fn message(automation: &ImageUpdateAutomation, update: &Update) -> Result<String, String> {
    let Some(template) = &automation.message_template else {
        return Ok(template::DEFAULT_MESSAGE.to_string());
    };
    let data = TemplateData {
        automation_namespace: &automation.id.namespace,
        automation_name: &automation.id.name,
        changes: &update.changes,
        values: &automation.message_template_values,
    };
    template
        .render(&data)
        .map_err(|e| format!("spec.git.commit.messageTemplate: {e}"))
}

fn summary(update: &Update) -> String {
    let mut parts = Vec::new();
    for (file, objects) in &update.changes {
        for changes in objects.values() {
            for c in changes {
                parts.push(format!("{file}: {} -> {}", c.old_value, c.new_value));
            }
        }
    }
    parts.join(", ")
}

/// How many times a push that lost a race (the branch moved between fetch and push) is
/// rebuilt on the new tip and tried again.
const PUSH_ATTEMPTS: usize = 3;

/// The commit signer for `git.commit.signingKey`, from its Secret.
fn signer(
    automation: &ImageUpdateAutomation,
    secrets: &BTreeMap<NamespacedName, Secret>,
) -> Result<Option<Signer>, String> {
    let Some((name, key_type)) = &automation.signing_key else {
        return Ok(None);
    };
    let ns = &automation.id.namespace;
    let s = secret(secrets, ns, name, "spec.git.commit.signingKey.secretRef")?;
    let text = |k: &str| {
        s.data
            .get(k)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let (key_field, pass_field) = match key_type {
        SigningKeyType::Gpg => ("git.asc", "passphrase"),
        SigningKeyType::Ssh => ("identity", "password"),
    };
    let Some(key) = text(key_field) else {
        return Err(format!(
            "spec.git.commit.signingKey: Secret {ns}/{name} does not contain a '{key_field}' key"
        ));
    };
    let key = match key_type {
        SigningKeyType::Gpg => SigningKey::OpenPgp {
            armored: key,
            passphrase: text(pass_field),
        },
        SigningKeyType::Ssh => SigningKey::Ssh {
            private_key: key,
            passphrase: text(pass_field),
        },
    };
    Signer::new(&key)
        .map(Some)
        .map_err(|e| format!("spec.git.commit.signingKey: Secret {ns}/{name}: {e}"))
}

/// What an automation's short-circuit depends on besides the branch and the policies.
fn automation_fingerprint(
    automation: &ImageUpdateAutomation,
    source: &GitRepository,
    push_branch: &str,
) -> String {
    format!(
        "{}|{push_branch}|{}|{:?}|{:?}|{:?}|{}|{}|{:?}|{:?}",
        source.url,
        automation.update_path,
        automation.checkout,
        source.reference,
        automation.message_template.as_ref().map(|t| t.source()),
        automation.author_name,
        automation.author_email,
        automation.message_template_values,
        automation.signing_key,
    )
}

/// The commit `branch` points at on the remote, by a ref listing (no clone).
fn remote_head(remote: &Remote, branch: &str) -> Option<String> {
    let wanted = format!("refs/heads/{branch}");
    git::ls_remote(remote)
        .ok()?
        .into_iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, id)| id)
}

async fn update(
    config: &Config,
    automation: &ImageUpdateAutomation,
    store: &Store,
    options: &Options,
) -> Result<(String, Update, Option<AutomationRecord>, Option<Push>), String> {
    let Some(source) = config.git_repositories.get(&automation.source) else {
        return Err(format!(
            "spec.sourceRef: GitRepository {} not found",
            automation.source
        ));
    };
    let (checkout_ref, push_branch, review) = branches(automation, source)?;
    let remote = remote(source, &config.secrets)?;
    let signer = signer(automation, &config.secrets)?;
    let setters = setters(config, automation, store);
    let author = Author {
        name: automation.author_name.clone(),
        email: automation.author_email.clone(),
    };
    // Flux's short-circuit: pushing to the branch it checks out, with nothing else to push,
    // a run whose branch and policies are where the last run left them has nothing to do.
    let fingerprint = automation_fingerprint(automation, source, &push_branch);
    let short_circuit = matches!(&checkout_ref, Reference::Branch(b) if *b == push_branch)
        && !review
        && automation.push_refspec.is_none()
        && !matches!(remote.auth, Some(git::Auth::Bearer(_)));
    let previous = store
        .automation(&automation.id.to_string())
        .filter(|r| short_circuit && r.fingerprint == fingerprint && r.policies == setters)
        .cloned();
    // The GitRepository's `spec.ignore` (gitignore syntax) keeps files out, like
    // `.sourceignore` does.
    let writer_options = writer::fs::Options {
        ignore: source
            .ignore
            .as_deref()
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        text_files: automation.text_files.clone(),
        ..writer::fs::Options::default()
    };
    let automation = automation.clone();
    let dry_run = options.dry_run;
    let cache = options
        .cache_dir
        .as_deref()
        .map(|dir| cache_paths(dir, &remote.url));
    tokio::task::spawn_blocking(move || {
        let record = |revision: String| {
            short_circuit.then(|| AutomationRecord {
                fingerprint: fingerprint.clone(),
                revision,
                policies: setters.clone(),
            })
        };
        if let Some(previous) = &previous {
            if remote_head(&remote, &push_branch).as_deref() == Some(previous.revision.as_str()) {
                return Ok((
                    "no change since last reconciliation".to_string(),
                    Update::default(),
                    None,
                    None,
                ));
            }
        }
        // One clone per remote in the cache, locked for the whole run: two automations on
        // one remote take turns (the second one's fetch then finds little to do); without a
        // cache, a temporary clone.
        let mut _lock = None;
        let mut _temp = None;
        let (dir, cached) = match &cache {
            Some((dir, lock_path)) => {
                let lock_err = |e: std::io::Error| {
                    format!("locking the clone cache {}: {e}", lock_path.display())
                };
                if let Some(parent) = lock_path.parent() {
                    std::fs::create_dir_all(parent).map_err(lock_err)?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(lock_path)
                    .map_err(lock_err)?;
                // flock(2): released when the file is closed, also if the process dies.
                use std::os::fd::AsRawFd;
                // SAFETY: flock on a file descriptor this function owns.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                    return Err(lock_err(std::io::Error::last_os_error()));
                }
                _lock = Some(file);
                (dir.clone(), true)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("tagline-checkout-")
                    .tempdir()
                    .map_err(|e| format!("creating a temporary checkout directory: {e}"))?;
                let path = temp.path().to_path_buf();
                _temp = Some(temp);
                (path, false)
            }
        };
        let mut checkout = Checkout::obtain(&remote, &checkout_ref, &dir, cached)
            .map_err(|e| e.to_string())?;
        let checkout_name = reference_label(&checkout_ref, &checkout);
        let detached = !matches!(checkout_ref, Reference::Branch(_));
        let push_options = git::push_options(&automation.push_options);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A review branch is rebuilt from the checkout tip on every run: it holds exactly
            // the automation's changes on top of the current tip.
            let review_tip = if review {
                let tip = checkout
                    .fetch(&remote, &push_branch)
                    .map_err(|e| e.to_string())?;
                checkout
                    .switch_branch(&push_branch, &checkout.head.clone())
                    .map_err(|e| e.to_string())?;
                tip
            } else {
                if detached {
                    // A tag, semver, name or commit checkout pushed to the ref's own branch
                    // (Flux): the commit goes on top of what was checked out, and the push
                    // is refused unless that is the branch's tip.
                    checkout
                        .switch_branch(&push_branch, &checkout.head.clone())
                        .map_err(|e| e.to_string())?;
                }
                None
            };
            let update = writer::fs::update_with(
                &checkout.dir,
                &automation.update_path,
                &setters,
                &writer_options,
            )
            .map_err(|e| e.to_string())?;
            if update.files.is_empty() {
                let observed = if dry_run { None } else { record(checkout.head.clone()) };
                return Ok((format!("no changes on {checkout_name}"), update, observed, None));
            }
            let summary = summary(&update);
            if dry_run {
                return Ok((format!("would commit to {push_branch}: {summary}"), update, None, None));
            }
            // Render before writing: a template that fails must leave the checkout untouched.
            let message = message(&automation, &update)?;
            update.write().map_err(|e| e.to_string())?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let Some(commit) = checkout
                .commit_with(&author, &message, now, signer.as_ref())
                .map_err(|e| e.to_string())?
            else {
                let observed = record(checkout.head.clone());
                return Ok((format!("no changes on {checkout_name}"), update, observed, None));
            };
            let short = commit[..commit.len().min(7)].to_string();
            let pushed = if review {
                checkout
                    .push_review(&remote, &push_branch, review_tip.as_deref(), None)
                    .map(|outcome| match outcome {
                        PushOutcome::Pushed(_) => {
                            format!("pushed commit {short} to {push_branch}: {summary}")
                        }
                        PushOutcome::Unchanged(c) => format!(
                            "{push_branch} already holds these changes ({}): {summary}",
                            &c[..c.len().min(7)]
                        ),
                    })
            } else {
                checkout
                    .push_with_options(&remote, &push_branch, &push_options)
                    .map(|()| format!("pushed commit {short} to {push_branch}: {summary}"))
            };
            let pushed = pushed.and_then(|text| match &automation.push_refspec {
                Some(refspec) => checkout
                    .push_refspec(&remote, refspec, &push_options)
                    .map(|()| format!("{text} (and refspec {refspec})")),
                None => Ok(text),
            });
            match pushed {
                Ok(text) => {
                    // Nothing new reached the remote when a review branch already held it.
                    let pushed = text.starts_with("pushed commit ").then(|| Push {
                        branch: push_branch.clone(),
                        commit: commit.clone(),
                        message: message.clone(),
                        refspec: automation.push_refspec.clone(),
                    });
                    return Ok((text, update, record(commit.clone()), pushed));
                }
                // The branch moved between fetch and push: start again from its new tip.
                Err(e) if e.is_conflict() && !review && !detached && attempt < PUSH_ATTEMPTS => {
                    tracing::info!(automation = %automation.id, attempt, "push lost a race; rebuilding on the new tip");
                    checkout.refresh(&remote).map_err(|e| e.to_string())?;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|e| format!("update task failed: {e}"))?
}

#[cfg(test)]
mod pass_options_tests {
    use super::*;

    /// Two policies reflecting digests of one repository, whose scan is still fresh: the
    /// repository's options (docker config, PEM) are built once in the pass, not per policy.
    #[tokio::test(flavor = "current_thread")]
    async fn options_are_built_once_per_repository_per_pass() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "u:p");
        let mut yaml = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\n\
             type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: \
             '{{\"auths\":{{\"127.0.0.1:1\":{{\"auth\":\"{auth}\"}}}}}}'\n---\n\
             apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  \
             name: app\nspec:\n  image: 127.0.0.1:1/team/app\n  interval: 1h\n  \
             timeout: 1s\n  insecure: true\n  secretRef:\n    name: regcred\n"
        );
        for name in ["one", "two"] {
            yaml += &format!(
                "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  \
                 name: {name}\nspec:\n  imageRepositoryRef:\n    name: app\n  \
                 digestReflectionPolicy: Always\n  interval: 1h\n  policy:\n    \
                 alphabetical: {{}}\n"
            );
        }
        std::fs::write(dir.path().join("objects.yaml"), yaml).unwrap();
        let config = crate::api::load_dir(dir.path()).expect("valid config");
        let repo = config.repositories.values().next().unwrap();
        let now = SystemTime::now();
        let mut store = Store::in_memory();
        store.set_scan(
            &repo.id.to_string(),
            vec!["v2".into(), "v1".into()],
            ScanRecord {
                time: now.duration_since(UNIX_EPOCH).unwrap().as_secs(),
                fingerprint: fingerprint(repo),
            },
        );
        SCAN_OPTIONS_BUILT.with(|c| c.set(0));
        let options = Options {
            dry_run: true,
            now: Some(now),
            ..Options::default()
        };
        let report = reconcile(&config, &mut store, &options).await;
        let policies: Vec<&Outcome> = report
            .outcomes
            .iter()
            .filter(|o| o.kind == Kind::ImagePolicy)
            .collect();
        assert_eq!(policies.len(), 2);
        // Both looked the digest up (and failed: nothing listens on port 1).
        for p in &policies {
            assert!(
                matches!(&p.status, Status::Failed(e) if e.contains("reflecting the digest of tag v2")),
                "{p}"
            );
        }
        assert_eq!(SCAN_OPTIONS_BUILT.with(|c| c.get()), 1);
    }
}
