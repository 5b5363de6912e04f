//! Image references: parse and normalise repository names as Docker does, print `name:tag[@digest]`.

use std::fmt;

/// The registry host Docker Hub names normalise to.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's distribution API is actually served.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A repository on a registry, as an `ImageRepository`'s `spec.image` names it (no tag, no digest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    /// The spec string exactly as written (what the `:name` marker writes).
    pub original: String,
    /// Registry host, with port if any, e.g. `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path within the registry, e.g. `library/alpine`, `team/app`.
    pub repository: String,
}

/// Why a `spec.image` string is not a repository name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidImage {
    #[error("image name is empty")]
    Empty,
    #[error("image '{0}' should not include a URL scheme")]
    Scheme(String),
    #[error("image '{0}' should not include a tag or digest")]
    TagOrDigest(String),
    #[error("image '{0}' is not a valid repository name: {1}")]
    Syntax(String, &'static str),
}

impl ImageName {
    /// Parses and normalises a repository name: `alpine` → `docker.io/library/alpine`.
    pub fn parse(spec: &str) -> Result<ImageName, InvalidImage> {
        let s = spec.trim();
        if s.is_empty() {
            return Err(InvalidImage::Empty);
        }
        if s.contains("://") {
            return Err(InvalidImage::Scheme(spec.to_string()));
        }
        let (first, rest) = match s.split_once('/') {
            Some((first, rest)) => (first, Some(rest)),
            None => (s, None),
        };
        // Docker's rule: the first component is a registry host if it has a '.', a ':' or is
        // "localhost", and there is more than one component.
        let is_host =
            rest.is_some() && (first.contains('.') || first.contains(':') || first == "localhost");
        let (registry, repository) = if is_host {
            let host = if first == "index.docker.io" || first == "registry-1.docker.io" {
                DOCKER_HUB
            } else {
                first
            };
            (host.to_string(), rest.unwrap_or_default().to_string())
        } else {
            (DOCKER_HUB.to_string(), s.to_string())
        };
        if repository.contains(':') || repository.contains('@') {
            return Err(InvalidImage::TagOrDigest(spec.to_string()));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        for component in repository.split('/') {
            if component.is_empty() {
                return Err(InvalidImage::Syntax(
                    spec.to_string(),
                    "empty path component",
                ));
            }
            let ok = component.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
            if !ok {
                return Err(InvalidImage::Syntax(
                    spec.to_string(),
                    "path components may hold only lowercase letters, digits, '.', '_' and '-'",
                ));
            }
        }
        Ok(ImageName {
            original: spec.to_string(),
            registry,
            repository,
        })
    }

    /// The host that serves the distribution API for this registry.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The canonical name, e.g. `docker.io/library/alpine`.
    pub fn canonical(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// What a policy elected: Flux's `status.latestRef`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ImageRef {
    /// The ImageRepository's `spec.image` exactly as written.
    pub name: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageName::parse(s).unwrap().canonical()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine");
        assert_eq!(
            norm("stefanprodan/podinfo"),
            "docker.io/stefanprodan/podinfo"
        );
        assert_eq!(
            norm("index.docker.io/library/alpine"),
            "docker.io/library/alpine"
        );
        assert_eq!(norm("ghcr.io/org/team/app"), "ghcr.io/org/team/app");
        assert_eq!(norm("127.0.0.1:5000/team/app"), "127.0.0.1:5000/team/app");
        assert_eq!(norm("localhost/app"), "localhost/app");
        assert_eq!(
            ImageName::parse("alpine").unwrap().api_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn rejects_scheme_tag_digest() {
        assert!(matches!(
            ImageName::parse("https://ghcr.io/a/b"),
            Err(InvalidImage::Scheme(_))
        ));
        assert!(matches!(
            ImageName::parse("alpine:3.19"),
            Err(InvalidImage::TagOrDigest(_))
        ));
        assert!(matches!(
            ImageName::parse("127.0.0.1:5000/app:1"),
            Err(InvalidImage::TagOrDigest(_))
        ));
        assert!(matches!(
            ImageName::parse("ghcr.io/a@sha256:00"),
            Err(InvalidImage::TagOrDigest(_))
        ));
        assert!(matches!(
            ImageName::parse("ghcr.io/A/b"),
            Err(InvalidImage::Syntax(..))
        ));
        assert!(matches!(ImageName::parse(""), Err(InvalidImage::Empty)));
    }

    #[test]
    fn prints_refs_as_flux_does() {
        let r = ImageRef {
            name: "ghcr.io/a/b".into(),
            tag: "1.2.3".into(),
            digest: None,
        };
        assert_eq!(r.to_string(), "ghcr.io/a/b:1.2.3");
        let r = ImageRef {
            digest: Some("sha256:ab".into()),
            ..r
        };
        assert_eq!(r.to_string(), "ghcr.io/a/b:1.2.3@sha256:ab");
    }
}
