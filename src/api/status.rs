//! Flux's status fields for the image automation kinds, as serde types with Flux's JSON names
//! (`image.toolkit.fluxcd.io/v1`): what `/api/v1/status` and `tagline status -o json` show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A kstatus condition (`metav1.Condition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Reconciling` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// RFC 3339, when `status` last changed.
    pub last_transition_time: String,
    /// One of Flux's reasons for the kind (`Succeeded`, `ReadOperationFailed`, ...).
    pub reason: String,
    pub message: String,
}

/// `status.lastScanResult` of an ImageRepository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// `sha256:<hex>` of the newline-joined stored tags (Flux's FluxStorage revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub tag_count: usize,
    /// RFC 3339, the last real scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_time: Option<String>,
    /// The first 10 tags in descending byte-wise order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_tags: Vec<String>,
}

/// An ImageRepository's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepositoryStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_image_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_result: Option<ScanResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_exclusion_list: Vec<String>,
}

/// `latestRef`, `observedPreviousRef` and the values of `observedPolicies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRefStatus {
    pub name: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl From<&crate::image::ImageRef> for ImageRefStatus {
    fn from(r: &crate::image::ImageRef) -> Self {
        ImageRefStatus {
            name: r.name.clone(),
            tag: r.tag.clone(),
            digest: r.digest.clone(),
        }
    }
}

/// An ImagePolicy's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ref: Option<ImageRefStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_previous_ref: Option<ImageRefStatus>,
}

/// An ImageUpdateAutomation's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateAutomationStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// RFC 3339, the start of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_automation_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_time: Option<String>,
    /// Policy name → the reference the last successful run applied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observed_policies: BTreeMap<String, ImageRefStatus>,
    /// `<branch>@sha1:<hex>` of the checkout branch after the last successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_source_revision: Option<String>,
}

/// One kind's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ObjectStatus {
    ImageRepository(ImageRepositoryStatus),
    ImagePolicy(ImagePolicyStatus),
    ImageUpdateAutomation(ImageUpdateAutomationStatus),
}

/// `metadata` of a status item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMeta {
    pub name: String,
    pub namespace: String,
}

/// One object with its status, shaped as Kubernetes shows it (`apiVersion`, `kind`,
/// `metadata`, `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusItem {
    pub api_version: String,
    pub kind: String,
    pub metadata: StatusMeta,
    pub status: ObjectStatus,
}
