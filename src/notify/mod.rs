//! Telling the sync side at once: a pass's outcomes become Flux events (a push, a failure, a
//! recovery), matched against `Alert`s and sent to their `Provider`s (`generic`,
//! `generic-hmac`, `slack`) as Flux's notification-controller would send them.
//!
//! `Notifier::prepare` is pure (time is a parameter): events, rate limit, alert matching,
//! metadata. `deliver` / `deliver_all` do the IO. Failures to notify are returned for the
//! caller to log; they never fail a pass.

pub mod event;
pub mod send;
pub mod slack;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::notification::{Alert, Severity};
use crate::api::{Config, Kind, NamespacedName};
use crate::automation::{Report, Status};
use crate::store::Store;
use event::{Event, EVENT_GROUP, IMAGE_GROUP, SUCCEEDED};

/// How long an identical event (object, message, revision) is not sent again: Flux's
/// notification-controller `--rate-limit-interval` default.
pub const RATE_LIMIT: Duration = Duration::from_secs(5 * 60);

/// Why a notification could not be sent. Never carries a token, an address or a header
/// value.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The Alert's `providerRef` names no Provider.
    #[error("Alert {alert}: Provider {provider} not found")]
    ProviderNotFound {
        alert: NamespacedName,
        provider: NamespacedName,
    },
    /// A Secret the Provider references is not in the config.
    #[error("Provider {provider}: Secret {}/{secret} not found", provider.namespace)]
    SecretNotFound {
        provider: NamespacedName,
        secret: String,
    },
    /// A key of the Provider's Secret cannot be used.
    #[error("Provider {provider}: Secret {}/{secret}: {key}: {cause}", provider.namespace)]
    InvalidSecret {
        provider: NamespacedName,
        secret: String,
        key: &'static str,
        cause: String,
    },
    /// The address (from `spec.address` or the Secret) is not an http(s) URL.
    #[error("Provider {provider}: the address is missing or not an http(s) URL")]
    InvalidAddress { provider: NamespacedName },
    /// `generic-hmac` without a `token` in its Secret.
    #[error("Provider {provider}: HMAC key is empty (generic-hmac needs a token in secretRef)")]
    EmptyHmacKey { provider: NamespacedName },
    /// A type Flux knows and tagline does not send.
    #[error("Provider {provider}: type {provider_type} is not sent by tagline (generic, generic-hmac, slack)")]
    UnsupportedType {
        provider: NamespacedName,
        provider_type: String,
    },
    /// The certificate Secret cannot make a TLS client.
    #[error("Provider {provider}: TLS: {cause}")]
    Tls {
        provider: NamespacedName,
        cause: String,
    },
    /// The proxy is not a usable URL.
    #[error("Provider {provider}: the proxy is not a valid URL")]
    InvalidProxy { provider: NamespacedName },
    /// The request did not complete (connection, TLS handshake, ...).
    #[error("Provider {provider}: posting the event: {cause}")]
    Post {
        provider: NamespacedName,
        cause: String,
    },
    /// The endpoint answered with a status other than 2xx.
    #[error("Provider {provider}: request failed with status code {status}: {body}")]
    Rejected {
        provider: NamespacedName,
        status: u16,
        body: String,
    },
    /// Slack's Web API answered `"ok": false`.
    #[error("Provider {provider}: Slack responded with error: {error}")]
    Slack {
        provider: NamespacedName,
        error: String,
    },
    /// No answer within the Provider's timeout (retries included).
    #[error("Provider {provider}: no answer within {after:?}{last}")]
    Timeout {
        provider: NamespacedName,
        after: Duration,
        /// ` (last attempt: ...)` when an attempt failed before the time ran out.
        last: String,
    },
}

impl NotifyError {
    /// The object the error is about, as (kind, namespace/name): the Alert whose Provider
    /// is missing, else the Provider.
    pub fn object(&self) -> (&'static str, &NamespacedName) {
        match self {
            NotifyError::ProviderNotFound { alert, .. } => ("Alert", alert),
            NotifyError::SecretNotFound { provider, .. }
            | NotifyError::InvalidSecret { provider, .. }
            | NotifyError::InvalidAddress { provider }
            | NotifyError::EmptyHmacKey { provider }
            | NotifyError::UnsupportedType { provider, .. }
            | NotifyError::Tls { provider, .. }
            | NotifyError::InvalidProxy { provider }
            | NotifyError::Post { provider, .. }
            | NotifyError::Rejected { provider, .. }
            | NotifyError::Slack { provider, .. }
            | NotifyError::Timeout { provider, .. } => ("Provider", provider),
        }
    }

    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            NotifyError::Post { .. } | NotifyError::Timeout { .. } => true,
            NotifyError::Rejected { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// One event for one Alert's Provider, ready to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub alert: NamespacedName,
    pub target: send::Target,
    /// The event with the Alert's metadata combined in.
    pub event: Event,
}

/// What the notifier remembers between passes: which objects are failing (so a recovery is
/// told once; `prepare_stored` keeps this in the store, across restarts) and what was sent
/// recently (the rate limit).
#[derive(Debug, Default)]
pub struct Notifier {
    instance: String,
    /// `<Kind>/<namespace>/<name>`.
    failing: BTreeSet<String>,
    sent: HashMap<String, DateTime<Utc>>,
}

impl Notifier {
    /// A notifier reporting this host's name as `reportingInstance` (as Flux reports its pod).
    pub fn new() -> Notifier {
        Notifier::with_instance(&hostname())
    }

    /// A notifier reporting `instance` as `reportingInstance`.
    pub fn with_instance(instance: &str) -> Notifier {
        Notifier {
            instance: instance.to_string(),
            ..Notifier::default()
        }
    }

    /// The events the image controllers would emit for this pass, before any Alert: an info
    /// event per push (reason `Succeeded`, the push summary and commit message), an info
    /// event per policy whose latest reference changed, an error event per failure, and an info event when an object that failed in an earlier pass
    /// succeeds. Identical events within `RATE_LIMIT` are dropped, as Flux does.
    pub fn events(&mut self, config: &Config, report: &Report, now: DateTime<Utc>) -> Vec<Event> {
        let mut out = Vec::new();
        for o in &report.outcomes {
            let key = failing_key(o.kind, &o.id);
            let mut e = match &o.status {
                Status::Failed(text) => {
                    self.failing.insert(key);
                    Event::new(
                        o.kind,
                        &o.id,
                        Severity::Error,
                        o.reason.as_str(),
                        text.clone(),
                        now,
                        &self.instance,
                    )
                }
                Status::Ok(text) => {
                    let recovered = self.failing.remove(&key);
                    let push = o.push.as_ref();
                    let latest = (o.kind == Kind::ImagePolicy)
                        .then(|| report.latest_changes.get(&o.id))
                        .flatten();
                    let message = match (push, latest) {
                        (Some(p), _) => event::push_message(p),
                        (None, Some((l, previous))) => event::latest_message(l, previous.as_ref()),
                        (None, None) if !recovered => continue,
                        _ if o.kind == Kind::ImageUpdateAutomation => {
                            "repository up-to-date".to_string()
                        }
                        _ => text.clone(),
                    };
                    let mut e = Event::new(
                        o.kind,
                        &o.id,
                        Severity::Info,
                        SUCCEEDED,
                        message,
                        now,
                        &self.instance,
                    );
                    if let Some(p) = push {
                        e.metadata
                            .insert(format!("{IMAGE_GROUP}/revision"), event::revision(p));
                    }
                    e
                }
                Status::Skipped(_) => continue,
            };
            // The emitter adds the object's `event.toolkit.fluxcd.io/` annotations.
            if let Some(a) = config.automations.get(&o.id) {
                if o.kind == Kind::ImageUpdateAutomation {
                    for (k, v) in &a.annotations {
                        if k.starts_with(&format!("{EVENT_GROUP}/")) {
                            e.metadata.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if self.limited(&e, now) {
                continue;
            }
            out.push(e);
        }
        out
    }

    fn limited(&mut self, e: &Event, now: DateTime<Utc>) -> bool {
        let window = chrono::Duration::from_std(RATE_LIMIT).unwrap_or_default();
        self.sent.retain(|_, at| now - *at < window);
        let key = format!(
            "{}/{}/{}/{}/{}",
            e.involved_object.kind,
            e.involved_object.namespace,
            e.involved_object.name,
            e.message,
            e.metadata
                .get(&format!("{IMAGE_GROUP}/revision"))
                .map(String::as_str)
                .unwrap_or_default()
        );
        if self.sent.contains_key(&key) {
            return true;
        }
        self.sent.insert(key, now);
        false
    }

    /// `prepare`, with the failing objects kept in `store` (saved with it): a success after
    /// a failure is told as a recovery even when the process restarted in between. Objects
    /// no longer in the config are forgotten.
    pub fn prepare_stored(
        &mut self,
        config: &Config,
        report: &Report,
        now: DateTime<Utc>,
        store: &mut Store,
    ) -> Vec<Result<Delivery, NotifyError>> {
        let known: BTreeSet<String> = (config.repositories.keys())
            .map(|id| failing_key(Kind::ImageRepository, id))
            .chain(
                config
                    .policies
                    .keys()
                    .map(|id| failing_key(Kind::ImagePolicy, id)),
            )
            .chain(
                config
                    .automations
                    .keys()
                    .map(|id| failing_key(Kind::ImageUpdateAutomation, id)),
            )
            .collect();
        self.failing = store
            .notify_failing()
            .iter()
            .filter(|k| known.contains(*k))
            .cloned()
            .collect();
        let out = self.prepare(config, report, now);
        store.set_notify_failing(self.failing.clone());
        out
    }

    /// Everything to send for this pass: each event for each Alert it matches, with the
    /// Provider resolved. Suspended Alerts and Providers send nothing; a Provider that cannot
    /// be resolved gives an error in its place.
    pub fn prepare(
        &mut self,
        config: &Config,
        report: &Report,
        now: DateTime<Utc>,
    ) -> Vec<Result<Delivery, NotifyError>> {
        // Events are made even without Alerts: the failing set must follow every pass.
        let events = self.events(config, report, now);
        let mut out = Vec::new();
        for e in &events {
            for alert in matching(config, e) {
                let Some(provider) = config.providers.get(&alert.provider) else {
                    out.push(Err(NotifyError::ProviderNotFound {
                        alert: alert.id.clone(),
                        provider: alert.provider.clone(),
                    }));
                    continue;
                };
                if provider.suspend {
                    continue;
                }
                out.push(send::resolve(config, provider).map(|target| Delivery {
                    alert: alert.id.clone(),
                    target,
                    event: combine_metadata(e, alert),
                }));
            }
        }
        out
    }
}

fn failing_key(kind: Kind, id: &NamespacedName) -> String {
    format!("{kind}/{}/{}", id.namespace, id.name)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tagline".to_string())
}

/// The labels of the event's object, where the config keeps them (ImagePolicy).
fn labels<'a>(config: &'a Config, e: &Event) -> Option<&'a BTreeMap<String, String>> {
    let id = NamespacedName::new(
        e.involved_object.namespace.clone(),
        e.involved_object.name.clone(),
    );
    match e.involved_object.kind.as_str() {
        "ImagePolicy" => config.policies.get(&id).map(|p| &p.labels),
        _ => None,
    }
}

/// Whether `alert` takes `e`, as notification-controller's `filterAlertsForEvent`: not
/// suspended, a source with the event's namespace and kind, the severity (an `info` Alert
/// takes everything), the name (or `*`), the labels; then the inclusion and exclusion lists
/// on the message.
pub fn matches(config: &Config, alert: &Alert, e: &Event) -> bool {
    if alert.suspend {
        return false;
    }
    let o = &e.involved_object;
    let source = alert.sources.iter().any(|s| {
        s.namespace == o.namespace
            && s.kind == o.kind
            && (alert.severity == Severity::Info || alert.severity == e.severity)
            && (s.name == "*" || s.name == o.name)
            && match &s.match_labels {
                None => true,
                Some(want) => {
                    let empty = BTreeMap::new();
                    let have = labels(config, e).unwrap_or(&empty);
                    want.iter().all(|(k, v)| have.get(k) == Some(v))
                }
            }
    });
    source
        && (alert.inclusion.is_empty() || alert.inclusion.iter().any(|r| r.is_match(&e.message)))
        && !alert.exclusion.iter().any(|r| r.is_match(&e.message))
}

/// The Alerts that take `e`, in namespace/name order.
pub fn matching<'a>(config: &'a Config, e: &Event) -> Vec<&'a Alert> {
    config
        .alerts
        .values()
        .filter(|a| matches(config, a, e))
        .collect()
}

/// The event as sent for `alert`, its metadata combined as Flux's RFC 0008 orders it (lowest
/// to highest): `event.toolkit.fluxcd.io/` keys, the Alert's `eventMetadata`, its `summary`,
/// then the object group's keys (`image.toolkit.fluxcd.io/revision` becomes `revision`).
/// With none of these the emitter's metadata is kept as it is.
pub fn combine_metadata(e: &Event, alert: &Alert) -> Event {
    let mut out = e.clone();
    let mut m = BTreeMap::new();
    let strip = |prefix: &str, m: &mut BTreeMap<String, String>| {
        for (k, v) in &e.metadata {
            if let Some(key) = k.strip_prefix(prefix) {
                m.insert(key.to_string(), v.clone());
            }
        }
    };
    strip(&format!("{EVENT_GROUP}/"), &mut m);
    m.extend(alert.event_metadata.clone());
    if !alert.summary.is_empty() {
        m.insert("summary".to_string(), alert.summary.clone());
    }
    strip(&format!("{IMAGE_GROUP}/"), &mut m);
    if !m.is_empty() {
        out.metadata = m;
    }
    out
}

/// Sends one delivery.
pub async fn deliver(d: &Delivery) -> Result<(), NotifyError> {
    send::send(&d.target, &d.event).await
}

/// Sends every delivery at once and returns what failed (resolution errors included); logs
/// each success at debug level.
pub async fn deliver_all(deliveries: Vec<Result<Delivery, NotifyError>>) -> Vec<NotifyError> {
    let mut failed = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for d in deliveries {
        match d {
            Ok(d) => {
                tasks.spawn(async move {
                    let r = deliver(&d).await;
                    if r.is_ok() {
                        let o = &d.event.involved_object;
                        let (kind, namespace, name) = (&o.kind, &o.namespace, &o.name);
                        tracing::debug!(kind, namespace, name, alert = %d.alert, provider = %d.target.provider, "notification sent");
                    }
                    r
                });
            }
            Err(e) => failed.push(e),
        }
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            failed.push(e);
        }
    }
    failed
}

#[cfg(test)]
mod tests;
