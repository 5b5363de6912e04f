//! The one pipeline both front ends drive: scan → evaluate → update → commit → push → outcome.
//!
//! `reconcile` does all the work that does not depend on a failure: a failed scan fails the
//! policies that read it (which fall back to the last good tag list, if the store has one), a
//! failed policy keeps its previous latest reference, and each automation runs with the
//! policies that have one. Every object ends in exactly one `Outcome`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::Instrument;

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

/// Flux's reasons on the Ready condition of the image kinds (FLUX-REFERENCE §1.2–1.4): the
/// machine-readable half of an outcome. tagline validates specs when it loads them, so some
/// of these (the Stalled ones: `ImageURLInvalid`, `InvalidPolicy`, `InvalidPolicySelector`,
/// ...) stop a config from loading instead of appearing here; they are named for
/// completeness of the vocabulary and for front ends that report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Any kind: reconciled.
    Succeeded,
    /// Any kind: an internal failure with no more precise reason (a task that died).
    ReconciliationFailed,
    /// ImageRepository, ImagePolicy: the image reference is invalid (Stalled).
    ImageURLInvalid,
    /// ImageRepository: the auth options could not be built (a Secret missing or unusable).
    AuthenticationFailed,
    /// ImageRepository: the scan or the tag listing failed.
    ReadOperationFailed,
    /// ImageRepository, ImagePolicy: a failure with no more precise reason (for a policy: no
    /// tag matched, a digest lookup failed).
    Failure,
    /// ImagePolicy: its ImageRepository is missing or has no tags yet.
    DependencyNotReady,
    /// ImagePolicy, ImageUpdateAutomation: a cross-namespace reference was refused.
    AccessDenied,
    /// ImagePolicy: the policy cannot be used (Stalled).
    InvalidPolicy,
    /// ImagePolicy: `digestReflectionPolicy: Always` without an interval (Stalled).
    IntervalNotConfigured,
    /// ImageRepository, ImagePolicy, ImageUpdateAutomation: a feature gate is off (Stalled).
    FeatureGateDisabled,
    /// ImageUpdateAutomation: the source reference is unusable (Stalled).
    InvalidSourceConfiguration,
    /// ImageUpdateAutomation: the GitRepository, an auth or signing Secret, or the push
    /// branch could not be resolved.
    SourceManagerFailed,
    /// ImageUpdateAutomation: clone, checkout, commit or push failed.
    GitOperationFailed,
    /// ImageUpdateAutomation: the files could not be updated.
    UpdateFailed,
    /// ImageUpdateAutomation: `policySelector` is invalid (Stalled).
    InvalidPolicySelector,
    /// ImageUpdateAutomation: `update.strategy` is not `Setters` (Stalled).
    InvalidUpdateStrategy,
    /// ImageUpdateAutomation: the message template uses `.Updated` (Stalled).
    RemovedTemplateField,
}

impl Reason {
    /// Flux's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Succeeded => "Succeeded",
            Reason::ReconciliationFailed => "ReconciliationFailed",
            Reason::ImageURLInvalid => "ImageURLInvalid",
            Reason::AuthenticationFailed => "AuthenticationFailed",
            Reason::ReadOperationFailed => "ReadOperationFailed",
            Reason::Failure => "Failure",
            Reason::DependencyNotReady => "DependencyNotReady",
            Reason::AccessDenied => "AccessDenied",
            Reason::InvalidPolicy => "InvalidPolicy",
            Reason::IntervalNotConfigured => "IntervalNotConfigured",
            Reason::FeatureGateDisabled => "FeatureGateDisabled",
            Reason::InvalidSourceConfiguration => "InvalidSourceConfiguration",
            Reason::SourceManagerFailed => "SourceManagerFailed",
            Reason::GitOperationFailed => "GitOperationFailed",
            Reason::UpdateFailed => "UpdateFailed",
            Reason::InvalidPolicySelector => "InvalidPolicySelector",
            Reason::InvalidUpdateStrategy => "InvalidUpdateStrategy",
            Reason::RemovedTemplateField => "RemovedTemplateField",
        }
    }

    /// The reason Flux gives a failure of `kind` when no more precise one applies.
    pub fn failure_of(kind: Kind) -> Reason {
        match kind {
            Kind::ImageRepository => Reason::ReadOperationFailed,
            Kind::ImagePolicy => Reason::Failure,
            Kind::ImageUpdateAutomation => Reason::GitOperationFailed,
            _ => Reason::ReconciliationFailed,
        }
    }

    /// Parses Flux's spelling.
    pub fn parse(text: &str) -> Option<Reason> {
        ALL_REASONS.iter().copied().find(|r| r.as_str() == text)
    }
}

const ALL_REASONS: [Reason; 18] = [
    Reason::Succeeded,
    Reason::ReconciliationFailed,
    Reason::ImageURLInvalid,
    Reason::AuthenticationFailed,
    Reason::ReadOperationFailed,
    Reason::Failure,
    Reason::DependencyNotReady,
    Reason::AccessDenied,
    Reason::InvalidPolicy,
    Reason::IntervalNotConfigured,
    Reason::FeatureGateDisabled,
    Reason::InvalidSourceConfiguration,
    Reason::SourceManagerFailed,
    Reason::GitOperationFailed,
    Reason::UpdateFailed,
    Reason::InvalidPolicySelector,
    Reason::InvalidUpdateStrategy,
    Reason::RemovedTemplateField,
];

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with Flux's reason for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// The result of reconciling one object: one line for humans (`status`), and the same
/// result for machines (`reason`, `push`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: Kind,
    pub id: NamespacedName,
    pub status: Status,
    /// Flux's Ready reason: `Succeeded` for a success, why for a failure. A skipped
    /// (suspended, held) object changes no condition in Flux; its reason is `Succeeded` and
    /// is not read.
    pub reason: Reason,
    /// The commit an ImageUpdateAutomation pushed in this run (full SHA, branch).
    pub push: Option<Push>,
    /// Things worth a human's look that did not fail the object (e.g. a marker naming an
    /// unknown policy), each one line.
    pub warnings: Vec<String>,
    /// How long reconciling this object took (zero when nothing was done).
    pub took: Duration,
}

impl Outcome {
    /// An outcome with the kind's usual reason for its status (see [`Reason::failure_of`]);
    /// `with_reason` names a more precise one.
    pub fn new(kind: Kind, id: &NamespacedName, status: Status) -> Outcome {
        let reason = match status {
            Status::Failed(_) => Reason::failure_of(kind),
            _ => Reason::Succeeded,
        };
        Outcome {
            kind,
            id: id.clone(),
            status,
            reason,
            push: None,
            warnings: Vec::new(),
            took: Duration::ZERO,
        }
    }

    /// A failed outcome with its reason.
    pub fn failure(kind: Kind, id: &NamespacedName, failure: Failure) -> Outcome {
        Outcome::new(kind, id, Status::Failed(failure.message)).with_reason(failure.reason)
    }

    /// The same outcome with Flux's reason `reason`.
    pub fn with_reason(mut self, reason: Reason) -> Outcome {
        self.reason = reason;
        self
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
    /// Told as each object of the pass is done (a progress bar); None: nobody listens.
    pub progress: Option<Progress>,
}

/// A listener told of each object a pass is done with (kind, namespace/name), as it
/// finishes: a repository when its scan ends (or is not needed), a policy when it is
/// evaluated, an automation when it ran. Only names, never results or causes.
#[derive(Clone)]
pub struct Progress(std::sync::Arc<ProgressFn>);

/// What a [`Progress`] calls with each object done.
type ProgressFn = dyn Fn(Kind, &NamespacedName) + Send + Sync;

impl Progress {
    pub fn new(done: impl Fn(Kind, &NamespacedName) + Send + Sync + 'static) -> Progress {
        Progress(std::sync::Arc::new(done))
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress")
    }
}

/// Tells `options`' progress listener, if any, that `kind id` is done.
/// The `tracing` span for the work on one object: every line logged inside it (scanner
/// retries and fallbacks, git cache and push messages) names the object with `kind`,
/// `namespace` and `name`. Its target, `tagline::object`, is its own (no event is logged
/// under it), so that a log filter can enable the span without letting any line through:
/// the command line always does, whatever `TAGLINE_LOG` narrows the lines to.
pub fn object_span(kind: Kind, id: &NamespacedName) -> tracing::Span {
    tracing::error_span!(
        target: "tagline::object",
        "object",
        kind = %kind,
        namespace = %id.namespace,
        name = %id.name
    )
}

fn done(options: &Options, kind: Kind, id: &NamespacedName) {
    if let Some(p) = &options.progress {
        (p.0)(kind, id);
    }
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
    store.tag_count(&key)?;
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
    /// Per automation, the commit it pushed in this pass (what Flux's push event reports):
    /// the same as its outcome's `push`.
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
    // Per repository scanned in this pass: its tag count, or why the scan failed. The tags
    // themselves go straight to the store (one copy, moved there), where evaluation reads them.
    let mut scanned: BTreeMap<NamespacedName, Result<usize, String>> = BTreeMap::new();
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
            done(options, Kind::ImageRepository, &repo.id);
            continue;
        }
        let key = repo.id.to_string();
        if let (Some(due), Some(count), false) = (
            scan_due(repo, store),
            store.tag_count(&key),
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
                            count,
                            due - now_secs
                        )),
                    ));
                }
                done(options, Kind::ImageRepository, &repo.id);
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
                        && o.limits == options.limits
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
        // A scan shared by several repositories is logged as the first one's.
        let span = object_span(Kind::ImageRepository, &repo.id);
        scans.spawn(
            async move {
                let started = Instant::now();
                let result = scanner::scan(&repo.image, &options).await;
                let host = repo.image.api_host().to_string();
                let rate_limit = match &result {
                    Ok(r) => r.rate_limit.clone(),
                    Err(scanner::ScanError::RateLimited { rate_limit, .. }) => rate_limit.clone(),
                    Err(_) => None,
                };
                let reason = result
                    .as_ref()
                    .map(|r| r.tags.len())
                    .map_err(|e| e.reason());
                let result = result.map(|r| r.tags).map_err(|e| e.to_string());
                (ids, result, started.elapsed(), (host, rate_limit, reason))
            }
            .instrument(span),
        );
    }
    let mut took = BTreeMap::new();
    while let Some(joined) = scans.join_next().await {
        let (mut ids, result, elapsed, (host, rate_limit, reason)) =
            joined.expect("scan task does not panic");
        let quota = rate_limit.as_ref().map(|r| crate::store::Quota {
            limit: r.limit,
            remaining: r.remaining,
        });
        if let Some(r) = rate_limit {
            report.rate_limits.insert(host, r);
        }
        let Some(last) = ids.pop() else { continue };
        for id in ids.iter().chain([&last]) {
            report.scans.insert(id.clone(), reason);
        }
        match result {
            Ok(tags) => {
                // Repositories sharing the scan each keep their own list; the last one takes
                // the scan's own.
                for id in &ids {
                    record_scan(config, store, id, tags.clone(), now_secs, quota);
                    scanned.insert(id.clone(), Ok(tags.len()));
                }
                scanned.insert(last.clone(), Ok(tags.len()));
                record_scan(config, store, &last, tags, now_secs, quota);
            }
            Err(e) => {
                for id in ids.iter().chain([&last]) {
                    // The list stays as it was; what the registry said of its quota is news.
                    if let Some(q) = quota {
                        store.set_quota(&id.to_string(), q);
                    }
                    scanned.insert(id.clone(), Err(e.clone()));
                }
            }
        }
        for id in ids {
            done(options, Kind::ImageRepository, &id);
            took.insert(id, elapsed);
        }
        done(options, Kind::ImageRepository, &last);
        took.insert(last, elapsed);
    }
    for (id, result) in &scanned {
        let status = match result {
            Ok(count) => Status::Ok(format!("scanned {count} tags")),
            Err(e) => Status::Failed(e.clone()),
        };
        let mut outcome = Outcome::new(Kind::ImageRepository, id, status)
            .took(took.get(id).copied().unwrap_or_default());
        // A scan that never started: its auth options (Secrets) could not be built.
        if outcome.failed() && pass_options.built.get(id).is_some_and(Result::is_err) {
            outcome.reason = Reason::AuthenticationFailed;
        }
        if !took.contains_key(id) {
            done(options, Kind::ImageRepository, id);
        }
        report.outcomes.push(outcome);
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
        let status = match evaluate(config, policy, store, &mut pass_options)
            .instrument(object_span(Kind::ImagePolicy, &policy.id))
            .await
        {
            Ok(status) => Outcome::new(Kind::ImagePolicy, &policy.id, status),
            Err(failure) => Outcome::failure(Kind::ImagePolicy, &policy.id, failure),
        };
        if let Some(after) = store.latest(&policy.id.to_string()) {
            if before.as_ref() != Some(after) {
                let change = (after.clone(), before);
                report.latest_changes.insert(policy.id.clone(), change);
            }
        }
        report.outcomes.push(status.took(started.elapsed()));
        done(options, Kind::ImagePolicy, &policy.id);
    }
    report.registry_requests = requests.counts();
    report
}

/// Records a complete scan of `id` in the store: its tags, when, with what configuration,
/// and the registry's quota as the scan last saw it.
fn record_scan(
    config: &Config,
    store: &mut Store,
    id: &NamespacedName,
    tags: Vec<String>,
    now: u64,
    quota: Option<crate::store::Quota>,
) {
    let key = id.to_string();
    let repo = &config.repositories[id];
    store.set_scan(
        &key,
        tags,
        ScanRecord {
            time: now,
            fingerprint: fingerprint(repo),
            rate_limit: quota,
        },
    );
    let exclusion = repo.exclusion.iter().map(|r| r.as_str().to_string());
    store.set_exclusion(&key, exclusion.collect());
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
            let span = object_span(Kind::ImageUpdateAutomation, &automation.id);
            match update(config, automation, store, options)
                .instrument(span)
                .await
            {
                Ok((text, update, observed, pushed)) => {
                    if let Some(push) = pushed {
                        outcome.push = Some(push.clone());
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
                    outcome.reason = Reason::Succeeded;
                    if !update.files.is_empty() {
                        report.updates.insert(automation.id.clone(), update);
                    }
                }
                Err(failure) => {
                    outcome.status = Status::Failed(failure.message);
                    outcome.reason = failure.reason;
                }
            }
        }
        report.outcomes.push(outcome.took(started.elapsed()));
        done(options, Kind::ImageUpdateAutomation, &automation.id);
    }
}

/// What a scan's result depends on, for telling whether a stored scan still applies. Secret
/// names only, never their contents.
pub fn fingerprint(repo: &ImageRepository) -> String {
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
            let ca = ca_crt(s);
            let identity = client_identity_of(s)
                .map_err(|e| format!("spec.certSecretRef: Secret {ns}/{name} {e}"))?;
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
    let defaults = ScanOptions::default();
    let limits = scanner::Limits {
        max_pages: repo.budget.max_pages.unwrap_or(defaults.limits.max_pages),
        max_tags: repo.budget.max_tags.unwrap_or(defaults.limits.max_tags),
        max_bytes: repo.budget.max_bytes.unwrap_or(defaults.limits.max_bytes),
        ..defaults.limits
    };
    Ok(ScanOptions {
        credentials,
        ca_pem,
        insecure: repo.insecure,
        timeout: repo.timeout,
        exclusion: repo.exclusion.clone(),
        client_identity,
        proxy,
        limits,
        ..defaults
    })
}

/// Elects `policy`'s latest tag from its repository's tags in the store: this pass's scan when
/// it succeeded (recorded before policies are evaluated), else the last good list.
async fn evaluate(
    config: &Config,
    policy: &ImagePolicy,
    store: &mut Store,
    pass_options: &mut PassOptions,
) -> Result<Status, Failure> {
    if policy.suspend {
        return Ok(Status::Skipped("suspended".into()));
    }
    let Some(repo) = config.repositories.get(&policy.repository) else {
        return Err(Failure::new(
            Reason::DependencyNotReady,
            format!(
                "spec.imageRepositoryRef: ImageRepository {} not found",
                policy.repository
            ),
        ));
    };
    let key = repo.id.to_string();
    // A failed or skipped scan leaves the last good list standing.
    let tags: Vec<String> = match store.tags(&key) {
        Some(tags) => tags,
        None => {
            return Err(Failure::new(
                Reason::DependencyNotReady,
                format!(
                    "ImageRepository {} has no tags yet (its scan did not succeed)",
                    repo.id
                ),
            ))
        }
    };
    let tag = match policy.policy.latest(&tags) {
        Ok(tag) => tag,
        Err(e) => return Err(Failure::new(Reason::Failure, e.to_string())),
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
                Err(e) => return Err(Failure::new(Reason::Failure, e)),
            },
        },
        DigestReflection::Always => {
            match reflect_digest(repo, &tag, pass_options.get(repo, &config.secrets)).await {
                Ok(d) => Some(d),
                Err(e) => return Err(Failure::new(Reason::Failure, e)),
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
    Ok(Status::Ok(text))
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

/// A Secret's CA bundle: `ca.crt`, or Flux's older `caFile`.
fn ca_crt(s: &Secret) -> Option<Vec<u8>> {
    s.data
        .get("ca.crt")
        .or_else(|| s.data.get("caFile"))
        .cloned()
}

/// A Secret's client certificate and key (`tls.crt` + `tls.key`), if it has them; one
/// without the other is an error.
fn client_identity_of(s: &Secret) -> Result<Option<ClientIdentity>, &'static str> {
    match (s.data.get("tls.crt"), s.data.get("tls.key")) {
        (Some(cert), Some(key)) => Ok(Some(ClientIdentity {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        })),
        (None, None) => Ok(None),
        _ => Err("needs both 'tls.crt' and 'tls.key'"),
    }
}

fn remote(
    source: &GitRepository,
    secrets: &BTreeMap<NamespacedName, Secret>,
) -> Result<Remote, String> {
    let ns = &source.id.namespace;
    let mut auth = None;
    let mut ca_pem = None;
    let mut client_identity = None;
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
        ca_pem = ca_crt(s);
        client_identity = client_identity_of(s)
            .map_err(|e| format!("GitRepository {}: Secret {ns}/{name} {e}", source.id))?;
        if client_identity.is_some() && !source.url.to_ascii_lowercase().starts_with("https://") {
            return Err(format!(
                "GitRepository {}: Secret {ns}/{name}: 'tls.crt' and 'tls.key' need an https:// URL",
                source.id
            ));
        }
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
        client_identity,
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

fn git_failed(e: impl fmt::Display) -> Failure {
    Failure::new(Reason::GitOperationFailed, e.to_string())
}

fn source_failed(message: String) -> Failure {
    Failure::new(Reason::SourceManagerFailed, message)
}

async fn update(
    config: &Config,
    automation: &ImageUpdateAutomation,
    store: &Store,
    options: &Options,
) -> Result<(String, Update, Option<AutomationRecord>, Option<Push>), Failure> {
    let Some(source) = config.git_repositories.get(&automation.source) else {
        return Err(Failure::new(
            Reason::SourceManagerFailed,
            format!(
                "spec.sourceRef: GitRepository {} not found",
                automation.source
            ),
        ));
    };
    let (checkout_ref, push_branch, review) =
        branches(automation, source).map_err(source_failed)?;
    let remote = remote(source, &config.secrets).map_err(source_failed)?;
    let signer = signer(automation, &config.secrets).map_err(source_failed)?;
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
        && automation.push_refspec.is_none();
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
    // The blocking task logs for the automation too: it enters the caller's span.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _span = span.enter();
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
                    git_failed(format!(
                        "locking the clone cache {}: {e}",
                        lock_path.display()
                    ))
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
                    .map_err(|e| {
                        source_failed(format!("creating a temporary checkout directory: {e}"))
                    })?;
                let path = temp.path().to_path_buf();
                _temp = Some(temp);
                (path, false)
            }
        };
        let mut checkout =
            Checkout::obtain(&remote, &checkout_ref, &dir, cached).map_err(git_failed)?;
        let checkout_name = reference_label(&checkout_ref, &checkout);
        let detached = !matches!(checkout_ref, Reference::Branch(_));
        let push_options = git::push_options(&automation.push_options);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A review branch is rebuilt from the checkout tip on every run: it holds exactly
            // the automation's changes on top of the current tip.
            let review_tip = if review {
                let tip = checkout.fetch(&remote, &push_branch).map_err(git_failed)?;
                checkout
                    .switch_branch(&push_branch, &checkout.head.clone())
                    .map_err(git_failed)?;
                tip
            } else {
                if detached {
                    // A tag, semver, name or commit checkout pushed to the ref's own branch
                    // (Flux): the commit goes on top of what was checked out, and the push
                    // is refused unless that is the branch's tip.
                    checkout
                        .switch_branch(&push_branch, &checkout.head.clone())
                        .map_err(git_failed)?;
                }
                None
            };
            let update = writer::fs::update_with(
                &checkout.dir,
                &automation.update_path,
                &setters,
                &writer_options,
            )
            .map_err(|e| Failure::new(Reason::UpdateFailed, e.to_string()))?;
            if update.files.is_empty() {
                let observed = if dry_run {
                    None
                } else {
                    record(checkout.head.clone())
                };
                return Ok((
                    format!("no changes on {checkout_name}"),
                    update,
                    observed,
                    None,
                ));
            }
            let summary = summary(&update);
            if dry_run {
                return Ok((
                    format!("would commit to {push_branch}: {summary}"),
                    update,
                    None,
                    None,
                ));
            }
            // Render before writing: a template that fails must leave the checkout untouched.
            let message = message(&automation, &update).map_err(git_failed)?;
            update
                .write()
                .map_err(|e| Failure::new(Reason::UpdateFailed, e.to_string()))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let Some(commit) = checkout
                .commit_with(&author, &message, now, signer.as_ref())
                .map_err(git_failed)?
            else {
                let observed = record(checkout.head.clone());
                return Ok((
                    format!("no changes on {checkout_name}"),
                    update,
                    observed,
                    None,
                ));
            };
            let short = commit[..commit.len().min(7)].to_string();
            // The outcome line, and the commit when a new one reached the remote (none when a
            // review branch already held these changes).
            let pushed = if review {
                checkout
                    .push_review(&remote, &push_branch, review_tip.as_deref(), None)
                    .map(|outcome| match outcome {
                        PushOutcome::Pushed(c) => (
                            format!("pushed commit {short} to {push_branch}: {summary}"),
                            Some(c),
                        ),
                        PushOutcome::Unchanged(c) => (
                            format!(
                                "{push_branch} already holds these changes ({}): {summary}",
                                &c[..c.len().min(7)]
                            ),
                            None,
                        ),
                    })
            } else {
                checkout
                    .push_with_options(&remote, &push_branch, &push_options)
                    .map(|()| {
                        (
                            format!("pushed commit {short} to {push_branch}: {summary}"),
                            Some(commit.clone()),
                        )
                    })
            };
            let pushed = pushed.and_then(|(text, new)| match &automation.push_refspec {
                Some(refspec) => checkout
                    .push_refspec(&remote, refspec, &push_options)
                    .map(|()| (format!("{text} (and refspec {refspec})"), new)),
                None => Ok((text, new)),
            });
            match pushed {
                Ok((text, new)) => {
                    let pushed = new.map(|commit| Push {
                        branch: push_branch.clone(),
                        commit,
                        message: message.clone(),
                        refspec: automation.push_refspec.clone(),
                    });
                    return Ok((text, update, record(commit.clone()), pushed));
                }
                // The branch moved between fetch and push: start again from its new tip.
                Err(e) if e.is_conflict() && !review && !detached && attempt < PUSH_ATTEMPTS => {
                    let (namespace, name) = (&automation.id.namespace, &automation.id.name);
                    tracing::info!(
                        kind = "ImageUpdateAutomation",
                        namespace,
                        name,
                        attempt,
                        "push lost a race; rebuilding on the new tip"
                    );
                    checkout.refresh(&remote).map_err(git_failed)?;
                }
                Err(e) => return Err(git_failed(e)),
            }
        }
    })
    .await
    .map_err(|e| {
        Failure::new(
            Reason::ReconciliationFailed,
            format!("update task failed: {e}"),
        )
    })?
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
                rate_limit: None,
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

#[cfg(test)]
mod reason_tests {
    use super::*;

    /// Each failure carries Flux's reason from the step that failed, not from its text.
    #[tokio::test(flavor = "current_thread")]
    async fn failures_carry_the_reason_of_the_step_that_failed() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: apps}
spec:
  image: 127.0.0.1:1/team/app
  interval: 1h
  secretRef: {name: missing}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: app, namespace: apps}
spec:
  imageRepositoryRef: {name: app}
  policy: {semver: {range: '^1.0.0'}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: fleet, namespace: apps}
spec:
  interval: 5m
  sourceRef: {kind: GitRepository, name: gone}
  git:
    commit:
      author: {email: bot@example.com}
";
        std::fs::write(dir.path().join("objects.yaml"), yaml).unwrap();
        let config = crate::api::load_dir(dir.path()).expect("valid config");
        let mut store = Store::in_memory();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let told = std::sync::Arc::clone(&seen);
        let options = Options {
            progress: Some(Progress::new(move |kind, id| {
                told.lock().unwrap().push(format!("{kind} {id}"));
            })),
            ..Options::default()
        };
        let report = reconcile(&config, &mut store, &options).await;
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "ImageRepository apps/app",
                "ImagePolicy apps/app",
                "ImageUpdateAutomation apps/fleet"
            ],
            "each object is told once, as it is done"
        );
        let reasons: Vec<(Kind, Reason)> =
            report.outcomes.iter().map(|o| (o.kind, o.reason)).collect();
        assert_eq!(
            reasons,
            [
                (Kind::ImageRepository, Reason::AuthenticationFailed),
                (Kind::ImagePolicy, Reason::DependencyNotReady),
                (Kind::ImageUpdateAutomation, Reason::SourceManagerFailed),
            ],
            "{:?}",
            report.outcomes
        );
        assert!(report
            .outcomes
            .iter()
            .all(|o| o.failed() && o.push.is_none()));
        // The lines users read are as before.
        assert_eq!(
            report.outcomes[0].to_string(),
            "ImageRepository apps/app: failed: spec.secretRef: Secret apps/missing not found"
        );
        for r in [Reason::Succeeded, Reason::InvalidSourceConfiguration] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
    }
}
