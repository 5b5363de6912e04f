//! Scan errors: one variant per failed step, each naming the registry and repository, none
//! carrying a secret, each knowing whether a retry could help.

use std::time::Duration;

/// Why a scan (or a digest lookup) failed. `registry` is the API host, `repository` the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The docker config JSON could not be read (never echoes the secret).
    #[error("docker config for {registry}: {reason}")]
    DockerConfig { registry: String, reason: String },
    /// The scan options cannot be used (bad CA PEM, bad client certificate, bad URL).
    #[error("registry {registry}: invalid options: {reason}")]
    Options { registry: String, reason: String },
    /// No connection could be made (DNS, refused, reset, broken body).
    #[error("connecting to {registry} for {repository}: {reason}")]
    Connect {
        registry: String,
        repository: String,
        reason: String,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name, client cert refused).
    #[error("TLS: {reason} for {registry} ({repository})")]
    Tls {
        registry: String,
        repository: String,
        reason: String,
    },
    /// The proxy refused the request: its credentials (407) or the tunnel. `proxy` is its
    /// `scheme://host:port`, never its credentials.
    #[error("proxy {proxy} for {registry}/{repository}: {reason}")]
    Proxy {
        proxy: String,
        registry: String,
        repository: String,
        reason: String,
    },
    /// The registry refused the credentials (401/403), or the token exchange failed.
    #[error("authentication failed for {registry}/{repository}: {reason}")]
    Auth {
        registry: String,
        repository: String,
        reason: String,
    },
    /// 404: the repository does not exist (or is hidden from these credentials).
    #[error("repository {registry}/{repository} not found")]
    NotFound {
        registry: String,
        repository: String,
    },
    /// 404 on a manifest: the tag does not exist (digest lookup).
    #[error("tag {tag} not found in {registry}/{repository}")]
    TagNotFound {
        registry: String,
        repository: String,
        tag: String,
    },
    /// Any other unexpected HTTP status; `detail` is the registry's error code/message if any.
    #[error("{registry}/{repository}: {step} answered HTTP {status}{detail}")]
    Status {
        registry: String,
        repository: String,
        step: &'static str,
        status: u16,
        detail: String,
    },
    /// 429 until the deadline or the retry budget ran out.
    #[error(
        "{registry}/{repository}: rate limited (HTTP 429) after {attempts} attempts{}{}",
        retry_after.map(|d| format!("; the registry asks to retry after {}s", d.as_secs())).unwrap_or_default(),
        quota_text(rate_limit.as_ref())
    )]
    RateLimited {
        registry: String,
        repository: String,
        attempts: u32,
        retry_after: Option<Duration>,
        /// The rate-limit headers of the last answer that carried them (Docker Hub sends
        /// `ratelimit-remaining: 0` with its 429).
        rate_limit: Option<super::RateLimit>,
    },
    /// The body was not what the distribution API promises.
    #[error("{registry}/{repository}: cannot decode {step}: {reason}")]
    Decode {
        registry: String,
        repository: String,
        step: &'static str,
        reason: String,
    },
    /// The whole operation exceeded `ScanOptions.timeout`.
    #[error("{registry}/{repository}: timed out after {after:?}")]
    Timeout {
        registry: String,
        repository: String,
        after: Duration,
    },
    /// One response body exceeded the byte budget.
    #[error("{registry}/{repository}: response body larger than {limit} bytes")]
    TooLarge {
        registry: String,
        repository: String,
        limit: u64,
    },
    /// The listing was cut by a budget (pages, tags, bytes); the partial list is not returned.
    #[error("{registry}/{repository}: tag list truncated after {tags} tags ({reason})")]
    Truncated {
        registry: String,
        repository: String,
        tags: usize,
        reason: String,
    },
    /// A pagination link pointed to another origin; it was not followed.
    #[error("{registry}/{repository}: refusing pagination link to another origin ({origin})")]
    CrossOriginLink {
        registry: String,
        repository: String,
        origin: String,
    },
}

impl ScanError {
    /// The step that failed, as a stable word for metrics labels (the variant's name).
    pub fn reason(&self) -> &'static str {
        match self {
            ScanError::DockerConfig { .. } => "DockerConfig",
            ScanError::Options { .. } => "Options",
            ScanError::Connect { .. } => "Connect",
            ScanError::Tls { .. } => "Tls",
            ScanError::Proxy { .. } => "Proxy",
            ScanError::Auth { .. } => "Auth",
            ScanError::NotFound { .. } => "NotFound",
            ScanError::TagNotFound { .. } => "TagNotFound",
            ScanError::Status { .. } => "Status",
            ScanError::RateLimited { .. } => "RateLimited",
            ScanError::Decode { .. } => "Decode",
            ScanError::Timeout { .. } => "Timeout",
            ScanError::TooLarge { .. } => "TooLarge",
            ScanError::Truncated { .. } => "Truncated",
            ScanError::CrossOriginLink { .. } => "CrossOriginLink",
        }
    }

    /// Whether the same request could succeed later without a configuration change.
    pub fn is_retryable(&self) -> bool {
        match self {
            ScanError::Connect { .. }
            | ScanError::Timeout { .. }
            | ScanError::RateLimited { .. } => true,
            ScanError::Status { status, .. } => {
                matches!(status, 408 | 425 | 429 | 499 | 500..=599)
            }
            ScanError::DockerConfig { .. }
            | ScanError::Options { .. }
            | ScanError::Tls { .. }
            | ScanError::Proxy { .. }
            | ScanError::Auth { .. }
            | ScanError::NotFound { .. }
            | ScanError::TagNotFound { .. }
            | ScanError::Decode { .. }
            | ScanError::TooLarge { .. }
            // A budget cut is deterministic: the same listing would be cut again.
            | ScanError::Truncated { .. }
            | ScanError::CrossOriginLink { .. } => false,
        }
    }

    /// Whether this is an authentication failure (Flux's `AuthenticationFailed` family).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ScanError::Auth { .. } | ScanError::DockerConfig { .. }
        )
    }
}

/// `; N of M requests left` for an error message, from a registry's rate-limit headers.
fn quota_text(r: Option<&super::RateLimit>) -> String {
    match r.map(|r| (r.remaining, r.limit)) {
        Some((Some(left), Some(limit))) => format!("; {left} of {limit} requests left"),
        Some((Some(left), None)) => format!("; {left} requests left"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_host_and_repository() {
        let e = ScanError::Auth {
            registry: "r.example".into(),
            repository: "team/app".into(),
            reason: "HTTP 401".into(),
        };
        assert_eq!(
            e.to_string(),
            "authentication failed for r.example/team/app: HTTP 401"
        );
        assert!(!e.is_retryable());
        let e = ScanError::Status {
            registry: "r".into(),
            repository: "a".into(),
            step: "tags/list",
            status: 503,
            detail: String::new(),
        };
        assert!(e.is_retryable());
        let e = ScanError::Status {
            registry: "r".into(),
            repository: "a".into(),
            step: "tags/list",
            status: 400,
            detail: String::new(),
        };
        assert!(!e.is_retryable());
    }
}
