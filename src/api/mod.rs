//! Flux's object kinds as serde types, read from YAML files, and their validating conversion
//! into domain types: everything after `load_dir` takes checked values (compiled regexes,
//! parsed ranges and durations, normalised image names).

mod duration;
mod load;
pub mod notification;
pub mod receiver;
mod selector;
pub mod status;
pub mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

pub use duration::parse_duration;
pub use load::{load_dir, LoadError, Problem, DEFAULT_EXCLUSION};
pub use notification::{Alert, Provider};
pub use receiver::{Receiver, ReceiverResource, ReceiverType};
pub use selector::Selector;

use crate::image::ImageName;
use crate::policy::Policy;

/// The kinds tagline acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ImageRepository,
    ImagePolicy,
    ImageUpdateAutomation,
    GitRepository,
    Secret,
    Receiver,
    Provider,
    Alert,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `namespace/name` of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        NamespacedName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where an object was read from: the file and the 1-based document position in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

/// A checked `ImageRepository`.
#[derive(Debug, Clone)]
pub struct ImageRepository {
    pub id: NamespacedName,
    pub origin: Origin,
    /// `metadata.labels` (a Receiver's `matchLabels` select on them).
    pub labels: BTreeMap<String, String>,
    pub image: ImageName,
    pub interval: Duration,
    /// `spec.timeout`, defaulting to the interval (at least one second), as Flux does.
    pub timeout: Duration,
    pub secret_ref: Option<String>,
    pub cert_secret_ref: Option<String>,
    /// `spec.proxySecretRef.name`: a Secret with `address`, `username`, `password`.
    pub proxy_secret_ref: Option<String>,
    pub insecure: bool,
    pub exclusion: Vec<Regex>,
    /// tagline's own bounds on one listing, from the `tagline.dev/scan-max-*` annotations.
    pub budget: ScanBudget,
    pub suspend: bool,
}

/// Annotation on an ImageRepository: the most pages one listing fetches.
pub const SCAN_MAX_PAGES: &str = "tagline.dev/scan-max-pages";
/// Annotation on an ImageRepository: the most distinct tags one listing accepts.
pub const SCAN_MAX_TAGS: &str = "tagline.dev/scan-max-tags";
/// Annotation on an ImageRepository: the most body bytes one listing reads (all pages
/// together); a binary suffix `Ki`, `Mi` or `Gi` may follow the number.
pub const SCAN_MAX_BYTES: &str = "tagline.dev/scan-max-bytes";

/// An ImageRepository's budget for one listing; `None` keeps the scanner's default. A listing
/// cut by the budget is a failed scan: it never elects a latest tag and never replaces the
/// last good list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanBudget {
    pub max_pages: Option<u32>,
    pub max_tags: Option<usize>,
    pub max_bytes: Option<u64>,
}

/// A checked `ImagePolicy`.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    pub id: NamespacedName,
    pub origin: Origin,
    pub labels: BTreeMap<String, String>,
    pub repository: NamespacedName,
    pub policy: Policy,
    /// `spec.digestReflectionPolicy`.
    pub digest_reflection: DigestReflection,
    /// `spec.interval`: how often the digest is looked up again (with `Always` only).
    pub interval: Option<Duration>,
    pub suspend: bool,
}

/// `spec.digestReflectionPolicy`: when the chosen tag's manifest digest is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestReflection {
    /// No digest (the default).
    #[default]
    Never,
    /// Looked up when the tag (or name) changed or no digest is known yet.
    IfNotPresent,
    /// Looked up on every reconcile, so moving tags such as `latest` are tracked.
    Always,
}

/// `git.checkout.ref` / `GitRepository.spec.ref`, one kind of reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    Tag(String),
    SemVer(String),
    Name(String),
    Commit(String),
}

/// Every kind Flux's notification CRDs accept as an object reference: an Alert's
/// `eventSources[].kind` and a Receiver's `resources[].kind`.
pub const FLUX_OBJECT_KINDS: &[&str] = &[
    "Bucket",
    "GitRepository",
    "Kustomization",
    "HelmRelease",
    "HelmChart",
    "HelmRepository",
    "ImageRepository",
    "ImagePolicy",
    "ImageUpdateAutomation",
    "OCIRepository",
    "ArtifactGenerator",
    "ExternalArtifact",
];

/// Annotation on an ImageUpdateAutomation: comma-separated globs (gitignore syntax, relative
/// to `update.path`) of non-YAML text files whose marked lines are updated too, e.g.
/// `"Dockerfile, **/*.tf"`. Off when absent.
pub const TEXT_FILES: &str = "tagline.dev/text-files";

/// `git.commit.signingKey.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKeyType {
    /// `git.asc` (+ `passphrase`) in the Secret.
    Gpg,
    /// `identity` (+ `password`) in the Secret.
    Ssh,
}

/// A checked `ImageUpdateAutomation`.
#[derive(Debug, Clone)]
pub struct ImageUpdateAutomation {
    pub id: NamespacedName,
    pub origin: Origin,
    /// `metadata.annotations`: tagline's own extensions live here (schedules, text files).
    pub annotations: BTreeMap<String, String>,
    /// The commit window and debounce from the `tagline.dev/` annotations, checked.
    pub schedule: crate::schedule::AutomationSchedule,
    /// Globs of other text files to update (`tagline.dev/text-files`); empty: YAML only.
    pub text_files: Vec<String>,
    pub source: NamespacedName,
    pub interval: Duration,
    pub selector: Selector,
    pub checkout: Option<GitRef>,
    /// `git.checkout.ref.branch` whatever `checkout` chose (Flux pushes to it when
    /// `git.push.branch` is absent, and looks for a `commit` on it).
    pub checkout_branch: Option<String>,
    pub push_branch: Option<String>,
    /// `git.push.refspec`: pushed in addition to the branch.
    pub push_refspec: Option<String>,
    /// `git.push.options`.
    pub push_options: BTreeMap<String, String>,
    /// `git.commit.signingKey`: the Secret's name and the key type.
    pub signing_key: Option<(String, SigningKeyType)>,
    pub author_name: String,
    pub author_email: String,
    /// `git.commit.messageTemplate`, parsed; None: Flux's default message.
    pub message_template: Option<crate::git::template::Template>,
    pub message_template_values: BTreeMap<String, String>,
    /// `update.path`, as written (the writer confines it to the checkout).
    pub update_path: String,
    pub suspend: bool,
}

/// A checked `GitRepository`.
#[derive(Debug, Clone)]
pub struct GitRepository {
    pub id: NamespacedName,
    pub origin: Origin,
    pub url: String,
    pub secret_ref: Option<String>,
    pub reference: Option<GitRef>,
    /// `spec.ref.branch` whatever `reference` chose (see `ImageUpdateAutomation::checkout_branch`).
    pub reference_branch: Option<String>,
    /// `spec.proxySecretRef`: a Secret with `address`, optional `username` and `password`.
    pub proxy_secret_ref: Option<String>,
    /// `spec.timeout`, default 60s.
    pub timeout: Duration,
    pub ignore: Option<String>,
}

/// A `Secret`'s decoded data. `Debug` shows the key names only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: NamespacedName,
    pub secret_type: Option<String>,
    pub data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("id", &self.id)
            .field("type", &self.secret_type)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Every object of a config folder, checked, in a stable order (namespace, name).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub repositories: BTreeMap<NamespacedName, ImageRepository>,
    pub policies: BTreeMap<NamespacedName, ImagePolicy>,
    pub automations: BTreeMap<NamespacedName, ImageUpdateAutomation>,
    pub git_repositories: BTreeMap<NamespacedName, GitRepository>,
    pub secrets: BTreeMap<NamespacedName, Secret>,
    pub receivers: BTreeMap<NamespacedName, Receiver>,
    pub providers: BTreeMap<NamespacedName, Provider>,
    pub alerts: BTreeMap<NamespacedName, Alert>,
}
