//! The scanner: lists the tags of an OCI repository over the distribution API (auth, TLS,
//! pagination, retries) and applies the exclusion list.
//!
//! CONTRACT (used by `automation` and `cli`; the scanner owner may add, not change):
//! - `Credentials::from_docker_config(json_bytes, registry_host)` picks the entry Docker would.
//! - `scan(&ImageName, &ScanOptions).await -> Result<ScanResult, ScanError>`.
//! - `ScanResult.tags`: after exclusion, sorted descending byte-wise, each once.

use std::fmt;
use std::time::Duration;

use regex::Regex;

use crate::image::ImageName;

/// Registry credentials. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// A registry identity token (docker config `identitytoken`), exchanged for a bearer token.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

/// How to reach one registry repository.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub credentials: Option<Credentials>,
    /// Extra root CA certificates (PEM), from the `certSecretRef` Secret's `ca.crt`.
    pub ca_pem: Option<Vec<u8>>,
    /// Plain HTTP (`insecure: true`).
    pub insecure: bool,
    /// Bounds the whole listing (`spec.timeout`, default the interval).
    pub timeout: Duration,
    /// `exclusionList`, compiled; a tag matching any is dropped.
    pub exclusion: Vec<Regex>,
}

/// A successful, complete listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// After exclusion, sorted descending byte-wise, each once.
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("docker config: {0}")]
    DockerConfig(String),
    #[error("{0}")]
    Other(String),
}

impl Credentials {
    /// The credentials a `kubernetes.io/dockerconfigjson` Secret holds for `registry_host`.
    pub fn from_docker_config(
        _json: &[u8],
        _registry_host: &str,
    ) -> Result<Option<Credentials>, ScanError> {
        todo!("scanner owner")
    }
}

/// Lists every tag of `image`.
pub async fn scan(_image: &ImageName, _options: &ScanOptions) -> Result<ScanResult, ScanError> {
    todo!("scanner owner")
}
