//! Serde types for the Flux kinds tagline reads, with Flux's field names and defaults.
//!
//! Every Flux field is present, also those tagline does not act on yet, so that a manifest
//! written for Flux parses; an unknown field in a `spec` is an error (it is almost always a typo).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `metadata` of any object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    /// Absent means `default`, as kubectl would place it.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A reference to an object by name in the same namespace.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    pub name: String,
}

/// `image.toolkit.fluxcd.io/v1` (and `v1beta2`) `ImageRepository`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepository {
    pub metadata: ObjectMeta,
    pub spec: ImageRepositorySpec,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRepositorySpec {
    pub image: String,
    pub interval: String,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub cert_secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub access_from: Option<serde_json::Value>,
    /// None means Flux's default `["^.*\\.sig$"]`; a list given replaces it.
    #[serde(default)]
    pub exclusion_list: Option<Vec<String>>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub insecure: bool,
}

/// `image.toolkit.fluxcd.io/v1` (and `v1beta2`) `ImagePolicy`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicy {
    pub metadata: ObjectMeta,
    pub spec: ImagePolicySpec,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePolicySpec {
    pub image_repository_ref: NamespacedObjectReference,
    pub policy: ImagePolicyChoice,
    #[serde(default)]
    pub filter_tags: Option<TagFilter>,
    #[serde(default)]
    pub digest_reflection_policy: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub suspend: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedObjectReference {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePolicyChoice {
    #[serde(default)]
    pub semver: Option<SemVerPolicy>,
    #[serde(default)]
    pub alphabetical: Option<OrderPolicy>,
    #[serde(default)]
    pub numerical: Option<OrderPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SemVerPolicy {
    pub range: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderPolicy {
    #[serde(default)]
    pub order: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagFilter {
    #[serde(default)]
    pub pattern: String,
    #[serde(default)]
    pub extract: String,
}

/// `image.toolkit.fluxcd.io/v1` (and `v1beta2`) `ImageUpdateAutomation`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateAutomation {
    pub metadata: ObjectMeta,
    pub spec: ImageUpdateAutomationSpec,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageUpdateAutomationSpec {
    pub source_ref: CrossNamespaceSourceReference,
    #[serde(default)]
    pub git: Option<GitSpec>,
    pub interval: String,
    #[serde(default)]
    pub policy_selector: Option<LabelSelector>,
    #[serde(default)]
    pub update: Option<UpdateStrategy>,
    #[serde(default)]
    pub suspend: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossNamespaceSourceReference {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSpec {
    #[serde(default)]
    pub checkout: Option<GitCheckoutSpec>,
    pub commit: CommitSpec,
    #[serde(default)]
    pub push: Option<PushSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitCheckoutSpec {
    #[serde(rename = "ref")]
    pub reference: GitRepositoryRef,
}

/// `GitRepository.spec.ref` and `git.checkout.ref`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRepositoryRef {
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub semver: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitSpec {
    pub author: CommitUser,
    #[serde(default)]
    pub signing_key: Option<SigningKey>,
    #[serde(default)]
    pub message_template: Option<String>,
    #[serde(default)]
    pub message_template_values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitUser {
    #[serde(default)]
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigningKey {
    pub secret_ref: LocalObjectReference,
    #[serde(default, rename = "type")]
    pub key_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushSpec {
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub refspec: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStrategy {
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// `source.toolkit.fluxcd.io/v1` `GitRepository`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitRepository {
    pub metadata: ObjectMeta,
    pub spec: GitRepositorySpec,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRepositorySpec {
    pub url: String,
    #[serde(default)]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default, rename = "ref")]
    pub reference: Option<GitRepositoryRef>,
    #[serde(default)]
    pub verify: Option<serde_json::Value>,
    #[serde(default)]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    #[serde(default)]
    pub ignore: Option<String>,
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub recurse_submodules: bool,
    #[serde(default)]
    pub include: Option<serde_json::Value>,
    #[serde(default)]
    pub sparse_checkout: Option<Vec<String>>,
    #[serde(default)]
    pub service_account_name: Option<String>,
}

/// `v1` `Secret`: `data` is base64, `stringData` plain; `stringData` wins on the same key.
/// `Debug` shows the key names only.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub metadata: ObjectMeta,
    #[serde(default, rename = "type")]
    pub secret_type: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("metadata", &self.metadata)
            .field("type", &self.secret_type)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("string_data", &self.string_data.keys().collect::<Vec<_>>())
            .finish()
    }
}
