//! Flux's `Receiver` (`notification.toolkit.fluxcd.io/v1`): the serde type, its checked domain
//! type, and the webhook path Flux derives from the token, name and namespace.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::types::{LocalObjectReference, ObjectMeta};
use super::{parse_duration, NamespacedName, Origin, Secret, FLUX_OBJECT_KINDS};

/// Flux's `ReceiverWebhookPath`: every webhook path starts with it.
pub const WEBHOOK_PREFIX: &str = "/hook/";

/// `spec.interval` when absent, as Flux defaults it.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);

/// The types Flux's CRD allows in `spec.type`.
const FLUX_TYPES: &[&str] = &[
    "generic",
    "generic-hmac",
    "generic-oidc",
    "github",
    "gitlab",
    "bitbucket",
    "harbor",
    "dockerhub",
    "quay",
    "gcr",
    "nexus",
    "acr",
    "cdevents",
];

/// `notification.toolkit.fluxcd.io/v1` `Receiver`, as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverObject {
    pub metadata: ObjectMeta,
    pub spec: ReceiverSpec,
}

/// `Receiver.spec`, every Flux field.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiverSpec {
    #[serde(rename = "type")]
    pub receiver_type: String,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub events: Vec<String>,
    pub resources: Vec<ReceiverResourceSpec>,
    #[serde(default)]
    pub resource_filter: Option<String>,
    #[serde(default)]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(default, rename = "oidcProviders")]
    pub oidc_providers: Vec<serde_json::Value>,
    #[serde(default)]
    pub suspend: bool,
}

/// `Receiver.spec.resources[]`: Flux's `CrossNamespaceObjectReference` plus `filter`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiverResourceSpec {
    #[serde(default)]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub filter: Option<String>,
}

/// `spec.type`: the six tagline validates, and the other types Flux knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverType {
    Generic,
    GenericHmac,
    GitHub,
    DockerHub,
    Harbor,
    Quay,
    /// A type Flux has and tagline does not serve (e.g. `gitlab`, `gcr`).
    Other(String),
}

impl fmt::Display for ReceiverType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReceiverType::Generic => "generic",
            ReceiverType::GenericHmac => "generic-hmac",
            ReceiverType::GitHub => "github",
            ReceiverType::DockerHub => "dockerhub",
            ReceiverType::Harbor => "harbor",
            ReceiverType::Quay => "quay",
            ReceiverType::Other(t) => t,
        })
    }
}

/// One checked `spec.resources[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverResource {
    /// As written; absent means Flux's default for the kind (for `ImageRepository`,
    /// `image.toolkit.fluxcd.io/v1`).
    pub api_version: Option<String>,
    pub kind: String,
    /// An object's name, or `*` with `match_labels`.
    pub name: String,
    /// The namespace, defaulted to the Receiver's.
    pub namespace: String,
    /// `matchLabels`; Flux reads them only when `name` is `*`.
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// A checked `Receiver`.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub id: NamespacedName,
    pub origin: Origin,
    pub receiver_type: ReceiverType,
    /// `spec.events`: for `github`, the event types acted on (empty: all).
    pub events: Vec<String>,
    pub resources: Vec<ReceiverResource>,
    /// The Secret holding `token`, in the Receiver's namespace (absent only for `generic-oidc`).
    pub secret_ref: Option<String>,
    pub interval: Duration,
    pub suspend: bool,
    /// Why tagline cannot serve this Receiver though Flux accepts it (a type tagline does not
    /// validate, or a CEL filter it cannot evaluate); such a Receiver answers 503.
    pub unsupported: Option<String>,
}

/// Flux's webhook path: `/hook/` and the hex SHA-256 of token, name and namespace.
pub fn webhook_path(token: &[u8], name: &str, namespace: &str) -> String {
    let mut h = Sha256::new();
    h.update(token);
    h.update(name.as_bytes());
    h.update(namespace.as_bytes());
    format!("{WEBHOOK_PREFIX}{}", hex::encode(h.finalize()))
}

impl Receiver {
    /// This Receiver's webhook path for `token` (see [`webhook_path`]).
    pub fn webhook_path(&self, token: &[u8]) -> String {
        webhook_path(token, &self.id.name, &self.id.namespace)
    }

    /// The token from the referenced Secret's `token` key, or why it cannot be read (the
    /// message names the Secret, never its content).
    pub fn token<'a>(
        &self,
        secrets: &'a BTreeMap<NamespacedName, Secret>,
    ) -> Result<&'a [u8], String> {
        let Some(name) = &self.secret_ref else {
            return Ok(b"");
        };
        let id = NamespacedName::new(&self.id.namespace, name);
        let secret = secrets
            .get(&id)
            .ok_or_else(|| format!("unable to read secret '{id}': not found"))?;
        secret
            .data
            .get("token")
            .map(Vec::as_slice)
            .ok_or_else(|| format!("invalid '{id}' secret data: required field 'token'"))
    }
}

/// Checks a parsed `Receiver` as Flux's CRD does. Problems come as (field, message).
pub(super) fn check(
    id: &NamespacedName,
    origin: &Origin,
    obj: ReceiverObject,
) -> Result<Receiver, Vec<(String, String)>> {
    let spec = obj.spec;
    let mut problems = Vec::new();
    let mut unsupported = None;
    let receiver_type = match spec.receiver_type.as_str() {
        "generic" => ReceiverType::Generic,
        "generic-hmac" => ReceiverType::GenericHmac,
        "github" => ReceiverType::GitHub,
        "dockerhub" => ReceiverType::DockerHub,
        "harbor" => ReceiverType::Harbor,
        "quay" => ReceiverType::Quay,
        other if FLUX_TYPES.contains(&other) => {
            unsupported = Some(format!(
                "type '{other}' is not served by tagline (generic, generic-hmac, github, dockerhub, harbor, quay are)"
            ));
            ReceiverType::Other(other.to_string())
        }
        other => {
            problems.push((
                "spec.type".to_string(),
                format!("'{other}' is not one of {}", FLUX_TYPES.join(", ")),
            ));
            ReceiverType::Other(other.to_string())
        }
    };
    let oidc = spec.receiver_type == "generic-oidc";
    match (&spec.secret_ref, oidc) {
        (None, false) => problems.push((
            "spec.secretRef".to_string(),
            "required when type is not generic-oidc".to_string(),
        )),
        (Some(_), true) => problems.push((
            "spec.secretRef".to_string(),
            "cannot be set when type is generic-oidc".to_string(),
        )),
        _ => {}
    }
    if oidc && spec.oidc_providers.is_empty() {
        problems.push((
            "spec.oidcProviders".to_string(),
            "generic-oidc receivers must define at least one oidcProvider".to_string(),
        ));
    } else if !oidc && !spec.oidc_providers.is_empty() {
        problems.push((
            "spec.oidcProviders".to_string(),
            "oidcProviders can only be set when type is generic-oidc".to_string(),
        ));
    }
    let interval = match &spec.interval {
        Some(s) => match parse_duration(s) {
            Ok(d) => d,
            Err(e) => {
                problems.push(("spec.interval".to_string(), e));
                DEFAULT_INTERVAL
            }
        },
        None => DEFAULT_INTERVAL,
    };
    if spec
        .resource_filter
        .as_deref()
        .is_some_and(|f| !f.is_empty())
    {
        unsupported.get_or_insert_with(|| {
            "spec.resourceFilter: CEL filters are not supported by tagline".to_string()
        });
    }
    let mut resources = Vec::new();
    for (i, r) in spec.resources.into_iter().enumerate() {
        let field = |f: &str| format!("spec.resources[{i}].{f}");
        if !FLUX_OBJECT_KINDS.contains(&r.kind.as_str()) {
            problems.push((
                field("kind"),
                format!(
                    "'{}' is not one of {}",
                    r.kind,
                    FLUX_OBJECT_KINDS.join(", ")
                ),
            ));
        }
        if r.name.is_empty() || r.name.len() > 253 {
            problems.push((field("name"), "must be 1 to 253 characters".to_string()));
        }
        if r.namespace.as_ref().is_some_and(|n| n.len() > 253) {
            problems.push((field("namespace"), "at most 253 characters".to_string()));
        }
        if r.filter.as_deref().is_some_and(|f| !f.is_empty()) {
            unsupported.get_or_insert_with(|| {
                format!(
                    "{}: CEL filters are not supported by tagline",
                    field("filter")
                )
            });
        }
        resources.push(ReceiverResource {
            api_version: r.api_version.filter(|v| !v.is_empty()),
            kind: r.kind,
            name: r.name,
            namespace: r
                .namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.namespace.clone()),
            match_labels: r.match_labels,
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Receiver {
        id: id.clone(),
        origin: origin.clone(),
        receiver_type,
        events: spec.events,
        resources,
        secret_ref: spec.secret_ref.map(|r| r.name),
        interval,
        suspend: spec.suspend,
        unsupported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{load_dir, Config};

    fn load(files: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let prefix = format!("{}/", dir.path().display());
        load_dir(dir.path()).map_err(|e| {
            e.problems
                .iter()
                .map(|p| p.to_string().replace(&prefix, ""))
                .collect()
        })
    }

    const RECEIVER: &str = "apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: registry
  namespace: apps
spec:
  type: generic-hmac
  secretRef:
    name: webhook-token
  resources:
    - apiVersion: image.toolkit.fluxcd.io/v1
      kind: ImageRepository
      name: podinfo
    - kind: ImageRepository
      name: '*'
      matchLabels:
        registry: local
      namespace: other
";

    const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: webhook-token
  namespace: apps
stringData:
  token: s3cr3t-token
";

    #[test]
    fn the_webhook_path_is_sha256_of_token_name_and_namespace() {
        // `printf '%s' 'tokenreceiverdefault' | sha256sum`
        assert_eq!(
            webhook_path(b"token", "receiver", "default"),
            "/hook/8cc3207cffc97dc881eed557d9eb9348edf632357f3132b4f4d30188c54fc63d"
        );
        let p = webhook_path(b"token", "receiver", "default");
        assert_eq!(p.len(), "/hook/".len() + 64);
        assert_ne!(p, webhook_path(b"token", "receiver", "other"));
        assert_ne!(p, webhook_path(b"other", "receiver", "default"));
    }

    #[test]
    fn a_receiver_is_read_with_flux_defaults() {
        let config = load(&[("r.yaml", RECEIVER), ("s.yaml", SECRET)]).unwrap();
        let r = &config.receivers[&NamespacedName::new("apps", "registry")];
        assert_eq!(r.receiver_type, ReceiverType::GenericHmac);
        assert_eq!(r.interval, Duration::from_secs(600));
        assert_eq!(r.secret_ref.as_deref(), Some("webhook-token"));
        assert!(r.unsupported.is_none());
        assert_eq!(r.resources.len(), 2);
        assert_eq!(r.resources[0].namespace, "apps", "the Receiver's namespace");
        assert_eq!(r.resources[0].name, "podinfo");
        assert_eq!(r.resources[1].namespace, "other");
        assert_eq!(
            r.resources[1].match_labels.as_ref().unwrap()["registry"],
            "local"
        );
        let token = r.token(&config.secrets).unwrap();
        assert_eq!(token, b"s3cr3t-token");
        assert_eq!(
            r.webhook_path(token),
            format!(
                "/hook/{}",
                hex::encode(Sha256::digest(b"s3cr3t-tokenregistryapps"))
            )
        );
    }

    #[test]
    fn a_missing_secret_or_token_key_is_named_without_the_secret() {
        let config = load(&[("r.yaml", RECEIVER)]).unwrap();
        let r = &config.receivers[&NamespacedName::new("apps", "registry")];
        assert_eq!(
            r.token(&config.secrets).unwrap_err(),
            "unable to read secret 'apps/webhook-token': not found"
        );
        let other_key = SECRET.replace("token: s3cr3t-token", "tok: s3cr3t-token");
        let config = load(&[("r.yaml", RECEIVER), ("s.yaml", &other_key)]).unwrap();
        let r = &config.receivers[&NamespacedName::new("apps", "registry")];
        let e = r.token(&config.secrets).unwrap_err();
        assert_eq!(
            e,
            "invalid 'apps/webhook-token' secret data: required field 'token'"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let p = load(&[("r.yaml", &RECEIVER.replace("generic-hmac", "webhooky"))]).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("r.yaml (document 1): Receiver apps/registry: spec.type: 'webhooky' is not one of generic, generic-hmac"),
            "{}",
            p[0]
        );
        let p = load(&[(
            "r.yaml",
            &RECEIVER.replace(
                "kind: ImageRepository\n      name: podinfo",
                "kind: Deployment\n      name: podinfo",
            ),
        )])
        .unwrap_err();
        assert!(
            p[0].contains(
                "Receiver apps/registry: spec.resources[0].kind: 'Deployment' is not one of"
            ),
            "{}",
            p[0]
        );
        let p = load(&[(
            "r.yaml",
            &RECEIVER.replace("  secretRef:\n    name: webhook-token\n", ""),
        )])
        .unwrap_err();
        assert!(
            p[0].contains("spec.secretRef: required when type is not generic-oidc"),
            "{}",
            p[0]
        );
        let p = load(&[(
            "r.yaml",
            &RECEIVER.replace(
                "  type: generic-hmac",
                "  type: generic-hmac\n  interval: soon",
            ),
        )])
        .unwrap_err();
        assert!(p[0].contains("spec.interval: "), "{}", p[0]);
        let p =
            load(&[("r.yaml", &RECEIVER.replace("  secretRef:", "  secretReff:"))]).unwrap_err();
        assert!(
            p[0].contains("spec.secretReff: unknown field `secretReff`"),
            "{}",
            p[0]
        );
        let p = load(&[("r.yaml", &RECEIVER.replace("name: podinfo", "name: ''"))]).unwrap_err();
        assert!(
            p[0].contains("spec.resources[0].name: must be 1 to 253 characters"),
            "{}",
            p[0]
        );
        let p = load(&[(
            "r.yaml",
            &RECEIVER.replace(
                "notification.toolkit.fluxcd.io/v1",
                "notification.toolkit.fluxcd.io/v1beta1",
            ),
        )])
        .unwrap_err();
        assert!(
            p[0].contains("apiVersion: notification.toolkit.fluxcd.io/v1beta1 is not supported; use notification.toolkit.fluxcd.io/v1"),
            "{}",
            p[0]
        );
        let p = load(&[("a.yaml", RECEIVER), ("b.yaml", RECEIVER)]).unwrap_err();
        assert!(
            p[0].contains("b.yaml (document 1): Receiver apps/registry: metadata.name: defined twice; first at "),
            "{}",
            p[0]
        );
    }

    #[test]
    fn flux_types_tagline_does_not_serve_load_but_are_marked() {
        let config = load(&[("r.yaml", &RECEIVER.replace("generic-hmac", "gitlab"))]).unwrap();
        let r = &config.receivers[&NamespacedName::new("apps", "registry")];
        assert_eq!(r.receiver_type, ReceiverType::Other("gitlab".into()));
        assert!(
            r.unsupported.as_deref().unwrap().contains("'gitlab'"),
            "{:?}",
            r.unsupported
        );
        let cel = RECEIVER.replace(
            "  type: generic-hmac",
            "  type: generic-hmac\n  resourceFilter: 'true'",
        );
        let config = load(&[("r.yaml", &cel)]).unwrap();
        let r = &config.receivers[&NamespacedName::new("apps", "registry")];
        assert!(r
            .unsupported
            .as_deref()
            .unwrap()
            .contains("spec.resourceFilter"));
    }
}
