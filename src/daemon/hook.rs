//! Registry webhooks as Flux's notification-controller serves them: each `Receiver` answers at
//! `/hook/<sha256(token+name+namespace)>`, checks the call as its type demands, and asks for an
//! immediate scan of the ImageRepositories it names.
//!
//! The answer to a call is pure ([`Hooks::answer`]: path, headers, body in; status code, the
//! repositories to scan and log notes out), with Flux's status codes: 413 for a body over
//! 3 MiB, 404 for an unknown path, 503 for a suspended Receiver (or one tagline cannot serve),
//! 400 for a call that fails its type's check, 500 when a named resource cannot be resolved,
//! 200 otherwise. Notes name the Receiver and the reason, never the token or the path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::any;
use axum::Router;
use hmac::{Mac, SimpleHmac};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::api::{Config, NamespacedName, Receiver, ReceiverResource, ReceiverType};

/// The largest body Flux accepts (3 MiB); a larger one is answered 413.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The API group of the ImageRepositories tagline scans.
const IMAGE_GROUP: &str = "image.toolkit.fluxcd.io";

/// Flux's default `apiVersion` per kind, for resources written without one.
fn default_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Bucket" | "HelmChart" | "HelmRepository" | "GitRepository" | "OCIRepository" => {
            "source.toolkit.fluxcd.io/v1"
        }
        "ImageRepository" => "image.toolkit.fluxcd.io/v1",
        "ArtifactGenerator" => "source.extensions.fluxcd.io/v1beta1",
        _ => return None,
    })
}

/// How loud a note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One log line about a call; names the Receiver, never its token or webhook path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub message: String,
}

impl Note {
    fn new(level: Level, message: impl Into<String>) -> Note {
        Note {
            level,
            message: message.into(),
        }
    }
}

/// The answer to one webhook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    /// The Receiver the path belongs to, when one does.
    pub receiver: Option<NamespacedName>,
    /// The ImageRepositories to scan at once.
    pub scan: Vec<NamespacedName>,
    pub notes: Vec<Note>,
}

impl Answer {
    fn bare(status: StatusCode, receiver: Option<&NamespacedName>, notes: Vec<Note>) -> Answer {
        Answer {
            status,
            receiver: receiver.cloned(),
            scan: Vec::new(),
            notes,
        }
    }
}

/// A served Receiver: the object, its token and its webhook path.
#[derive(Clone)]
struct Route {
    receiver: Receiver,
    token: Vec<u8>,
    path: String,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("receiver", &self.receiver.id)
            .finish_non_exhaustive()
    }
}

/// Every webhook path one config serves, and the ImageRepositories (with their labels) its
/// Receivers may name. `Debug` shows no token and no path.
#[derive(Clone, Default)]
pub struct Hooks {
    routes: BTreeMap<String, Route>,
    /// Receivers without a path: their Secret or its `token` is missing.
    unserved: BTreeMap<NamespacedName, String>,
    repositories: BTreeMap<NamespacedName, BTreeMap<String, String>>,
    /// The suspended ones: named by a call, they are not scanned (as Flux's controller skips
    /// a suspended object it is asked to reconcile).
    suspended: BTreeSet<NamespacedName>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("served", &self.routes.values().collect::<Vec<_>>())
            .field("unserved", &self.unserved)
            .field(
                "repositories",
                &self.repositories.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A Receiver as `/api/v1/status` and the start-up log show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverStatus {
    pub id: NamespacedName,
    /// Flux's `status.webhookPath`; None when the token cannot be read.
    pub webhook_path: Option<String>,
    /// Ready as Flux means it; the message says why not.
    pub ready: bool,
    pub message: String,
    /// The resources tagline leaves alone (kinds other than ImageRepository), each with why.
    pub ignored: Vec<String>,
}

impl Hooks {
    /// The webhook paths of `config`'s Receivers (tokens read from its Secrets).
    pub fn new(config: &Config) -> Hooks {
        let mut hooks = Hooks {
            repositories: config
                .repositories
                .values()
                .map(|r| (r.id.clone(), r.labels.clone()))
                .collect(),
            suspended: config
                .repositories
                .values()
                .filter(|r| r.suspend)
                .map(|r| r.id.clone())
                .collect(),
            ..Hooks::default()
        };
        for r in config.receivers.values() {
            match r.token(&config.secrets) {
                Ok(token) => {
                    let path = r.webhook_path(token);
                    hooks.routes.insert(
                        path.clone(),
                        Route {
                            receiver: r.clone(),
                            token: token.to_vec(),
                            path,
                        },
                    );
                }
                Err(why) => {
                    hooks.unserved.insert(r.id.clone(), why);
                }
            }
        }
        hooks
    }

    /// Every Receiver, in (namespace, name) order: its path, or why it has none.
    pub fn statuses(&self) -> Vec<ReceiverStatus> {
        let mut out: Vec<_> = self
            .routes
            .values()
            .map(|route| {
                let r = &route.receiver;
                let (ready, message) = match (&r.unsupported, r.suspend) {
                    (Some(why), _) => (false, why.clone()),
                    (None, true) => (true, "Receiver is suspended".to_string()),
                    (None, false) => (
                        true,
                        format!("Receiver initialized for path: {}", route.path),
                    ),
                };
                let ignored = r
                    .resources
                    .iter()
                    .filter_map(|res| match self.resolve(res) {
                        Resolved::Ignored(why) => Some(why),
                        _ => None,
                    })
                    .collect();
                ReceiverStatus {
                    id: r.id.clone(),
                    webhook_path: Some(route.path.clone()),
                    ready,
                    message,
                    ignored,
                }
            })
            .chain(self.unserved.iter().map(|(id, why)| ReceiverStatus {
                id: id.clone(),
                webhook_path: None,
                ready: false,
                message: why.clone(),
                ignored: Vec::new(),
            }))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Answers a call to `uri` (path and query, as Flux matches `RequestURI`).
    pub fn answer(&self, uri: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
        let Some(route) = self.routes.get(uri) else {
            return Answer::bare(StatusCode::NOT_FOUND, None, Vec::new());
        };
        let r = &route.receiver;
        let id = Some(&r.id);
        let named =
            |level, message: String| Note::new(level, format!("Receiver {}: {message}", r.id));
        if r.suspend {
            let note = named(
                Level::Warn,
                "unable to process request: receiver is suspended".into(),
            );
            return Answer::bare(StatusCode::SERVICE_UNAVAILABLE, id, vec![note]);
        }
        if let Some(why) = &r.unsupported {
            let note = named(
                Level::Warn,
                format!("unable to process request: receiver is not ready: {why}"),
            );
            return Answer::bare(StatusCode::SERVICE_UNAVAILABLE, id, vec![note]);
        }
        let accepted = match validate(&r.receiver_type, &r.events, headers, body, &route.token) {
            Ok(accepted) => accepted,
            Err(why) => {
                let note = named(Level::Warn, format!("unable to validate payload: {why}"));
                return Answer::bare(StatusCode::BAD_REQUEST, id, vec![note]);
            }
        };
        let mut notes = vec![named(Level::Info, accepted)];
        let mut scan = BTreeSet::new();
        let mut failed = false;
        for resource in &r.resources {
            match self.resolve(resource) {
                Resolved::Repositories(ids) => {
                    if ids.is_empty() {
                        notes.push(named(
                            Level::Error,
                            format!(
                                "no \"ImageRepository\" resources found with matching labels {:?} in \"{}\" namespace",
                                resource.match_labels.clone().unwrap_or_default(),
                                resource.namespace
                            ),
                        ));
                    }
                    scan.extend(ids);
                }
                Resolved::Ignored(why) => notes.push(named(Level::Info, why)),
                Resolved::Failed(why) => {
                    failed = true;
                    notes.push(named(
                        Level::Error,
                        format!("unable to request reconciliation: {why}"),
                    ));
                }
            }
        }
        let (suspended, scan): (Vec<_>, Vec<_>) =
            scan.into_iter().partition(|id| self.suspended.contains(id));
        for id in suspended {
            notes.push(named(
                Level::Info,
                format!("ImageRepository {id} is suspended: not scanned"),
            ));
        }
        if !scan.is_empty() {
            let names: Vec<_> = scan.iter().map(ToString::to_string).collect();
            notes.push(named(
                Level::Info,
                format!("scan requested for ImageRepository {}", names.join(", ")),
            ));
        }
        Answer {
            status: if failed {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            },
            receiver: r.id.clone().into(),
            scan,
            notes,
        }
    }

    /// The ImageRepositories one `spec.resources[]` entry names, as Flux resolves it.
    fn resolve(&self, resource: &ReceiverResource) -> Resolved {
        let Some(api_version) = resource
            .api_version
            .as_deref()
            .or_else(|| default_api_version(&resource.kind))
        else {
            return Resolved::Failed(format!(
                "apiVersion must be specified for kind \"{}\"",
                resource.kind
            ));
        };
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let what = format!("{}/{}.{}", resource.kind, resource.name, resource.namespace);
        if resource.kind != "ImageRepository" || group != IMAGE_GROUP {
            return Resolved::Ignored(format!(
                "resource '{what}' ({api_version}) ignored: tagline reconciles ImageRepositories only"
            ));
        }
        if resource.name == "*" {
            let Some(labels) = &resource.match_labels else {
                return Resolved::Failed(
                    "matchLabels field not set when using wildcard '*' as name".to_string(),
                );
            };
            let ids = self
                .repositories
                .iter()
                .filter(|(id, have)| {
                    id.namespace == resource.namespace
                        && labels.iter().all(|(k, v)| have.get(k) == Some(v))
                })
                .map(|(id, _)| id.clone())
                .collect();
            return Resolved::Repositories(ids);
        }
        let id = NamespacedName::new(&resource.namespace, &resource.name);
        if self.repositories.contains_key(&id) {
            Resolved::Repositories(vec![id])
        } else {
            Resolved::Failed(format!(
                "unable to read ImageRepository \"{id}\": not found in the config"
            ))
        }
    }
}

enum Resolved {
    Repositories(Vec<NamespacedName>),
    Ignored(String),
    Failed(String),
}

/// Checks a call as Flux does for the Receiver's type; on success says what was handled (for
/// the log), on failure why it was refused. Neither message holds the token.
pub fn validate(
    receiver_type: &ReceiverType,
    events: &[String],
    headers: &HeaderMap,
    body: &[u8],
    token: &[u8],
) -> Result<String, String> {
    let header = |name: &str| headers.get(name).map_or(&b""[..], |v| v.as_bytes());
    let header_str = |name: &str| String::from_utf8_lossy(header(name)).into_owned();
    match receiver_type {
        ReceiverType::Generic => Ok("handling generic webhook".to_string()),
        ReceiverType::GenericHmac => {
            check_signature(&header_str("X-Signature"), body, token)
                .map_err(|e| format!("unable to validate HMAC signature: {e}"))?;
            Ok("handling HMAC-signed webhook".to_string())
        }
        ReceiverType::GitHub => {
            let mut signature = header_str("X-Hub-Signature-256");
            if signature.is_empty() {
                signature = header_str("X-Hub-Signature");
            }
            github_payload(&header_str("Content-Type"), body, &signature, token)
                .map_err(|e| format!("the GitHub signature header is invalid, err: {e}"))?;
            let event = header_str("X-GitHub-Event");
            if !events.is_empty() && !events.iter().any(|e| e.eq_ignore_ascii_case(&event)) {
                return Err(format!("the GitHub event {event:?} is not authorised"));
            }
            Ok(format!("handling GitHub event: {event}"))
        }
        ReceiverType::Harbor => {
            if !constant_time_eq(header("Authorization"), token) {
                return Err(
                    "the Harbor Authorization header value does not match the receiver token"
                        .to_string(),
                );
            }
            Ok("handling Harbor event".to_string())
        }
        ReceiverType::DockerHub => {
            #[derive(Deserialize, Default)]
            #[serde(default)]
            struct PushData {
                tag: Option<String>,
            }
            #[derive(Deserialize, Default)]
            #[serde(default)]
            struct Repository {
                repo_url: Option<String>,
            }
            #[derive(Deserialize, Default)]
            #[serde(default)]
            struct Payload {
                push_data: Option<PushData>,
                repository: Option<Repository>,
            }
            let p: Payload = first_json(body)
                .map_err(|_| "cannot decode DockerHub webhook payload".to_string())?;
            Ok(format!(
                "handling DockerHub event from {} for tag {}",
                p.repository.and_then(|r| r.repo_url).unwrap_or_default(),
                p.push_data.and_then(|d| d.tag).unwrap_or_default()
            ))
        }
        ReceiverType::Quay => {
            #[derive(Deserialize, Default)]
            #[serde(default)]
            struct Payload {
                docker_url: Option<String>,
                #[allow(dead_code)]
                updated_tags: Option<Vec<String>>,
            }
            let p: Payload =
                first_json(body).map_err(|e| format!("cannot decode Quay webhook payload: {e}"))?;
            Ok(format!(
                "handling Quay event from {}",
                p.docker_url.unwrap_or_default()
            ))
        }
        ReceiverType::Other(t) => Err(format!("receiver type {t:?} not supported")),
    }
}

/// The first JSON value of `body` decoded as Go's `json.Decoder.Decode` does into a struct:
/// `null` gives the defaults, trailing data is not read, an empty body is an error.
fn first_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, String> {
    match serde_json::Deserializer::from_slice(body)
        .into_iter::<Option<T>>()
        .next()
    {
        None => Err("EOF".to_string()),
        Some(Ok(v)) => Ok(v.unwrap_or_default()),
        Some(Err(e)) => Err(e.to_string()),
    }
}

/// go-github's `ValidatePayloadFromBody`: the body's media type must be JSON or a form; the
/// signature is checked over the raw body when a token or a signature is there.
fn github_payload(
    content_type: &str,
    body: &[u8],
    signature: &str,
    token: &[u8],
) -> Result<(), String> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "" => return Err("mime: no media type".to_string()),
        "application/json" | "application/x-www-form-urlencoded" => {}
        other => {
            return Err(format!(
                "webhook request has unsupported Content-Type {other:?}"
            ))
        }
    }
    if !token.is_empty() || !signature.is_empty() {
        check_signature(signature, body, token)?;
    }
    Ok(())
}

/// go-github's `ValidateSignature`: `sha1=`, `sha256=` or `sha512=` and the hex HMAC of the
/// body keyed with the token, compared in constant time.
pub fn check_signature(signature: &str, body: &[u8], token: &[u8]) -> Result<(), String> {
    if signature.is_empty() {
        return Err("missing signature".to_string());
    }
    let Some((prefix, hex_mac)) = signature.split_once('=') else {
        return Err("error parsing signature".to_string());
    };
    let mac = hex::decode(hex_mac).map_err(|e| format!("error decoding signature: {e}"))?;
    let ok = match prefix {
        "sha1" => verify::<sha1::Sha1>(token, body, &mac),
        "sha256" => verify::<sha2::Sha256>(token, body, &mac),
        "sha512" => verify::<sha2::Sha512>(token, body, &mac),
        other => return Err(format!("unknown hash type prefix: {other:?}")),
    };
    if ok {
        Ok(())
    } else {
        Err("payload signature check failed".to_string())
    }
}

fn verify<D>(key: &[u8], body: &[u8], mac: &[u8]) -> bool
where
    D: hmac::digest::Digest + hmac::digest::core_api::BlockSizeUser,
{
    let Ok(mut h) = SimpleHmac::<D>::new_from_slice(key) else {
        return false;
    };
    h.update(body);
    h.verify_slice(mac).is_ok()
}

/// Byte equality whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// ImageRepositories asked for by webhook calls and not yet handed to the daemon; a burst of
/// calls is one batch.
#[derive(Debug, Default)]
struct Pending {
    ids: Mutex<BTreeSet<NamespacedName>>,
    notify: Notify,
}

/// The webhook side shared between the HTTP listener and the service loop: the current
/// config's paths (replaced on reload) and the scans asked for.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    hooks: Arc<RwLock<Hooks>>,
    pending: Arc<Pending>,
}

impl Webhooks {
    /// The webhooks of `config`.
    pub fn new(config: &Config) -> Webhooks {
        let w = Webhooks::default();
        w.update(config);
        w
    }

    /// Serves `config`'s Receivers from now on (after a reload).
    pub fn update(&self, config: &Config) {
        let hooks = Hooks::new(config);
        if let Ok(mut h) = self.hooks.write() {
            *h = hooks;
        }
    }

    /// The Receivers served now.
    pub fn statuses(&self) -> Vec<ReceiverStatus> {
        self.hooks.read().map(|h| h.statuses()).unwrap_or_default()
    }

    /// The Receivers as `/api/v1/status` lists objects, with Flux's `status.webhookPath` and
    /// Ready condition.
    pub fn status_objects(&self) -> Vec<serde_json::Value> {
        self.statuses()
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "kind": "Receiver",
                    "namespace": r.id.namespace,
                    "name": r.id.name,
                    "result": if r.ready { "ok" } else { "failed" },
                    "message": r.message,
                    "status": {
                        "webhookPath": r.webhook_path,
                        "conditions": [{
                            "type": "Ready",
                            "status": if r.ready { "True" } else { "False" },
                            "reason": if r.ready { "Succeeded" } else { "Failed" },
                            "message": r.message,
                        }],
                    },
                })
            })
            .collect()
    }

    /// Answers one call and queues the scans it asks for.
    pub fn call(&self, uri: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
        let answer = match self.hooks.read() {
            Ok(h) => h.answer(uri, headers, body),
            Err(_) => Answer::bare(StatusCode::INTERNAL_SERVER_ERROR, None, Vec::new()),
        };
        if !answer.scan.is_empty() {
            if let Ok(mut ids) = self.pending.ids.lock() {
                ids.extend(answer.scan.iter().cloned());
            }
            self.pending.notify.notify_one();
        }
        answer
    }

    /// Waits until a call asks for scans, and takes every repository asked for since.
    pub async fn requested(&self) -> Vec<NamespacedName> {
        loop {
            let taken = self
                .pending
                .ids
                .lock()
                .map(|mut ids| std::mem::take(&mut *ids))
                .unwrap_or_default();
            if !taken.is_empty() {
                return taken.into_iter().collect();
            }
            self.pending.notify.notified().await;
        }
    }
}

/// The `/hook/` routes (any method, as Flux's mux serves them).
pub fn router(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/hook/{*digest}", any(receive))
        .with_state(webhooks)
}

async fn receive(
    State(webhooks): State<Webhooks>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            tracing::warn!(
                "webhook call refused: request body exceeds the maximum size of {MAX_BODY} bytes"
            );
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        Err(e) => {
            tracing::warn!("webhook call refused: reading the request body failed: {e}");
            return StatusCode::BAD_REQUEST;
        }
    };
    let target = uri
        .path_and_query()
        .map_or(uri.path(), |p| p.as_str())
        .to_string();
    let answer = webhooks.call(&target, &headers, &body);
    let (namespace, name) = answer
        .receiver
        .as_ref()
        .map_or(("", ""), |r| (r.namespace.as_str(), r.name.as_str()));
    for note in &answer.notes {
        let m = &note.message;
        match note.level {
            Level::Info => tracing::info!(kind = "Receiver", namespace, name, "{m}"),
            Level::Warn => tracing::warn!(kind = "Receiver", namespace, name, "{m}"),
            Level::Error => tracing::error!(kind = "Receiver", namespace, name, "{m}"),
        }
    }
    answer.status
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// `printf '%s' '{"action":"push"}' | openssl dgst -<hash> -hmac token`.
    const BODY: &[u8] = br#"{"action":"push"}"#;
    const SHA1: &str = "sha1=0a23fffb3dd66539440cf881ae6fdfbc8ccae4a9";
    const SHA256: &str = "sha256=83eee066cf716dd10bc327e341a581ae657bf26d8815c9334434f470c12d3079";
    const SHA512: &str = "sha512=ba49015231e38c2779666c90692d82917c88a814b1c1ae23e94d9544b321011aa9c10824df4d5ac1c5bbb397d1947d4eda37014bbd33d4acb1b11a6f71039f59";
    const TOKEN: &[u8] = b"token";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn check(
        t: ReceiverType,
        events: &[&str],
        h: &[(&'static str, &str)],
        body: &[u8],
    ) -> Result<String, String> {
        let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        validate(&t, &events, &headers(h), body, TOKEN)
    }

    #[test]
    fn generic_accepts_anything() {
        assert!(check(ReceiverType::Generic, &[], &[], b"").is_ok());
    }

    #[test]
    fn generic_hmac_checks_x_signature_with_sha1_sha256_or_sha512() {
        for sig in [SHA1, SHA256, SHA512] {
            let r = check(
                ReceiverType::GenericHmac,
                &[],
                &[("X-Signature", sig)],
                BODY,
            );
            assert!(r.is_ok(), "{sig}: {r:?}");
        }
        let wrong = SHA256.replace("83ee", "83ef");
        let cases = [
            (
                vec![],
                "unable to validate HMAC signature: missing signature",
            ),
            (vec![("X-Signature", "sha256")], "error parsing signature"),
            (
                vec![("X-Signature", "md5=00")],
                "unknown hash type prefix: \"md5\"",
            ),
            (
                vec![("X-Signature", "sha256=zz")],
                "error decoding signature",
            ),
            (
                vec![("X-Signature", wrong.as_str())],
                "unable to validate HMAC signature: payload signature check failed",
            ),
            // The right MAC under another header is no signature at all.
            (vec![("X-Hub-Signature-256", SHA256)], "missing signature"),
        ];
        for (h, want) in cases {
            let e = check(ReceiverType::GenericHmac, &[], &h, BODY).unwrap_err();
            assert!(e.contains(want), "{h:?}: {e}");
        }
        let e = check(
            ReceiverType::GenericHmac,
            &[],
            &[("X-Signature", SHA256)],
            b"{\"action\":\"pull\"}",
        )
        .unwrap_err();
        assert!(e.contains("payload signature check failed"), "{e}");
    }

    #[test]
    fn github_checks_the_hub_signature_content_type_and_events() {
        let json = ("Content-Type", "application/json");
        let ok = check(
            ReceiverType::GitHub,
            &[],
            &[
                json,
                ("X-Hub-Signature-256", SHA256),
                ("X-GitHub-Event", "package"),
            ],
            BODY,
        );
        assert_eq!(ok.unwrap(), "handling GitHub event: package");
        // The SHA-1 header is read when the SHA-256 one is absent, as go-github does.
        assert!(check(
            ReceiverType::GitHub,
            &[],
            &[json, ("X-Hub-Signature", SHA1)],
            BODY
        )
        .is_ok());
        assert!(check(
            ReceiverType::GitHub,
            &[],
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-Hub-Signature-256", SHA256)
            ],
            BODY
        )
        .is_ok());
        let e = check(ReceiverType::GitHub, &[], &[json], BODY).unwrap_err();
        assert_eq!(
            e,
            "the GitHub signature header is invalid, err: missing signature"
        );
        let e = check(
            ReceiverType::GitHub,
            &[],
            &[("X-Hub-Signature-256", SHA256)],
            BODY,
        )
        .unwrap_err();
        assert!(e.contains("mime: no media type"), "{e}");
        let e = check(
            ReceiverType::GitHub,
            &[],
            &[
                ("Content-Type", "text/plain"),
                ("X-Hub-Signature-256", SHA256),
            ],
            BODY,
        )
        .unwrap_err();
        assert!(e.contains("unsupported Content-Type \"text/plain\""), "{e}");

        // Events: compared without case; `ping` must be listed to be acted on.
        let events = ["ping", "package"];
        let signed = |event: &'static str| {
            vec![
                json,
                ("X-Hub-Signature-256", SHA256),
                ("X-GitHub-Event", event),
            ]
        };
        assert!(check(ReceiverType::GitHub, &events, &signed("ping"), BODY).is_ok());
        assert!(check(ReceiverType::GitHub, &events, &signed("Package"), BODY).is_ok());
        let e = check(ReceiverType::GitHub, &events, &signed("push"), BODY).unwrap_err();
        assert_eq!(e, "the GitHub event \"push\" is not authorised");
        let e = check(ReceiverType::GitHub, &["package"], &signed("ping"), BODY).unwrap_err();
        assert_eq!(e, "the GitHub event \"ping\" is not authorised");
    }

    #[test]
    fn github_form_bodies_are_signed_raw() {
        let body = b"payload=%7B%22zen%22%3A%22hi%22%7D";
        // `printf '%s' 'payload=%7B%22zen%22%3A%22hi%22%7D' | openssl dgst -sha256 -hmac token`
        let sig = "sha256=ae1de3bc201a475019be4a1c73136c147fbecdae40050d0169b30d9f6ec481a0";
        let h = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Hub-Signature-256", sig),
            ("X-GitHub-Event", "ping"),
        ];
        assert!(check(ReceiverType::GitHub, &[], &h, body).is_ok());
    }

    #[test]
    fn harbor_compares_the_authorization_header_with_the_token() {
        assert!(check(
            ReceiverType::Harbor,
            &[],
            &[("Authorization", "token")],
            b"{}"
        )
        .is_ok());
        for h in [
            vec![],
            vec![("Authorization", "Token")],
            vec![("Authorization", "Bearer token")],
        ] {
            let e = check(ReceiverType::Harbor, &[], &h, b"{}").unwrap_err();
            assert_eq!(
                e,
                "the Harbor Authorization header value does not match the receiver token"
            );
        }
    }

    #[test]
    fn dockerhub_and_quay_need_a_payload_that_decodes() {
        let hub = br#"{"push_data":{"tag":"1.3.0","pusher":"x"},"repository":{"repo_url":"https://hub.docker.com/r/team/app"}}"#;
        assert_eq!(
            check(ReceiverType::DockerHub, &[], &[], hub).unwrap(),
            "handling DockerHub event from https://hub.docker.com/r/team/app for tag 1.3.0"
        );
        assert!(check(ReceiverType::DockerHub, &[], &[], b"null").is_ok());
        for bad in [&b""[..], b"{", b"[1]", br#"{"push_data":{"tag":5}}"#] {
            let e = check(ReceiverType::DockerHub, &[], &[], bad).unwrap_err();
            assert_eq!(e, "cannot decode DockerHub webhook payload", "{bad:?}");
        }
        // Flux's own test payload.
        let quay = br#"{"docker_url":"docker.io","updated_tags":["v0.0.1"]}"#;
        assert_eq!(
            check(ReceiverType::Quay, &[], &[], quay).unwrap(),
            "handling Quay event from docker.io"
        );
        let e = check(ReceiverType::Quay, &[], &[], br#"{"updated_tags":"v1"}"#).unwrap_err();
        assert!(e.starts_with("cannot decode Quay webhook payload: "), "{e}");
    }

    const OBJECTS: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: apps, labels: {registry: local}}
spec: {image: 127.0.0.1:9/app, interval: 1h}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: web, namespace: apps, labels: {registry: local, tier: front}}
spec: {image: 127.0.0.1:9/web, interval: 1h}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: db, namespace: apps, labels: {registry: remote}}
spec: {image: 127.0.0.1:9/db, interval: 1h}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: other, labels: {registry: local}}
spec: {image: 127.0.0.1:9/app, interval: 1h}
---
apiVersion: v1
kind: Secret
metadata: {name: hook-token, namespace: apps}
stringData: {token: token}
";

    fn receiver(spec: &str) -> String {
        format!(
            "---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: registry, namespace: apps}}
spec:
  secretRef: {{name: hook-token}}
{spec}"
        )
    }

    fn hooks(receiver_spec: &str) -> (Hooks, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("o.yaml"),
            format!("{OBJECTS}{}", receiver(receiver_spec)),
        )
        .unwrap();
        let config = crate::api::load_dir(dir.path()).unwrap();
        let path = crate::api::receiver::webhook_path(TOKEN, "registry", "apps");
        (Hooks::new(&config), path)
    }

    fn names(a: &Answer) -> Vec<String> {
        a.scan.iter().map(ToString::to_string).collect()
    }

    fn notes(a: &Answer) -> String {
        a.notes
            .iter()
            .map(|n| format!("{:?} {}\n", n.level, n.message))
            .collect()
    }

    #[test]
    fn a_valid_call_names_repositories_by_name_and_by_labels() {
        let (h, path) = hooks(
            "  type: generic
  resources:
    - {kind: ImageRepository, name: db}
    - {kind: ImageRepository, name: '*', matchLabels: {registry: local}}
    - {apiVersion: image.toolkit.fluxcd.io/v1beta2, kind: ImageRepository, name: app, namespace: other}
",
        );
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::OK, "{}", notes(&a));
        assert_eq!(names(&a), ["apps/app", "apps/db", "apps/web", "other/app"]);
        assert_eq!(a.receiver, Some(NamespacedName::new("apps", "registry")));

        let (h, path) = hooks(
            "  type: generic
  resources:
    - {kind: ImageRepository, name: '*', matchLabels: {registry: local, tier: front}}
    - {kind: ImageRepository, name: db, matchLabels: {registry: nope}}
",
        );
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(
            names(&a),
            ["apps/db", "apps/web"],
            "matchLabels only count with '*'"
        );

        let mut with_suspended = h.clone();
        with_suspended
            .suspended
            .insert(NamespacedName::new("apps", "web"));
        let a = with_suspended.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            names(&a),
            ["apps/db"],
            "a suspended repository is not scanned"
        );
        assert!(notes(&a).contains("ImageRepository apps/web is suspended: not scanned"));
    }

    #[test]
    fn unknown_paths_are_404_and_the_path_is_never_logged() {
        let (h, path) =
            hooks("  type: generic\n  resources:\n    - {kind: ImageRepository, name: app}\n");
        for uri in [
            "/hook/0000",
            &format!("{path}?x=1"),
            &path.replace("/hook/", "/hook/a"),
        ] {
            let a = h.answer(uri, &HeaderMap::new(), b"");
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}");
            assert!(a.scan.is_empty() && a.notes.is_empty());
        }
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::OK);
        assert!(!notes(&a).contains(&path[6..]), "{}", notes(&a));
    }

    #[test]
    fn refused_calls_scan_nothing_and_log_no_secret() {
        let (h, path) =
            hooks("  type: generic-hmac\n  resources:\n    - {kind: ImageRepository, name: app}\n");
        let a = h.answer(
            &path,
            &headers(&[("X-Signature", &SHA256.replace("83ee", "0000"))]),
            BODY,
        );
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.scan.is_empty());
        let log = notes(&a);
        assert!(log.contains("Warn Receiver apps/registry: unable to validate payload: unable to validate HMAC signature: payload signature check failed"), "{log}");
        assert!(
            !log.contains("token\n") && !log.contains(&path[6..]),
            "{log}"
        );
        let a = h.answer(&path, &headers(&[("X-Signature", SHA256)]), BODY);
        assert_eq!(a.status, StatusCode::OK, "{}", notes(&a));
        assert_eq!(names(&a), ["apps/app"]);

        let (h, path) =
            hooks("  type: harbor\n  resources:\n    - {kind: ImageRepository, name: app}\n");
        let a = h.answer(&path, &headers(&[("Authorization", "guess")]), b"{}");
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(
            !notes(&a).contains("guess") && !notes(&a).contains(": token"),
            "{}",
            notes(&a)
        );
    }

    #[test]
    fn suspended_and_unsupported_receivers_answer_503() {
        let (h, path) = hooks("  type: generic\n  suspend: true\n  resources:\n    - {kind: ImageRepository, name: app}\n");
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(a.scan.is_empty());
        assert!(notes(&a).contains("receiver is suspended"), "{}", notes(&a));
        let (h, path) =
            hooks("  type: gitlab\n  resources:\n    - {kind: ImageRepository, name: app}\n");
        let a = h.answer(&path, &headers(&[("X-Gitlab-Token", "token")]), b"");
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            notes(&a).contains("not ready: type 'gitlab' is not served"),
            "{}",
            notes(&a)
        );
    }

    #[test]
    fn unresolvable_resources_are_500_other_kinds_are_ignored() {
        let (h, path) = hooks(
            "  type: generic
  resources:
    - {kind: ImageRepository, name: gone}
    - {kind: ImageRepository, name: app}
",
        );
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(names(&a), ["apps/app"], "what resolves is still scanned");
        assert!(
            notes(&a).contains("unable to read ImageRepository \"apps/gone\""),
            "{}",
            notes(&a)
        );

        let (h, path) =
            hooks("  type: generic\n  resources:\n    - {kind: ImageRepository, name: '*'}\n");
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(notes(&a).contains("matchLabels field not set when using wildcard '*' as name"));

        let (h, path) =
            hooks("  type: generic\n  resources:\n    - {kind: Kustomization, name: apps}\n");
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(notes(&a).contains("apiVersion must be specified for kind \"Kustomization\""));

        let (h, path) = hooks(
            "  type: generic
  resources:
    - {kind: GitRepository, name: fleet}
    - {kind: ImageRepository, name: '*', matchLabels: {registry: none}}
",
        );
        let a = h.answer(&path, &HeaderMap::new(), b"");
        assert_eq!(a.status, StatusCode::OK, "{}", notes(&a));
        assert!(a.scan.is_empty());
        assert_eq!(h.statuses()[0].ignored.len(), 1, "{:?}", h.statuses());
        assert!(h.statuses()[0].ignored[0].starts_with("resource 'GitRepository/fleet.apps'"));
        let log = notes(&a);
        assert!(log.contains("Info Receiver apps/registry: resource 'GitRepository/fleet.apps' (source.toolkit.fluxcd.io/v1) ignored"), "{log}");
        assert!(
            log.contains("Error Receiver apps/registry: no \"ImageRepository\" resources found"),
            "{log}"
        );
    }

    #[test]
    fn debug_output_shows_neither_token_nor_path() {
        let (h, path) =
            hooks("  type: generic\n  resources:\n    - {kind: ImageRepository, name: app}\n");
        let w = Webhooks::default();
        *w.hooks.write().unwrap() = h.clone();
        for shown in [format!("{h:?}"), format!("{w:?}")] {
            assert!(shown.contains("\"registry\""), "{shown}");
            assert!(!shown.contains(&path[6..]), "{shown}");
            assert!(!shown.contains("116, 111, 107"), "token bytes: {shown}");
        }
    }

    #[test]
    fn a_receiver_without_its_token_has_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            receiver("  type: generic\n  resources:\n    - {kind: ImageRepository, name: app}\n");
        std::fs::write(dir.path().join("r.yaml"), text).unwrap();
        let config = crate::api::load_dir(dir.path()).unwrap();
        let h = Hooks::new(&config);
        let s = h.statuses();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].webhook_path, None);
        assert!(!s[0].ready);
        assert_eq!(
            s[0].message,
            "unable to read secret 'apps/hook-token': not found"
        );
        let path = crate::api::receiver::webhook_path(b"", "registry", "apps");
        assert_eq!(
            h.answer(&path, &HeaderMap::new(), b"").status,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn over_http_any_method_is_served_and_bodies_over_3_mib_get_413() {
        let dir = tempfile::tempdir().unwrap();
        let spec = "  type: generic\n  resources:\n    - {kind: ImageRepository, name: app}\n";
        std::fs::write(
            dir.path().join("o.yaml"),
            format!("{OBJECTS}{}", receiver(spec)),
        )
        .unwrap();
        let w = Webhooks::new(&crate::api::load_dir(dir.path()).unwrap());
        let path = w.statuses()[0].webhook_path.clone().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(w)).await });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let call = |method: reqwest::Method, uri: String, body: Vec<u8>| {
            let req = client.request(method, format!("{base}{uri}")).body(body);
            async move { req.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(
            call(reqwest::Method::POST, path.clone(), vec![b'x'; MAX_BODY]).await,
            200
        );
        assert_eq!(
            call(reqwest::Method::PUT, path.clone(), Vec::new()).await,
            200
        );
        assert_eq!(
            call(
                reqwest::Method::POST,
                path.clone(),
                vec![b'x'; MAX_BODY + 1]
            )
            .await,
            413
        );
        // Flux reads the body first: too large is 413 even where no Receiver listens.
        assert_eq!(
            call(
                reqwest::Method::POST,
                "/hook/00".into(),
                vec![b'x'; MAX_BODY + 1]
            )
            .await,
            413
        );
        assert_eq!(
            call(reqwest::Method::POST, "/hook/00".into(), Vec::new()).await,
            404
        );
        assert_eq!(
            call(reqwest::Method::GET, format!("{path}?a=b"), Vec::new()).await,
            404
        );
    }

    #[tokio::test]
    async fn calls_in_a_burst_are_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let spec = "  type: generic\n  resources:\n    - {kind: ImageRepository, name: '*', matchLabels: {registry: local}}\n";
        std::fs::write(
            dir.path().join("o.yaml"),
            format!("{OBJECTS}{}", receiver(spec)),
        )
        .unwrap();
        let config = crate::api::load_dir(dir.path()).unwrap();
        let w = Webhooks::new(&config);
        let path = w.statuses()[0].webhook_path.clone().unwrap();
        assert_eq!(w.call(&path, &HeaderMap::new(), b"").status, StatusCode::OK);
        assert_eq!(w.call(&path, &HeaderMap::new(), b"").status, StatusCode::OK);
        let got = w.requested().await;
        assert_eq!(
            got,
            [
                NamespacedName::new("apps", "app"),
                NamespacedName::new("apps", "web")
            ]
        );
        let again = tokio::time::timeout(std::time::Duration::from_millis(50), w.requested()).await;
        assert!(again.is_err(), "nothing left: {again:?}");

        // A reload replaces the paths: the old token's path is gone.
        std::fs::write(
            dir.path().join("o.yaml"),
            format!("{OBJECTS}{}", receiver(spec)).replace("token: token", "token: rotated"),
        )
        .unwrap();
        w.update(&crate::api::load_dir(dir.path()).unwrap());
        assert_eq!(
            w.call(&path, &HeaderMap::new(), b"").status,
            StatusCode::NOT_FOUND
        );
        let new_path = crate::api::receiver::webhook_path(b"rotated", "registry", "apps");
        assert_eq!(
            w.statuses()[0].webhook_path.as_deref(),
            Some(new_path.as_str())
        );
    }
}
