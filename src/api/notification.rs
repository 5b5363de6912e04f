//! Flux's notification kinds `Provider` and `Alert` (`notification.toolkit.fluxcd.io/v1beta3`):
//! serde types with Flux's field names, and their checked domain types.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::types::{LocalObjectReference, ObjectMeta};
use super::{parse_duration, NamespacedName, Origin, FLUX_OBJECT_KINDS};

/// The one API version read for both kinds.
pub const API_VERSION: &str = "v1beta3";

/// Every `spec.type` Flux's Provider accepts (its CRD enum); tagline sends three of them.
pub const FLUX_PROVIDER_TYPES: &[&str] = &[
    "slack",
    "discord",
    "msteams",
    "rocket",
    "generic",
    "generic-hmac",
    "github",
    "gitlab",
    "gitea",
    "giteapullrequestcomment",
    "bitbucketserver",
    "bitbucket",
    "azuredevops",
    "googlechat",
    "googlepubsub",
    "webex",
    "sentry",
    "azureeventhub",
    "telegram",
    "lark",
    "matrix",
    "opsgenie",
    "alertmanager",
    "grafana",
    "githubdispatch",
    "githubpullrequestcomment",
    "gitlabmergerequestcomment",
    "pagerduty",
    "datadog",
    "nats",
    "zulip",
    "otel",
    "zoom",
    "incident.io",
];

/// Flux's default `spec.timeout` of a Provider.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// `notification.toolkit.fluxcd.io/v1beta3` `Provider`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderObject {
    pub metadata: ObjectMeta,
    pub spec: ProviderSpec,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSpec {
    #[serde(rename = "type")]
    pub provider_type: String,
    /// Deprecated and unused in v1beta3; read so Flux manifests parse.
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub timeout: Option<String>,
    /// Deprecated in Flux in favour of `proxySecretRef`; still honoured.
    #[serde(default)]
    pub proxy: String,
    #[serde(default)]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub cert_secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub commit_status_expr: Option<String>,
}

/// `notification.toolkit.fluxcd.io/v1beta3` `Alert`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertObject {
    pub metadata: ObjectMeta,
    pub spec: AlertSpec,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertSpec {
    pub provider_ref: LocalObjectReference,
    #[serde(default)]
    pub event_severity: Option<String>,
    pub event_sources: Vec<CrossNamespaceObjectReference>,
    #[serde(default)]
    pub inclusion_list: Vec<String>,
    #[serde(default)]
    pub event_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub exclusion_list: Vec<String>,
    /// Deprecated in Flux in favour of `eventMetadata.summary`; still honoured.
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub suspend: bool,
}

/// An Alert's event source.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossNamespaceObjectReference {
    #[serde(default)]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// `spec.type` of a Provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderType {
    /// POST of the event JSON.
    Generic,
    /// POST of the event JSON with `X-Signature: sha256=<HMAC of the body keyed by the token>`.
    GenericHmac,
    /// POST of a Slack message (incoming webhook or `chat.postMessage`).
    Slack,
    /// A type Flux knows and tagline does not send; the Provider loads, its alerts are skipped
    /// with a log line.
    Unsupported(String),
}

impl ProviderType {
    pub fn as_str(&self) -> &str {
        match self {
            ProviderType::Generic => "generic",
            ProviderType::GenericHmac => "generic-hmac",
            ProviderType::Slack => "slack",
            ProviderType::Unsupported(t) => t,
        }
    }
}

/// A checked `Provider`. `address` may be empty here: a Secret's `address` key can supply it.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: NamespacedName,
    pub origin: Origin,
    pub provider_type: ProviderType,
    pub address: String,
    pub channel: String,
    pub username: String,
    /// `spec.timeout`, default 15s.
    pub timeout: Duration,
    /// `spec.proxy` (deprecated in Flux, honoured).
    pub proxy: String,
    pub proxy_secret_ref: Option<String>,
    pub secret_ref: Option<String>,
    pub cert_secret_ref: Option<String>,
    pub suspend: bool,
}

/// `spec.eventSeverity` of an Alert, and the severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Error => "error",
        }
    }
}

/// One of an Alert's `eventSources`, with the namespace defaulted to the Alert's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    pub kind: String,
    /// A name, or `*` for every object of the kind in the namespace.
    pub name: String,
    pub namespace: String,
    /// `None`: no label check; `Some({})`: matches every object.
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// A checked `Alert`.
#[derive(Debug, Clone)]
pub struct Alert {
    pub id: NamespacedName,
    pub origin: Origin,
    /// `spec.providerRef.name`, in the Alert's namespace.
    pub provider: NamespacedName,
    /// `info` lets every event through; `error` only errors.
    pub severity: Severity,
    pub sources: Vec<EventSource>,
    pub inclusion: Vec<Regex>,
    pub exclusion: Vec<Regex>,
    pub event_metadata: BTreeMap<String, String>,
    /// `spec.summary` (deprecated in Flux, honoured): metadata key `summary`.
    pub summary: String,
    pub suspend: bool,
}

/// A problem in one field of a Provider or Alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks a parsed `Provider`.
pub fn check_provider(
    id: NamespacedName,
    origin: Origin,
    spec: ProviderSpec,
) -> Result<Provider, FieldProblem> {
    let provider_type = match spec.provider_type.as_str() {
        "generic" => ProviderType::Generic,
        "generic-hmac" => ProviderType::GenericHmac,
        "slack" => ProviderType::Slack,
        t if FLUX_PROVIDER_TYPES.contains(&t) => ProviderType::Unsupported(t.to_string()),
        t => {
            return Err(problem(
                "spec.type",
                format!("'{t}' is not a Flux provider type"),
            ))
        }
    };
    let timeout = match &spec.timeout {
        Some(t) => {
            if t.ends_with('h') {
                return Err(problem(
                    "spec.timeout",
                    format!("'{t}' must use ms, s or m units"),
                ));
            }
            parse_duration(t).map_err(|e| problem("spec.timeout", e))?
        }
        None => DEFAULT_TIMEOUT,
    };
    if let Some(i) = &spec.interval {
        parse_duration(i).map_err(|e| problem("spec.interval", e))?;
    }
    if spec.address.len() > 2048 {
        return Err(problem("spec.address", "longer than 2048 characters"));
    }
    if !spec.address.is_empty() && url::Url::parse(&spec.address).is_err() {
        // The address is not echoed: a webhook URL often carries its own token.
        return Err(problem("spec.address", "not a valid URL"));
    }
    let proxy_scheme = spec.proxy.starts_with("http://") || spec.proxy.starts_with("https://");
    if !spec.proxy.is_empty() && !proxy_scheme {
        return Err(problem("spec.proxy", "must start with http:// or https://"));
    }
    Ok(Provider {
        id,
        origin,
        provider_type,
        address: spec.address,
        channel: spec.channel,
        username: spec.username,
        timeout,
        proxy: spec.proxy,
        proxy_secret_ref: spec.proxy_secret_ref.map(|r| r.name),
        secret_ref: spec.secret_ref.map(|r| r.name),
        cert_secret_ref: spec.cert_secret_ref.map(|r| r.name),
        suspend: spec.suspend,
    })
}

fn regexes(field: &str, patterns: &[String]) -> Result<Vec<Regex>, FieldProblem> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| Regex::new(p).map_err(|e| problem(format!("{field}[{i}]"), e.to_string())))
        .collect()
}

/// Checks a parsed `Alert`.
pub fn check_alert(
    id: NamespacedName,
    origin: Origin,
    spec: AlertSpec,
) -> Result<Alert, FieldProblem> {
    let severity = match spec.event_severity.as_deref() {
        None | Some("") | Some("info") => Severity::Info,
        Some("error") => Severity::Error,
        Some(other) => {
            return Err(problem(
                "spec.eventSeverity",
                format!("'{other}' is not 'info' or 'error'"),
            ))
        }
    };
    if spec.provider_ref.name.is_empty() {
        return Err(problem("spec.providerRef.name", "missing"));
    }
    let mut sources = Vec::new();
    for (i, s) in spec.event_sources.into_iter().enumerate() {
        if !FLUX_OBJECT_KINDS.contains(&s.kind.as_str()) {
            return Err(problem(
                format!("spec.eventSources[{i}].kind"),
                format!("'{}' is not a kind Flux sends events for", s.kind),
            ));
        }
        if s.name.is_empty() || s.name.len() > 253 {
            return Err(problem(
                format!("spec.eventSources[{i}].name"),
                "must be 1 to 253 characters",
            ));
        }
        sources.push(EventSource {
            kind: s.kind,
            name: s.name,
            namespace: s
                .namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.namespace.clone()),
            match_labels: s.match_labels,
        });
    }
    if spec.summary.len() > 255 {
        return Err(problem("spec.summary", "longer than 255 characters"));
    }
    Ok(Alert {
        provider: NamespacedName::new(id.namespace.clone(), spec.provider_ref.name),
        inclusion: regexes("spec.inclusionList", &spec.inclusion_list)?,
        exclusion: regexes("spec.exclusionList", &spec.exclusion_list)?,
        id,
        origin,
        severity,
        sources,
        event_metadata: spec.event_metadata,
        summary: spec.summary,
        suspend: spec.suspend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            file: "n.yaml".into(),
            document: 1,
        }
    }

    fn provider(yaml: &str) -> Result<Provider, FieldProblem> {
        let obj: ProviderObject = serde_yaml_ng::from_str(yaml).unwrap();
        check_provider(NamespacedName::new("flux-system", "p"), origin(), obj.spec)
    }

    fn alert(yaml: &str) -> Result<Alert, FieldProblem> {
        let obj: AlertObject = serde_yaml_ng::from_str(yaml).unwrap();
        check_alert(NamespacedName::new("flux-system", "a"), origin(), obj.spec)
    }

    #[test]
    fn provider_defaults_and_types() {
        let p = provider("metadata: {name: p}\nspec: {type: generic-hmac, address: 'http://127.0.0.1:1/hook/x', secretRef: {name: s}}").unwrap();
        assert_eq!(p.provider_type, ProviderType::GenericHmac);
        assert_eq!(p.timeout, Duration::from_secs(15));
        assert_eq!(p.secret_ref.as_deref(), Some("s"));
        let p =
            provider("metadata: {name: p}\nspec: {type: slack, channel: general, timeout: 1m30s}")
                .unwrap();
        assert_eq!(p.provider_type, ProviderType::Slack);
        assert_eq!(p.timeout, Duration::from_secs(90));
        let p = provider("metadata: {name: p}\nspec: {type: msteams}").unwrap();
        assert_eq!(p.provider_type, ProviderType::Unsupported("msteams".into()));
    }

    #[test]
    fn provider_problems_name_the_field_and_never_echo_the_address() {
        let e = provider("metadata: {name: p}\nspec: {type: email}").unwrap_err();
        assert_eq!(e.field, "spec.type");
        assert!(e.message.contains("'email' is not a Flux provider type"));
        let e = provider("metadata: {name: p}\nspec: {type: generic, timeout: 1h}").unwrap_err();
        assert_eq!(e.field, "spec.timeout");
        let e = provider("metadata: {name: p}\nspec: {type: slack, address: 'hooks/s3cret'}")
            .unwrap_err();
        assert_eq!(e.field, "spec.address");
        assert!(!e.message.contains("s3cret"));
        let e = provider("metadata: {name: p}\nspec: {type: generic, proxy: 'socks5://x'}")
            .unwrap_err();
        assert_eq!(e.field, "spec.proxy");
    }

    #[test]
    fn alert_defaults_namespace_severity_and_regexes() {
        let a = alert(
            "metadata: {name: a}
spec:
  providerRef: {name: hook}
  eventSources:
    - {kind: ImageUpdateAutomation, name: '*'}
    - {kind: ImagePolicy, name: app, namespace: apps, matchLabels: {team: a}}
  exclusionList: ['^no change']
  eventMetadata: {cluster: prod}
",
        )
        .unwrap();
        assert_eq!(a.severity, Severity::Info);
        assert_eq!(a.provider, NamespacedName::new("flux-system", "hook"));
        assert_eq!(a.sources[0].namespace, "flux-system");
        assert_eq!(a.sources[0].match_labels, None);
        assert_eq!(a.sources[1].namespace, "apps");
        assert!(a.exclusion[0].is_match("no change since last reconciliation"));
        assert_eq!(a.event_metadata["cluster"], "prod");
    }

    #[test]
    fn alert_problems_name_the_field() {
        let base = "metadata: {name: a}\nspec:\n  providerRef: {name: hook}\n  eventSources: [{kind: ImagePolicy, name: app}]\n";
        let e = alert(&format!("{base}  eventSeverity: warning\n")).unwrap_err();
        assert_eq!(e.field, "spec.eventSeverity");
        let e = alert(&format!("{base}  inclusionList: ['ok', '(unclosed']\n")).unwrap_err();
        assert_eq!(e.field, "spec.inclusionList[1]");
        let e = alert(&base.replace("ImagePolicy", "Deployment")).unwrap_err();
        assert_eq!(e.field, "spec.eventSources[0].kind");
        let a = alert(&format!("{base}  eventSeverity: error\n")).unwrap();
        assert_eq!(a.severity, Severity::Error);
    }
}
