//! The Slack message notification-controller posts for an event: one attachment, green or
//! red, authored by `kind/name.namespace`, the metadata as fields.

use serde::Serialize;

use super::event::Event;
use crate::api::notification::Severity;

/// Slack's message body, field for field as Flux's `SlackPayload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    pub channel: String,
    pub username: String,
    pub icon_url: String,
    pub icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub fallback: String,
    pub color: String,
    pub author_name: String,
    pub text: String,
    pub mrkdwn_in: Vec<String>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub title: String,
    pub value: String,
    pub short: bool,
}

/// The payload for `event`; `username` and `channel` from the Provider (an empty username
/// becomes the reporting controller). Fields come in key order (Flux's come in Go's random
/// map order).
pub fn payload(event: &Event, username: &str, channel: &str) -> Payload {
    let author = format!(
        "{}/{}.{}",
        event.involved_object.kind.to_lowercase(),
        event.involved_object.name,
        event.involved_object.namespace
    );
    let first_line = event.message.split('\n').next().unwrap_or_default();
    Payload {
        channel: channel.to_string(),
        username: if username.is_empty() {
            event.reporting_controller.clone()
        } else {
            username.to_string()
        },
        icon_url: String::new(),
        icon_emoji: String::new(),
        text: String::new(),
        attachments: vec![Attachment {
            fallback: format!("{author}: {first_line}"),
            color: match event.severity {
                Severity::Error => "danger",
                Severity::Info => "good",
            }
            .to_string(),
            author_name: author,
            text: event.message.clone(),
            mrkdwn_in: vec!["text".to_string()],
            fields: event
                .metadata
                .iter()
                .map(|(k, v)| Field {
                    title: k.clone(),
                    value: v.clone(),
                    short: false,
                })
                .collect(),
        }],
    }
}
