//! Reading a config folder: every `.yaml`/`.yml` file below it, every YAML document in each,
//! the Flux kinds picked out and checked; other kinds ignored. All or nothing: one bad object
//! makes the whole load fail, each problem naming file, document, object and field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use regex::Regex;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{
    parse_duration, types, Config, DigestReflection, GitRef, GitRepository, ImagePolicy,
    ImageRepository, ImageUpdateAutomation, Kind, NamespacedName, Origin, ScanBudget, Secret,
    Selector, SigningKeyType, SCAN_MAX_BYTES, SCAN_MAX_PAGES, SCAN_MAX_TAGS,
};
use crate::image::ImageName;
use crate::policy::{Choice, FilterTags, Order, Policy};

/// One problem in a config folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based document position in the file, when the problem is inside one.
    pub document: Option<usize>,
    /// `Kind namespace/name`, when known.
    pub object: Option<String>,
    /// The field path, e.g. `spec.policy.semver.range`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(d) = self.document {
            write!(f, " (document {d})")?;
        }
        if let Some(o) = &self.object {
            write!(f, ": {o}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a config folder could not be loaded: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

pub use crate::scanner::DEFAULT_EXCLUSION;

/// Loads and checks every Flux object under `dir`.
pub fn load_dir(dir: &Path) -> Result<Config, LoadError> {
    let mut loader = Loader::default();
    let mut files = Vec::new();
    if let Err(e) = collect_files(dir, &mut files) {
        loader.problem(
            dir,
            None,
            None,
            None,
            format!("cannot read config folder: {e}"),
        );
    } else if files.is_empty() && !dir.is_dir() {
        loader.problem(dir, None, None, None, "not a folder".to_string());
    }
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => loader.file(&file, &text),
            Err(e) => loader.problem(&file, None, None, None, format!("cannot read: {e}")),
        }
    }
    loader.finish()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect_files(&path, out)?;
        } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Default)]
struct Loader {
    config: Config,
    problems: Vec<Problem>,
    /// Exclusion patterns compiled so far: each distinct pattern is compiled once and shared
    /// by every ImageRepository that lists it (a `Regex` clone shares the compiled program).
    compiled: HashMap<String, Regex>,
}

/// What every object carries, read before its typed parse so errors can name it.
struct Header {
    kind: Kind,
    id: NamespacedName,
    origin: Origin,
}

impl Header {
    fn object(&self) -> String {
        format!("{} {}", self.kind, self.id)
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(*key)?;
    }
    cur.as_str()
}

impl Loader {
    fn problem(
        &mut self,
        file: &Path,
        document: Option<usize>,
        object: Option<String>,
        field: Option<&str>,
        message: String,
    ) {
        self.problems.push(Problem {
            file: file.to_path_buf(),
            document,
            object,
            field: field.map(str::to_string),
            message,
        });
    }

    fn object_problem(&mut self, h: &Header, field: &str, message: impl Into<String>) {
        self.problem(
            &h.origin.file,
            Some(h.origin.document),
            Some(h.object()),
            Some(field),
            message.into(),
        );
    }

    fn file(&mut self, file: &Path, text: &str) {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let document = i + 1;
            let value = match Value::deserialize(doc) {
                Ok(v) => v,
                Err(e) => {
                    self.problem(
                        file,
                        Some(document),
                        None,
                        None,
                        format!("invalid YAML: {e}"),
                    );
                    // The parser cannot resynchronise after a syntax error.
                    return;
                }
            };
            self.document(file, document, value);
        }
    }

    fn document(&mut self, file: &Path, document: usize, value: Value) {
        let (Some(api_version), Some(kind)) =
            (str_at(&value, &["apiVersion"]), str_at(&value, &["kind"]))
        else {
            return;
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = match (group, kind) {
            ("image.toolkit.fluxcd.io", "ImageRepository") => Kind::ImageRepository,
            ("image.toolkit.fluxcd.io", "ImagePolicy") => Kind::ImagePolicy,
            ("image.toolkit.fluxcd.io", "ImageUpdateAutomation") => Kind::ImageUpdateAutomation,
            ("source.toolkit.fluxcd.io", "GitRepository") => Kind::GitRepository,
            ("", "Secret") => Kind::Secret,
            ("notification.toolkit.fluxcd.io", "Receiver") => Kind::Receiver,
            ("notification.toolkit.fluxcd.io", "Provider") => Kind::Provider,
            ("notification.toolkit.fluxcd.io", "Alert") => Kind::Alert,
            _ => return,
        };
        let supported: &[&str] = match kind {
            Kind::Secret | Kind::GitRepository | Kind::Receiver => &["v1"],
            Kind::Provider | Kind::Alert => &[super::notification::API_VERSION],
            _ => &["v1", "v1beta2"],
        };
        let name = str_at(&value, &["metadata", "name"]).unwrap_or_default();
        let namespace = str_at(&value, &["metadata", "namespace"]).unwrap_or("default");
        let h = Header {
            kind,
            id: NamespacedName::new(namespace, name),
            origin: Origin {
                file: file.to_path_buf(),
                document,
            },
        };
        if !supported.contains(&version) {
            let want = supported
                .iter()
                .map(|v| format!("{group}/{v}").trim_start_matches('/').to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            self.object_problem(
                &h,
                "apiVersion",
                format!("{api_version} is not supported; use {want}"),
            );
            return;
        }
        if name.is_empty() {
            self.object_problem(&h, "metadata.name", "missing");
            return;
        }
        match kind {
            Kind::ImageRepository => self.image_repository(h, value),
            Kind::ImagePolicy => self.image_policy(h, value),
            Kind::ImageUpdateAutomation => self.automation(h, value),
            Kind::GitRepository => self.git_repository(h, value),
            Kind::Secret => self.secret(h, value),
            Kind::Receiver => self.receiver(h, value),
            Kind::Provider => self.provider(h, value),
            Kind::Alert => self.alert(h, value),
        }
    }

    fn typed<T: DeserializeOwned>(&mut self, h: &Header, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." { "(object)".into() } else { path };
                self.object_problem(h, &field, e.into_inner().to_string());
                None
            }
        }
    }

    fn duration(&mut self, h: &Header, field: &str, s: &str) -> Option<Duration> {
        match parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.object_problem(h, field, e);
                None
            }
        }
    }

    /// Reports `h` as defined twice when `first` (the origin of an object of the same kind
    /// and name read earlier) is there; true when it was.
    fn duplicate(&mut self, h: &Header, first: Option<Origin>) -> bool {
        let Some(first) = first else { return false };
        let msg = format!("defined twice; first at {first}");
        self.object_problem(h, "metadata.name", msg);
        true
    }

    fn image_repository(&mut self, h: Header, value: Value) {
        let Some(obj) = self.typed::<types::ImageRepository>(&h, value) else {
            return;
        };
        let spec = obj.spec;
        let image = match ImageName::parse(&spec.image) {
            Ok(i) => Some(i),
            Err(e) => {
                self.object_problem(&h, "spec.image", e.to_string());
                None
            }
        };
        let interval = self.duration(&h, "spec.interval", &spec.interval);
        let timeout = match &spec.timeout {
            Some(t) => self.duration(&h, "spec.timeout", t),
            None => interval.map(|i| i.max(Duration::from_secs(1))),
        };
        let patterns = spec
            .exclusion_list
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_EXCLUSION.to_string()]);
        let mut exclusion = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match self.exclusion_regex(p) {
                Ok(r) => exclusion.push(r),
                Err(e) => {
                    self.object_problem(&h, &format!("spec.exclusionList[{i}]"), e.to_string())
                }
            }
        }
        if let Some(p) = spec.provider.as_deref().filter(|p| *p != "generic") {
            self.object_problem(
                &h,
                "spec.provider",
                format!("provider '{p}' is not supported yet; use 'generic' with a secretRef"),
            );
            return;
        }
        let budget = self.scan_budget(&h, &obj.metadata.annotations);
        let (Some(image), Some(interval), Some(timeout), Some(budget)) =
            (image, interval, timeout, budget)
        else {
            return;
        };
        if exclusion.len() != patterns.len() {
            return;
        }
        let first = self
            .config
            .repositories
            .get(&h.id)
            .map(|o| o.origin.clone());
        if self.duplicate(&h, first) {
            return;
        }
        self.config.repositories.insert(
            h.id.clone(),
            ImageRepository {
                id: h.id,
                origin: h.origin,
                labels: obj.metadata.labels,
                image,
                interval,
                timeout,
                secret_ref: spec.secret_ref.map(|r| r.name),
                cert_secret_ref: spec.cert_secret_ref.map(|r| r.name),
                proxy_secret_ref: spec.proxy_secret_ref.map(|r| r.name),
                insecure: spec.insecure,
                exclusion,
                budget,
                suspend: spec.suspend,
            },
        );
    }

    /// The `tagline.dev/scan-max-*` annotations; None after reporting a bad value.
    fn scan_budget(
        &mut self,
        h: &Header,
        annotations: &BTreeMap<String, String>,
    ) -> Option<ScanBudget> {
        let mut ok = true;
        let mut read = |key: &str, binary_suffix: bool| -> Option<u64> {
            let text = annotations.get(key)?;
            match parse_count(text, binary_suffix) {
                Some(n) => Some(n),
                None => {
                    let suffix = if binary_suffix {
                        " (a suffix Ki, Mi or Gi may follow)"
                    } else {
                        ""
                    };
                    self.object_problem(
                        h,
                        &format!("metadata.annotations[\"{key}\"]"),
                        format!("'{text}' is not a whole number above zero{suffix}"),
                    );
                    ok = false;
                    None
                }
            }
        };
        let max_pages = read(SCAN_MAX_PAGES, false);
        let max_tags = read(SCAN_MAX_TAGS, false);
        let max_bytes = read(SCAN_MAX_BYTES, true);
        if !ok {
            return None;
        }
        let max_pages = match max_pages.map(u32::try_from).transpose() {
            Ok(n) => n,
            Err(_) => {
                self.object_problem(
                    h,
                    &format!("metadata.annotations[\"{SCAN_MAX_PAGES}\"]"),
                    format!("more than {} pages", u32::MAX),
                );
                return None;
            }
        };
        Some(ScanBudget {
            max_pages,
            max_tags: max_tags.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_bytes,
        })
    }

    /// `pattern` compiled, once per distinct pattern (Flux's default once per process).
    fn exclusion_regex(&mut self, pattern: &str) -> Result<Regex, regex::Error> {
        if let Some(r) = self.compiled.get(pattern) {
            return Ok(r.clone());
        }
        let r = if pattern == DEFAULT_EXCLUSION {
            crate::scanner::default_exclusion()
        } else {
            Regex::new(pattern)?
        };
        self.compiled.insert(pattern.to_string(), r.clone());
        Ok(r)
    }

    fn image_policy(&mut self, h: Header, value: Value) {
        let Some(obj) = self.typed::<types::ImagePolicy>(&h, value) else {
            return;
        };
        let spec = obj.spec;
        let order = |o: &Option<String>, field: &str, this: &mut Self| -> Option<Order> {
            match o.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => Some(Order::Asc),
                Some("desc") => Some(Order::Desc),
                Some(other) => {
                    this.object_problem(&h, field, format!("'{other}' is not 'asc' or 'desc'"));
                    None
                }
            }
        };
        // Flux: when several are set, the first in the order semver, alphabetical, numerical wins.
        let choice = if let Some(s) = &spec.policy.semver {
            Some(Choice::SemVer {
                range: s.range.clone(),
            })
        } else if let Some(a) = &spec.policy.alphabetical {
            order(&a.order, "spec.policy.alphabetical.order", self)
                .map(|order| Choice::Alphabetical { order })
        } else if let Some(n) = &spec.policy.numerical {
            order(&n.order, "spec.policy.numerical.order", self)
                .map(|order| Choice::Numerical { order })
        } else {
            self.object_problem(
                &h,
                "spec.policy",
                "set one of semver, alphabetical or numerical",
            );
            None
        };
        let Some(choice) = choice else { return };
        let filter = spec.filter_tags.as_ref().map(|f| FilterTags {
            pattern: f.pattern.clone(),
            extract: f.extract.clone(),
        });
        let policy = match Policy::new(&choice, filter.as_ref()) {
            Ok(p) => p,
            Err(e) => {
                let field = match (&choice, &filter) {
                    (_, Some(f)) if Regex::new(&f.pattern).is_err() => "spec.filterTags.pattern",
                    (Choice::SemVer { .. }, _) => "spec.policy.semver.range",
                    _ => "spec.policy",
                };
                self.object_problem(&h, field, e.to_string());
                return;
            }
        };
        let digest_reflection = match spec.digest_reflection_policy.as_deref() {
            None | Some("Never") => DigestReflection::Never,
            Some("IfNotPresent") => DigestReflection::IfNotPresent,
            Some("Always") => DigestReflection::Always,
            Some(other) => {
                self.object_problem(
                    &h,
                    "spec.digestReflectionPolicy",
                    format!("'{other}' is not Never, IfNotPresent or Always"),
                );
                return;
            }
        };
        // Flux's CEL rules: an interval goes with Always, and Always needs one.
        let mut interval = None;
        match (digest_reflection, &spec.interval) {
            (DigestReflection::Always, None) => {
                self.object_problem(
                    &h,
                    "spec.interval",
                    "required with digestReflectionPolicy: Always",
                );
                return;
            }
            (DigestReflection::Always, Some(i)) => {
                interval = self.duration(&h, "spec.interval", i);
                if interval.is_none() {
                    return;
                }
            }
            (_, Some(_)) => {
                self.object_problem(
                    &h,
                    "spec.interval",
                    "only allowed with digestReflectionPolicy: Always",
                );
                return;
            }
            (_, None) => {}
        }
        let repository = NamespacedName::new(
            spec.image_repository_ref
                .namespace
                .clone()
                .unwrap_or_else(|| h.id.namespace.clone()),
            spec.image_repository_ref.name.clone(),
        );
        let first = self.config.policies.get(&h.id).map(|o| o.origin.clone());
        if self.duplicate(&h, first) {
            return;
        }
        self.config.policies.insert(
            h.id.clone(),
            ImagePolicy {
                id: h.id,
                origin: h.origin,
                labels: obj.metadata.labels,
                repository,
                policy,
                digest_reflection,
                interval,
                suspend: spec.suspend,
            },
        );
    }

    fn git_ref(&mut self, h: &Header, field: &str, r: &types::GitRepositoryRef) -> Option<GitRef> {
        // Flux's precedence: commit > name > tag > semver > branch.
        let chosen = if let Some(c) = &r.commit {
            GitRef::Commit(c.clone())
        } else if let Some(n) = &r.name {
            GitRef::Name(n.clone())
        } else if let Some(t) = &r.tag {
            GitRef::Tag(t.clone())
        } else if let Some(s) = &r.semver {
            GitRef::SemVer(s.clone())
        } else if let Some(b) = &r.branch {
            GitRef::Branch(b.clone())
        } else {
            self.object_problem(h, field, "set one of branch, tag, semver, name or commit");
            return None;
        };
        Some(chosen)
    }

    fn automation(&mut self, h: Header, value: Value) {
        let Some(obj) = self.typed::<types::ImageUpdateAutomation>(&h, value) else {
            return;
        };
        let spec = obj.spec;
        let interval = self.duration(&h, "spec.interval", &spec.interval);
        if let Some(kind) = spec
            .source_ref
            .kind
            .as_deref()
            .filter(|k| *k != "GitRepository")
        {
            self.object_problem(
                &h,
                "spec.sourceRef.kind",
                format!("'{kind}' is not GitRepository"),
            );
            return;
        }
        let Some(git) = spec.git else {
            self.object_problem(&h, "spec.git", "missing (Flux: InvalidSourceConfiguration)");
            return;
        };
        if git.commit.author.email.is_empty() {
            self.object_problem(&h, "spec.git.commit.author.email", "missing");
            return;
        }
        let signing_key = match &git.commit.signing_key {
            Some(k) => match k.key_type.as_deref() {
                None | Some("") | Some("gpg") => {
                    Some((k.secret_ref.name.clone(), SigningKeyType::Gpg))
                }
                Some("ssh") => Some((k.secret_ref.name.clone(), SigningKeyType::Ssh)),
                Some(other) => {
                    self.object_problem(
                        &h,
                        "spec.git.commit.signingKey.type",
                        format!("'{other}' is not 'gpg' or 'ssh'"),
                    );
                    return;
                }
            },
            None => None,
        };
        let selector = match spec.policy_selector.as_ref().map(Selector::new).transpose() {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                self.object_problem(&h, "spec.policySelector", e);
                return;
            }
        };
        let checkout = match &git.checkout {
            Some(c) => match self.git_ref(&h, "spec.git.checkout.ref", &c.reference) {
                Some(r) => Some(r),
                None => return,
            },
            None => None,
        };
        let push = git.push.clone().unwrap_or_default();
        let message_template = match git
            .commit
            .message_template
            .as_deref()
            .map(crate::git::template::parse)
        {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                self.object_problem(&h, "spec.git.commit.messageTemplate", e.to_string());
                return;
            }
            None => None,
        };
        let update = spec.update.unwrap_or_default();
        if let Some(s) = update.strategy.as_deref().filter(|s| *s != "Setters") {
            self.object_problem(&h, "spec.update.strategy", format!("'{s}' is not Setters"));
            return;
        }
        let schedule = match crate::schedule::AutomationSchedule::from_annotations(
            &obj.metadata.annotations,
        ) {
            Ok(s) => s,
            Err(e) => {
                self.object_problem(&h, "metadata.annotations", e);
                return;
            }
        };
        let Some(interval) = interval else { return };
        let source = NamespacedName::new(
            spec.source_ref
                .namespace
                .clone()
                .unwrap_or_else(|| h.id.namespace.clone()),
            spec.source_ref.name.clone(),
        );
        let first = self.config.automations.get(&h.id).map(|o| o.origin.clone());
        if self.duplicate(&h, first) {
            return;
        }
        self.config.automations.insert(
            h.id.clone(),
            ImageUpdateAutomation {
                id: h.id,
                origin: h.origin,
                text_files: obj
                    .metadata
                    .annotations
                    .get(super::TEXT_FILES)
                    .map(|globs| {
                        globs
                            .split(',')
                            .map(str::trim)
                            .filter(|g| !g.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                annotations: obj.metadata.annotations,
                schedule,
                source,
                interval,
                selector,
                checkout,
                checkout_branch: git
                    .checkout
                    .as_ref()
                    .and_then(|c| c.reference.branch.clone()),
                push_branch: push.branch,
                push_refspec: push.refspec,
                push_options: push.options,
                signing_key,
                author_name: git.commit.author.name,
                author_email: git.commit.author.email,
                message_template,
                message_template_values: git.commit.message_template_values,
                update_path: update.path.unwrap_or_default(),
                suspend: spec.suspend,
            },
        );
    }

    fn git_repository(&mut self, h: Header, value: Value) {
        let Some(obj) = self.typed::<types::GitRepository>(&h, value) else {
            return;
        };
        let spec = obj.spec;
        let timeout = match &spec.timeout {
            Some(t) => match self.duration(&h, "spec.timeout", t) {
                Some(d) => d,
                None => return,
            },
            None => Duration::from_secs(60),
        };
        let reference = match &spec.reference {
            Some(r) => match self.git_ref(&h, "spec.ref", r) {
                Some(r) => Some(r),
                None => return,
            },
            None => None,
        };
        if spec.url.is_empty() {
            self.object_problem(&h, "spec.url", "missing");
            return;
        }
        let first = self
            .config
            .git_repositories
            .get(&h.id)
            .map(|o| o.origin.clone());
        if self.duplicate(&h, first) {
            return;
        }
        self.config.git_repositories.insert(
            h.id.clone(),
            GitRepository {
                id: h.id,
                origin: h.origin,
                url: spec.url,
                secret_ref: spec.secret_ref.map(|r| r.name),
                reference,
                reference_branch: spec.reference.as_ref().and_then(|r| r.branch.clone()),
                proxy_secret_ref: spec.proxy_secret_ref.map(|r| r.name),
                timeout,
                ignore: spec.ignore,
            },
        );
    }

    fn secret(&mut self, h: Header, value: Value) {
        let Some(obj) = self.typed::<types::Secret>(&h, value) else {
            return;
        };
        let mut data = BTreeMap::new();
        for (k, v) in &obj.data {
            let cleaned: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            match base64::engine::general_purpose::STANDARD.decode(cleaned) {
                Ok(bytes) => {
                    data.insert(k.clone(), bytes);
                }
                Err(_) => {
                    // Never echo the value: it is a secret.
                    self.object_problem(&h, &format!("data.{k}"), "not valid base64");
                    return;
                }
            }
        }
        for (k, v) in obj.string_data {
            data.insert(k, v.into_bytes());
        }
        if self.config.secrets.contains_key(&h.id) {
            self.object_problem(&h, "metadata.name", "defined twice");
            return;
        }
        self.config.secrets.insert(
            h.id.clone(),
            Secret {
                id: h.id,
                secret_type: obj.secret_type,
                data,
            },
        );
    }

    fn receiver(&mut self, h: Header, value: Value) {
        let Some(obj) = self.typed::<super::receiver::ReceiverObject>(&h, value) else {
            return;
        };
        match super::receiver::check(&h.id, &h.origin, obj) {
            Ok(r) => {
                let first = self.config.receivers.get(&h.id).map(|o| o.origin.clone());
                if !self.duplicate(&h, first) {
                    self.config.receivers.insert(h.id.clone(), r);
                }
            }
            Err(problems) => {
                for (field, message) in problems {
                    self.object_problem(&h, &field, message);
                }
            }
        }
    }

    fn provider(&mut self, h: Header, value: Value) {
        use super::notification::{check_provider, ProviderObject};
        let Some(obj) = self.typed::<ProviderObject>(&h, value) else {
            return;
        };
        match check_provider(h.id.clone(), h.origin.clone(), obj.spec) {
            Ok(p) => {
                let first = self.config.providers.get(&h.id).map(|o| o.origin.clone());
                if !self.duplicate(&h, first) {
                    self.config.providers.insert(h.id, p);
                }
            }
            Err(e) => self.object_problem(&h, &e.field, e.message),
        }
    }

    fn alert(&mut self, h: Header, value: Value) {
        use super::notification::{check_alert, AlertObject};
        let Some(obj) = self.typed::<AlertObject>(&h, value) else {
            return;
        };
        match check_alert(h.id.clone(), h.origin.clone(), obj.spec) {
            Ok(a) => {
                let first = self.config.alerts.get(&h.id).map(|o| o.origin.clone());
                if !self.duplicate(&h, first) {
                    self.config.alerts.insert(h.id, a);
                }
            }
            Err(e) => self.object_problem(&h, &e.field, e.message),
        }
    }

    fn finish(self) -> Result<Config, LoadError> {
        if self.problems.is_empty() {
            Ok(self.config)
        } else {
            Err(LoadError {
                problems: self.problems,
            })
        }
    }
}

/// A whole number above zero, optionally (with `binary_suffix`) followed by `Ki`, `Mi` or `Gi`.
fn parse_count(text: &str, binary_suffix: bool) -> Option<u64> {
    let text = text.trim();
    let (digits, scale) = match text.len().checked_sub(2).map(|i| text.split_at(i)) {
        Some((d, "Ki")) if binary_suffix => (d, 1u64 << 10),
        Some((d, "Mi")) if binary_suffix => (d, 1 << 20),
        Some((d, "Gi")) if binary_suffix => (d, 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        let dir = folder(files);
        let err = load_dir(dir.path()).expect_err("load should fail");
        let prefix = format!("{}/", dir.path().display());
        err.problems
            .iter()
            .map(|p| p.to_string().replace(&prefix, ""))
            .collect()
    }

    const REPO: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
spec:
  image: 127.0.0.1:5000/team/app
  interval: 5m
  secretRef:
    name: regcred
";

    const GIT: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: repo
  namespace: flux-system
spec:
  url: https://example.invalid/repo.git
  ref:
    branch: main
  secretRef:
    name: git
";

    const BUDGETED: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  annotations:
    tagline.dev/scan-max-pages: \"3\"
    tagline.dev/scan-max-tags: \"2500\"
    tagline.dev/scan-max-bytes: 2Mi
spec:
  image: 127.0.0.1:5000/team/app
  interval: 5m
";

    #[test]
    fn scan_budget_annotations_are_read_and_default_to_none() {
        let dir = folder(&[
            ("a.yaml", BUDGETED),
            ("b.yaml", &REPO.replace("name: app", "name: plain")),
        ]);
        let config = load_dir(dir.path()).unwrap();
        let budget = |name: &str| config.repositories[&NamespacedName::new("default", name)].budget;
        assert_eq!(
            budget("app"),
            ScanBudget {
                max_pages: Some(3),
                max_tags: Some(2500),
                max_bytes: Some(2 << 20),
            }
        );
        assert_eq!(budget("plain"), ScanBudget::default());
    }

    #[test]
    fn a_bad_scan_budget_names_the_annotation() {
        for (line, value, expected) in [
            ("scan-max-pages: \"0\"", "0", ""),
            ("scan-max-tags: lots", "lots", ""),
            (
                "scan-max-bytes: 2MB",
                "2MB",
                " (a suffix Ki, Mi or Gi may follow)",
            ),
            ("scan-max-pages: \"-1\"", "-1", ""),
        ] {
            let yaml = BUDGETED
                .replace("    tagline.dev/scan-max-pages: \"3\"\n", "")
                .replace("    tagline.dev/scan-max-tags: \"2500\"\n", "")
                .replace(
                    "tagline.dev/scan-max-bytes: 2Mi",
                    &format!("tagline.dev/{line}"),
                );
            let key = line.split(':').next().unwrap();
            assert_eq!(
                problems(&[("a.yaml", &yaml)]),
                vec![format!(
                    "a.yaml (document 1): ImageRepository default/app: metadata.annotations[\"tagline.dev/{key}\"]: '{value}' is not a whole number above zero{expected}"
                )],
                "{line}"
            );
        }
    }

    #[test]
    fn counts_parse_with_binary_suffixes_only_where_allowed() {
        assert_eq!(parse_count("7", false), Some(7));
        assert_eq!(parse_count("1Ki", true), Some(1024));
        assert_eq!(parse_count("1Gi", true), Some(1 << 30));
        assert_eq!(parse_count("1Ki", false), None);
        assert_eq!(parse_count("Mi", true), None);
        assert_eq!(parse_count("0Ki", true), None);
        assert_eq!(parse_count("99999999999999999999", false), None);
        assert_eq!(parse_count("20000000000Gi", true), None);
    }

    #[test]
    fn reads_kinds_from_nested_files_and_defaults_the_namespace() {
        let secret = "apiVersion: v1
kind: Secret
metadata: {name: git, namespace: flux-system}
data:
  username: Z2l0\nstringData:
  password: s3cret
";
        let other = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n";
        let dir = folder(&[
            ("a/repo.yaml", REPO),
            ("b/git.yml", &format!("---\n{GIT}---\n{secret}---\n{other}")),
            ("notes.txt", "not yaml at all: ["),
            (".hidden/x.yaml", "{{ broken"),
        ]);
        let config = load_dir(dir.path()).unwrap();
        let repo = &config.repositories[&NamespacedName::new("default", "app")];
        assert_eq!(repo.image.canonical(), "127.0.0.1:5000/team/app");
        assert_eq!(repo.interval, Duration::from_secs(300));
        assert_eq!(repo.timeout, Duration::from_secs(300));
        assert_eq!(repo.exclusion.len(), 1);
        assert!(repo.exclusion[0].is_match("sha256-abc.sig"));
        assert_eq!(repo.origin.document, 1);
        let git = &config.git_repositories[&NamespacedName::new("flux-system", "repo")];
        assert_eq!(git.reference, Some(GitRef::Branch("main".into())));
        assert_eq!(git.timeout, Duration::from_secs(60));
        assert_eq!(git.origin.document, 1);
        let s = &config.secrets[&NamespacedName::new("flux-system", "git")];
        assert_eq!(s.data["username"], b"git");
        assert_eq!(s.data["password"], b"s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn yaml_syntax_error_names_file_and_document() {
        let p = problems(&[(
            "bad.yaml",
            "---\nkind: Secret\n---\napiVersion: v1\nkind: [unclosed\n",
        )]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("bad.yaml (document 2): invalid YAML"),
            "{}",
            p[0]
        );
        assert!(p[0].contains("line"), "{}", p[0]);
    }

    #[test]
    fn unknown_and_missing_fields_name_object_and_field() {
        let typo = REPO.replace("  interval: 5m", "  intervall: 5m");
        let p = problems(&[("repo.yaml", &typo)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("repo.yaml (document 1): ImageRepository default/app: spec.intervall: unknown field `intervall`"), "{}", p[0]);

        let bad = REPO.replace("  interval: 5m", "  interval: 5 minutes");
        let p = problems(&[("repo.yaml", &bad)]);
        assert!(
            p[0].contains("ImageRepository default/app: spec.interval: "),
            "{}",
            p[0]
        );

        let bad = REPO.replace("127.0.0.1:5000/team/app", "https://ghcr.io/team/app:1.0");
        let p = problems(&[("repo.yaml", &bad)]);
        assert!(
            p[0].contains(
                "spec.image: image 'https://ghcr.io/team/app:1.0' should not include a URL scheme"
            ),
            "{}",
            p[0]
        );

        let bad = REPO.replace(
            "  interval: 5m\n",
            "  interval: 5m\n  exclusionList: ['^ok$', '(unclosed']\n",
        );
        let p = problems(&[("repo.yaml", &bad)]);
        assert!(p[0].contains("spec.exclusionList[1]: "), "{}", p[0]);
    }

    #[test]
    fn old_api_versions_are_refused_with_the_supported_ones() {
        let old = REPO.replace(
            "image.toolkit.fluxcd.io/v1",
            "image.toolkit.fluxcd.io/v1beta1",
        );
        let p = problems(&[("repo.yaml", &old)]);
        assert!(p[0].contains("apiVersion: image.toolkit.fluxcd.io/v1beta1 is not supported; use image.toolkit.fluxcd.io/v1 or image.toolkit.fluxcd.io/v1beta2"), "{}", p[0]);
        let beta2 = REPO.replace(
            "image.toolkit.fluxcd.io/v1",
            "image.toolkit.fluxcd.io/v1beta2",
        );
        let dir = folder(&[("repo.yaml", &beta2)]);
        assert!(load_dir(dir.path()).is_ok());
    }

    #[test]
    fn duplicates_and_every_problem_are_reported() {
        let p = problems(&[
            ("a.yaml", REPO),
            ("b.yaml", REPO),
            (
                "c.yaml",
                &GIT.replace("  url: https://example.invalid/repo.git\n", ""),
            ),
        ]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("b.yaml (document 1): ImageRepository default/app: metadata.name: defined twice; first at "), "{}", p[0]);
        assert!(
            p[1].contains(
                "c.yaml (document 1): GitRepository flux-system/repo: spec: missing field `url`"
            ),
            "{}",
            p[1]
        );
    }

    #[test]
    fn bad_base64_never_echoes_the_secret() {
        let s = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  password: 'not*base64*hunter2'\n";
        let p = problems(&[("s.yaml", s)]);
        assert!(
            p[0].contains("Secret default/s: data.password: not valid base64"),
            "{}",
            p[0]
        );
        assert!(!p[0].contains("hunter2"));
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let err = load_dir(Path::new("/nonexistent/tagline")).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/tagline: cannot read config folder"),
            "{err}"
        );
    }

    const POLICY: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
  labels: {team: a}
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: '^1.0.0'
";

    #[test]
    fn policies_are_checked_with_the_field_named() {
        let dir = folder(&[("p.yaml", POLICY)]);
        let config = load_dir(dir.path()).unwrap();
        let p = &config.policies[&NamespacedName::new("default", "app")];
        assert_eq!(p.repository, NamespacedName::new("default", "app"));
        assert_eq!(p.labels["team"], "a");
        assert_eq!(
            p.policy
                .latest(&["1.0.0".into(), "1.3.0".into(), "2.0.0".into()])
                .unwrap(),
            "1.3.0"
        );

        let p = problems(&[("p.yaml", &POLICY.replace("^1.0.0", ">=1.0 <x1"))]);
        assert!(
            p[0].contains("ImagePolicy default/app: spec.policy.semver.range: "),
            "{}",
            p[0]
        );
        assert!(p[0].contains("column"), "{}", p[0]);

        let filtered = POLICY.replace(
            "  policy:",
            "  filterTags:\n    pattern: '^main-(unclosed'\n  policy:",
        );
        let p = problems(&[("p.yaml", &filtered)]);
        assert!(p[0].contains("spec.filterTags.pattern: "), "{}", p[0]);

        let p = problems(&[(
            "p.yaml",
            &POLICY.replace(
                "    semver:\n      range: '^1.0.0'",
                "    alphabetical:\n      order: up",
            ),
        )]);
        assert!(
            p[0].contains("spec.policy.alphabetical.order: 'up' is not 'asc' or 'desc'"),
            "{}",
            p[0]
        );

        let p = problems(&[(
            "p.yaml",
            &POLICY.replace("    semver:\n      range: '^1.0.0'", "    {}"),
        )]);
        assert!(
            p[0].contains("spec.policy: set one of semver, alphabetical or numerical"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn digest_reflection_follows_flux_rules() {
        let with = |extra: &str| POLICY.replace("  policy:", &format!("{extra}  policy:"));
        let dir = folder(&[(
            "p.yaml",
            &with("  digestReflectionPolicy: Always\n  interval: 10m\n"),
        )]);
        let config = load_dir(dir.path()).unwrap();
        assert_eq!(
            config.policies[&NamespacedName::new("default", "app")].digest_reflection,
            super::super::DigestReflection::Always
        );
        let p = problems(&[("p.yaml", &with("  digestReflectionPolicy: Always\n"))]);
        assert!(
            p[0].contains("spec.interval: required with digestReflectionPolicy: Always"),
            "{}",
            p[0]
        );
        let p = problems(&[(
            "p.yaml",
            &with("  digestReflectionPolicy: IfNotPresent\n  interval: 1m\n"),
        )]);
        assert!(
            p[0].contains("spec.interval: only allowed with digestReflectionPolicy: Always"),
            "{}",
            p[0]
        );
        let p = problems(&[("p.yaml", &with("  digestReflectionPolicy: Sometimes\n"))]);
        assert!(
            p[0].contains("spec.digestReflectionPolicy: 'Sometimes' is not"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn a_bad_message_template_is_a_config_problem() {
        let iua = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: auto}
spec:
  interval: 5m
  sourceRef: {kind: GitRepository, name: repo}
  git:
    commit:
      author: {email: bot@example.com}
      messageTemplate: '{{ range .Changed.Changes }}'
";
        let p = problems(&[("a.yaml", iua)]);
        assert!(
            p[0].contains("ImageUpdateAutomation default/auto: spec.git.commit.messageTemplate: "),
            "{}",
            p[0]
        );
    }

    #[test]
    fn providers_and_alerts_are_read_and_problems_name_the_field() {
        let provider = "apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: flux, namespace: flux-system}
spec:
  type: generic-hmac
  address: http://127.0.0.1:9292/hook/abc
  secretRef: {name: hook-token}
";
        let alert = "apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: pushes, namespace: flux-system}
spec:
  providerRef: {name: flux}
  eventSources: [{kind: ImageUpdateAutomation, name: '*'}]
";
        let dir = folder(&[("n.yaml", &format!("{provider}---\n{alert}"))]);
        let config = load_dir(dir.path()).unwrap();
        let id = NamespacedName::new("flux-system", "flux");
        assert_eq!(
            config.providers[&id].secret_ref.as_deref(),
            Some("hook-token")
        );
        let a = &config.alerts[&NamespacedName::new("flux-system", "pushes")];
        assert_eq!(a.provider, id);
        assert_eq!(a.origin.document, 2);

        let p = problems(&[(
            "n.yaml",
            &alert.replace("name: '*'", "name: '*', labels: {}"),
        )]);
        assert!(p[0].starts_with("n.yaml (document 1): Alert flux-system/pushes: spec.eventSources[0].labels: unknown field"), "{}", p[0]);
        let p = problems(&[("n.yaml", &provider.replace("generic-hmac", "smtp"))]);
        assert!(
            p[0].contains(
                "Provider flux-system/flux: spec.type: 'smtp' is not a Flux provider type"
            ),
            "{}",
            p[0]
        );
        let p = problems(&[("n.yaml", &provider.replace("v1beta3", "v1beta1"))]);
        assert!(
            p[0].contains("use notification.toolkit.fluxcd.io/v1beta3"),
            "{}",
            p[0]
        );
        let p = problems(&[("a.yaml", alert), ("b.yaml", alert)]);
        assert!(
            p[0].contains(
                "b.yaml (document 1): Alert flux-system/pushes: metadata.name: defined twice"
            ),
            "{}",
            p[0]
        );
    }
}
