//! Flux's event (`event.toolkit.fluxcd.io/v1beta1` `Event`) as the image controllers emit it,
//! built from a pass's outcomes, and its JSON exactly as Go's `encoding/json` writes it.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::api::notification::Severity;
use crate::api::{Kind, NamespacedName};
use crate::automation::Push;
use crate::image::ImageRef;

/// The API group of the image kinds: metadata keys the emitter adds carry it as a prefix.
pub const IMAGE_GROUP: &str = "image.toolkit.fluxcd.io";
/// The API group of Flux's event API: object annotations with it as a prefix become metadata.
pub const EVENT_GROUP: &str = "event.toolkit.fluxcd.io";
/// `reason` of a success event (Flux's `meta.SucceededReason`).
pub const SUCCEEDED: &str = "Succeeded";

/// `corev1.ObjectReference`, the fields an event names its object with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

/// One event, field for field as Flux's `Event` (and in its JSON order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub involved_object: ObjectReference,
    #[serde(serialize_with = "severity")]
    pub severity: Severity,
    /// RFC 3339 in UTC, whole seconds (`metav1.Time`).
    pub timestamp: String,
    pub message: String,
    pub reason: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    pub reporting_controller: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

fn severity<S: Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

impl Event {
    /// A new event about `kind id` at `now`, from the controller Flux would send it from.
    pub fn new(
        kind: Kind,
        id: &NamespacedName,
        severity: Severity,
        reason: &str,
        message: String,
        now: DateTime<Utc>,
        instance: &str,
    ) -> Event {
        let controller = match kind {
            Kind::ImageUpdateAutomation => "image-automation-controller",
            _ => "image-reflector-controller",
        };
        Event {
            involved_object: ObjectReference {
                kind: kind.to_string(),
                namespace: id.namespace.clone(),
                name: id.name.clone(),
                api_version: format!("{IMAGE_GROUP}/v1"),
            },
            severity,
            timestamp: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            message,
            reason: reason.to_string(),
            metadata: BTreeMap::new(),
            reporting_controller: controller.to_string(),
            reporting_instance: instance.to_string(),
        }
    }

    /// The object as `Kind namespace/name`, for logs.
    pub fn object(&self) -> String {
        format!(
            "{} {}/{}",
            self.involved_object.kind, self.involved_object.namespace, self.involved_object.name
        )
    }

    /// The JSON body Flux sends (and signs), byte for byte as Go writes it.
    pub fn to_json(&self) -> Vec<u8> {
        go_json(self)
    }
}

/// Image-automation-controller's push message: `pushed commit '<short>' to branch '<b>'`,
/// the refspec if any, then a newline and the full commit message.
pub fn push_message(push: &Push) -> String {
    let short = &push.commit[..push.commit.len().min(7)];
    let mut m = format!("pushed commit '{short}' to branch '{}'", push.branch);
    if let Some(r) = &push.refspec {
        m.push_str(&format!(" and refspecs '{r}'"));
    }
    if !push.message.is_empty() {
        m.push('\n');
        m.push_str(&push.message);
    }
    m
}

/// Image-reflector-controller's ImagePolicy Ready message, sent when it changes:
/// `Latest image tag for <name> resolved to <tag>[ with digest <d>][ (previously
/// <name>:<tag>[@<d>])]`.
pub fn latest_message(latest: &ImageRef, previous: Option<&ImageRef>) -> String {
    let mut m = format!(
        "Latest image tag for {} resolved to {}",
        latest.name, latest.tag
    );
    if let Some(d) = &latest.digest {
        m.push_str(&format!(" with digest {d}"));
    }
    if let Some(p) = previous.filter(|p| *p != latest) {
        m.push_str(&format!(" (previously {}:{}", p.name, p.tag));
        if let Some(d) = &p.digest {
            m.push_str(&format!("@{d}"));
        }
        m.push(')');
    }
    m
}

/// Flux's revision string for a pushed commit: `<branch>@sha1:<sha>`.
pub fn revision(push: &Push) -> String {
    format!("{}@sha1:{}", push.branch, push.commit)
}

/// Serialises `value` as Go's `json.Marshal` does: compact, map keys sorted (a `BTreeMap`
/// here), and `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c` and so on.
pub fn go_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serialising these plain structs into memory cannot fail.
    value
        .serialize(&mut ser)
        .expect("event JSON serialises into memory");
    out
}

struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> Push {
        Push {
            branch: "main".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            message: "Bump app: 1.0.0 -> 1.2.0 & more\n".into(),
            refspec: None,
        }
    }

    #[test]
    fn push_message_and_revision_follow_flux() {
        let mut p = push();
        assert_eq!(
            push_message(&p),
            "pushed commit '0123456' to branch 'main'\nBump app: 1.0.0 -> 1.2.0 & more\n"
        );
        p.refspec = Some("refs/heads/main:refs/heads/release".into());
        p.message.clear();
        assert_eq!(
            push_message(&p),
            "pushed commit '0123456' to branch 'main' and refspecs 'refs/heads/main:refs/heads/release'"
        );
        assert_eq!(
            revision(&p),
            "main@sha1:0123456789abcdef0123456789abcdef01234567"
        );
    }

    #[test]
    fn latest_message_follows_image_reflector_controller() {
        let r = |tag: &str, digest: Option<&str>| ImageRef {
            name: "ghcr.io/team/app".into(),
            tag: tag.into(),
            digest: digest.map(str::to_string),
        };
        assert_eq!(
            latest_message(&r("1.2.0", None), None),
            "Latest image tag for ghcr.io/team/app resolved to 1.2.0"
        );
        assert_eq!(
            latest_message(&r("1.2.0", Some("sha256:bb")), Some(&r("1.0.0", Some("sha256:aa")))),
            "Latest image tag for ghcr.io/team/app resolved to 1.2.0 with digest sha256:bb (previously ghcr.io/team/app:1.0.0@sha256:aa)"
        );
        assert_eq!(
            latest_message(&r("1.2.0", None), Some(&r("1.2.0", None))),
            "Latest image tag for ghcr.io/team/app resolved to 1.2.0"
        );
    }

    #[test]
    fn json_is_what_go_writes() {
        let now: DateTime<Utc> = "2026-01-02T03:04:05.678Z".parse().unwrap();
        let mut e = Event::new(
            Kind::ImageUpdateAutomation,
            &NamespacedName::new("flux-system", "fleet"),
            Severity::Info,
            SUCCEEDED,
            push_message(&push()),
            now,
            "host-1",
        );
        e.metadata.insert("b".into(), "2".into());
        e.metadata.insert("a".into(), "<1>\u{2028}".into());
        let json = String::from_utf8(e.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"involvedObject":{"kind":"ImageUpdateAutomation","namespace":"flux-system","name":"fleet","apiVersion":"image.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-01-02T03:04:05Z","message":"pushed commit '0123456' to branch 'main'\nBump app: 1.0.0 -\u003e 1.2.0 \u0026 more\n","reason":"Succeeded","metadata":{"a":"\u003c1\u003e\u2028","b":"2"},"reportingController":"image-automation-controller","reportingInstance":"host-1"}"#
        );
        // Still JSON any reader can take.
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["metadata"]["a"], "<1>\u{2028}");
    }
}
