//! The scanner: lists the tags of an OCI repository over the distribution API (auth, TLS,
//! pagination, retries) and applies the exclusion list.
//!
//! CONTRACT (used by `automation` and `cli`; the scanner owner may add, not change):
//! - `Credentials::from_docker_config(json_bytes, registry_host)` picks the entry Docker would.
//! - `scan(&ImageName, &ScanOptions).await -> Result<ScanResult, ScanError>`.
//! - `ScanResult.tags`: after exclusion, sorted descending byte-wise, each once.
//!
//! Why our own distribution client on `reqwest` rather than `oci-client`: listing tags is one
//! endpoint, but doing it right for real registries needs control `oci-client` does not give.
//! It does not follow `Link` pagination (so Docker Hub, GHCR, ECR, Quay lists beyond one page
//! are silently cut), it does not expose `Retry-After` or the rate-limit headers (so 429s cannot
//! be honoured or reported), and it reads whole bodies without a size cap (a hostile or broken
//! registry can make us allocate without bound). The client here is a few hundred lines on
//! `reqwest`: the bearer/basic challenge flow, same-origin pagination with a budget, capped
//! streaming reads, retries with backoff, and errors that name the step that failed.
//!
//! Behaviour in brief (defaults in [`ScanOptions::default`], [`Limits`], [`RetryPolicy`]):
//! - `GET /v2/<repo>/tags/list?n=1000`; `Link: rel="next"` followed on the same origin only
//!   ([`ScanError::CrossOriginLink`] otherwise); without `Link`, a page of exactly `n` tags is
//!   continued with `last=` (Nexus), except from a registry already seen to answer such a
//!   continuation with the same page again (docker-registry 2.8 ignores `n` and `last`; learnt
//!   once per process and origin, concurrent listings waiting for the first one's answer, see
//!   `learn.rs`); a page refused with Quay's "max is N" is asked again with
//!   `n=N`; a repeated URL or a page with nothing new ends the listing.
//! - Budget per listing: 1000 pages, 1,000,000 tags, 64 MiB of bodies; a cut listing is
//!   [`ScanError::Truncated`], never a partial list. Tags that are not valid tag names are
//!   dropped and counted in [`ScanResult::invalid_tags`].
//! - Auth: Basic or Bearer challenge (token, access_token, identity-token refresh grant);
//!   tokens cached in memory until shortly before expiry; one refresh on a 401. The challenge
//!   an origin sent is remembered (per process): later repositories there get their token (or
//!   send Basic credentials) before the first request, so a registry behind a token server
//!   costs one token and one request per page per repository, not a refused request first.
//!   Scans that start while the first one with an origin is learning its auth wait for its
//!   answer, so a pass of many concurrent scans meets the challenge once.
//! - Retries: 408/429/5xx and connection failures, exponential backoff with jitter, never
//!   shorter than `Retry-After`, stopping before `timeout` runs out.
//! - Manners ([`Manners`]): at most 8 scans/digest lookups (so 8 requests) in flight per
//!   registry host in the process, and optionally a pace of requests per second; one HTTP client (and its connection pool) per TLS
//!   configuration and proxy.
//! - Scheme: HTTPS; plain HTTP with `insecure`; and, as go-containerregistry does, a local
//!   host (`localhost:<port>`, `*.localhost`, `127.0.0.1`, `::1`, RFC 1918 IPv4) whose HTTPS
//!   does not connect falls back to plain HTTP (learnt once per host and process).
//! - Proxy: `proxySecretRef` for every request, else `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` with
//!   Go's rules (never for loopback); see `proxy.rs`.

mod auth;
mod client;
mod docker_config;
mod error;
mod learn;
mod limit;
mod pagination;
mod proxy;
mod retry;
mod tls;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use regex::Regex;
use reqwest::{Method, StatusCode};
use url::Url;

use crate::image::ImageName;

use client::{read_capped, Session, Target};
pub use error::ScanError;
pub use limit::Manners;
pub use pagination::{is_valid_tag, Limits};
pub use retry::{parse_retry_after, Clock, RetryPolicy, SystemClock};
pub use tls::client_config_with as tls_client_config;

/// Registry credentials. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
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

/// A TLS client identity for mTLS (`tls.crt` + `tls.key` of the `certSecretRef` Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity(cert, key ***)")
    }
}

/// A forward proxy for every request of a scan (`proxySecretRef`: `address`, `username`,
/// `password`). The credentials go to the proxy only, as proxy authentication
/// (`Proxy-Authorization` on HTTP requests and on `CONNECT`; the SOCKS5 login for `socks5://`).
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyConfig {
    /// `http://host:port`, `https://…` or `socks5://…` (`socks5h://` resolves at the proxy).
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyConfig({}", proxy::display_address(&self.address))?;
        match (&self.username, &self.password) {
            (Some(u), _) => write!(f, ", {u}, ***)"),
            (None, Some(_)) => f.write_str(", ***)"),
            (None, None) => f.write_str(")"),
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
    /// mTLS client certificate and key (`tls.crt` + `tls.key`), if any.
    pub client_identity: Option<ClientIdentity>,
    /// Budget for one listing.
    pub limits: Limits,
    /// Retries of each request.
    pub retry: RetryPolicy,
    /// The proxy from `proxySecretRef`. `None`: the environment's `HTTPS_PROXY` /
    /// `HTTP_PROXY` / `NO_PROXY`, as Go's `http.ProxyFromEnvironment` reads them (never for
    /// `localhost` or loopback addresses).
    pub proxy: Option<ProxyConfig>,
    /// How hard to press one registry host, across the process: at most
    /// `max_in_flight` scans and digest lookups at once (each sends its requests one after
    /// another, so that many requests in flight; the first options to reach a host set its
    /// limit, and waiting for a turn is not part of `timeout`), and optionally a pace of
    /// requests per second.
    pub manners: Manners,
    /// Where to count the requests sent, by host and status, if the caller wants them.
    pub requests: Option<RequestLog>,
}

/// Requests sent, counted by (host, status): the status code as digits, or `error` when no
/// response came (connect, TLS, timeout). Owned by the caller: clones share one count.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<BTreeMap<(String, String), u64>>>);

impl RequestLog {
    /// Counts one request to `host` that ended with `status`.
    pub fn record(&self, host: &str, status: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((host.to_string(), status.to_string())).or_default() += 1;
    }

    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Flux's default exclusion list: cosign signature tags.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";

/// [`DEFAULT_EXCLUSION`], compiled once per process (a `Regex` clone shares it).
pub fn default_exclusion() -> Regex {
    static COMPILED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(DEFAULT_EXCLUSION).expect("valid regex"));
    COMPILED.clone()
}

impl Default for ScanOptions {
    /// Anonymous HTTPS, system roots, a one-minute timeout, Flux's default exclusion list, the
    /// environment's proxy.
    fn default() -> Self {
        ScanOptions {
            credentials: None,
            ca_pem: None,
            insecure: false,
            timeout: Duration::from_secs(60),
            exclusion: vec![default_exclusion()],
            client_identity: None,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            proxy: None,
            manners: Manners::default(),
            requests: None,
        }
    }
}

/// The registry's rate-limit headers on the last response that carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `RateLimit-Limit` (Docker Hub: `ratelimit-limit: 100;w=21600`), the quota.
    pub limit: Option<u64>,
    /// `RateLimit-Remaining` / `X-RateLimit-Remaining`, what is left.
    pub remaining: Option<u64>,
}

/// A successful, complete listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// After exclusion, sorted descending byte-wise, each once.
    pub tags: Vec<String>,
    /// Pages fetched.
    pub pages: u32,
    /// Tags the registry sent that are not valid tag names (dropped, never stored).
    pub invalid_tags: usize,
    /// Rate-limit headers seen, if the registry sends them.
    pub rate_limit: Option<RateLimit>,
}

impl Credentials {
    /// The credentials a `kubernetes.io/dockerconfigjson` Secret holds for `registry_host`.
    pub fn from_docker_config(
        json: &[u8],
        registry_host: &str,
    ) -> Result<Option<Credentials>, ScanError> {
        docker_config::from_docker_config(json, registry_host)
    }
}

/// Lists every tag of `image`.
pub async fn scan(image: &ImageName, options: &ScanOptions) -> Result<ScanResult, ScanError> {
    scan_with_clock(image, options, &SystemClock).await
}

/// [`scan`] with time, sleeping and jitter taken from `clock`.
pub async fn scan_with_clock(
    image: &ImageName,
    options: &ScanOptions,
    clock: &dyn Clock,
) -> Result<ScanResult, ScanError> {
    let mut target = Target::new(image.api_host(), &image.repository, options.insecure)?;
    target.client_identity = options.client_identity.is_some();
    target.proxy = proxy::describe(options.proxy.as_ref(), &target.base);
    let timeout_error = ScanError::Timeout {
        registry: target.registry.clone(),
        repository: target.repository.clone(),
        after: options.timeout,
    };
    let _permit = registry_permit(&target.registry, options.manners.max_in_flight).await;
    let deadline = retry_deadline(clock.now(), options.timeout);
    match tokio::time::timeout(options.timeout, list(target, options, clock, deadline)).await {
        Ok(r) => r,
        Err(_) => Err(timeout_error),
    }
}

async fn list(
    target: Target,
    options: &ScanOptions,
    clock: &dyn Clock,
    deadline: std::time::SystemTime,
) -> Result<ScanResult, ScanError> {
    let http = client::http_client(&target, options)?;
    let mut session = Session::new(http, target, options, clock, deadline);
    session.resolve_scheme().await;
    session.preauthorize().await;
    let raw = list_raw(&mut session, &options.limits).await?;
    let mut tags: Vec<String> = raw
        .tags
        .into_iter()
        .filter(|t| !options.exclusion.iter().any(|re| re.is_match(t)))
        .collect();
    tags.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    tags.dedup();
    Ok(ScanResult {
        tags,
        pages: raw.pages,
        invalid_tags: raw.invalid_tags,
        rate_limit: raw.rate_limit,
    })
}

/// Manifest media types accepted for a digest lookup: OCI and Docker, single and index.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Largest manifest read when the registry does not send `Docker-Content-Digest` on HEAD.
const MANIFEST_BODY_LIMIT: u64 = 4 * 1024 * 1024;

/// The digest of `image:tag`'s manifest (for a multi-arch image: the index digest), as the
/// registry reports it on `HEAD /v2/<repo>/manifests/<tag>` (`Docker-Content-Digest`); if the
/// HEAD carries no digest, the manifest is fetched and hashed.
pub async fn digest(
    image: &ImageName,
    tag: &str,
    options: &ScanOptions,
) -> Result<String, ScanError> {
    digest_with_clock(image, tag, options, &SystemClock).await
}

/// [`digest`] with time, sleeping and jitter taken from `clock`.
pub async fn digest_with_clock(
    image: &ImageName,
    tag: &str,
    options: &ScanOptions,
    clock: &dyn Clock,
) -> Result<String, ScanError> {
    let mut target = Target::new(image.api_host(), &image.repository, options.insecure)?;
    target.client_identity = options.client_identity.is_some();
    target.proxy = proxy::describe(options.proxy.as_ref(), &target.base);
    if !is_valid_tag(tag) {
        return Err(target.options_error(format!("'{tag}' is not a valid tag")));
    }
    let timeout_error = ScanError::Timeout {
        registry: target.registry.clone(),
        repository: target.repository.clone(),
        after: options.timeout,
    };
    let _permit = registry_permit(&target.registry, options.manners.max_in_flight).await;
    let deadline = retry_deadline(clock.now(), options.timeout);
    let work = async {
        let http = client::http_client(&target, options)?;
        let mut session = Session::new(http, target, options, clock, deadline);
        session.resolve_scheme().await;
        session.preauthorize().await;
        manifest_digest(&mut session, tag).await
    };
    match tokio::time::timeout(options.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(timeout_error),
    }
}

fn is_valid_digest(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

async fn manifest_digest(session: &mut Session<'_>, tag: &str) -> Result<String, ScanError> {
    let url = session.target.url(&format!(
        "/v2/{}/manifests/{tag}",
        session.target.repository
    ));
    let not_found = |s: &Session<'_>| ScanError::TagNotFound {
        registry: s.target.registry.clone(),
        repository: s.target.repository.clone(),
        tag: tag.to_string(),
    };
    let resp = session
        .request(Method::HEAD, &url, MANIFEST_MEDIA_TYPES, "manifest HEAD")
        .await?;
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        return Err(not_found(session));
    }
    if !status.is_success() {
        return Err(session.target.status_error("manifest HEAD", status, &[]));
    }
    let header = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .map(str::to_string);
    drop(resp);
    if let Some(d) = header {
        if !is_valid_digest(&d) {
            return Err(session.target.decode_error(
                "manifest HEAD",
                "Docker-Content-Digest is not a sha256/sha512 digest".into(),
            ));
        }
        return Ok(d);
    }
    // No digest on HEAD: fetch the manifest and hash its bytes.
    let resp = session
        .request(Method::GET, &url, MANIFEST_MEDIA_TYPES, "manifest GET")
        .await?;
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        return Err(not_found(session));
    }
    let body = read_capped(resp, MANIFEST_BODY_LIMIT, &session.target).await?;
    if !status.is_success() {
        return Err(session.target.status_error("manifest GET", status, &body));
    }
    let hash = openssl::sha::sha256(&body);
    let mut d = String::with_capacity(71);
    d.push_str("sha256:");
    for b in hash {
        d.push_str(&format!("{b:02x}"));
    }
    Ok(d)
}

/// Waits for a turn at `registry` (at most `limit` holders at once in this process).
async fn registry_permit(registry: &str, limit: usize) -> tokio::sync::OwnedSemaphorePermit {
    static SEMAPHORES: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>> =
        LazyLock::new(Default::default);
    let semaphore = SEMAPHORES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(registry.to_string())
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit.max(1))))
        .clone();
    semaphore
        .acquire_owned()
        .await
        .expect("registry semaphores are never closed")
}

/// Whether an origin ignores `last` on tags/list (docker-registry 2.8 answers a `last=`
/// request with the first page again), learnt by the first listing that asks a continuation
/// there while the others wait. From such an origin, a page of exactly `n` tags without a
/// `Link` is the whole list: asking again with `last` would only fetch the same page.
static IGNORES_LAST: learn::Lessons<bool> = learn::Lessons::new();

/// Retries stop early enough that the attempt after the last wait still has time to answer
/// before the scan's timeout: a tenth of the timeout, at most 2 s, is kept in reserve.
fn retry_deadline(now: std::time::SystemTime, timeout: Duration) -> std::time::SystemTime {
    let reserve = (timeout / 10).min(Duration::from_secs(2));
    now + timeout.saturating_sub(reserve)
}

/// What the pages held, before exclusion and sorting: each valid tag once, in no order.
struct RawListing {
    tags: Vec<String>,
    pages: u32,
    invalid_tags: usize,
    rate_limit: Option<RateLimit>,
}

/// The valid tags of a listing so far. A first page is kept as it came (no hashing: most
/// listings are one page, and a tag repeated within a page goes when the caller sorts and
/// dedups); from the second page on they are a set, so a page that brings nothing new shows.
enum Collected {
    Page(Vec<String>),
    Set(HashSet<String>),
}

impl Collected {
    /// How many tags: distinct ones, except on a first page of at most the tag budget (where a
    /// repeated tag counts twice until the caller dedups).
    fn len(&self) -> usize {
        match self {
            Collected::Page(v) => v.len(),
            Collected::Set(s) => s.len(),
        }
    }

    /// Adds a page's valid tags; returns how many were not valid tags. A first page longer
    /// than `max_tags` is made a set at once, so the budget counts distinct tags.
    fn add(&mut self, page: Vec<String>, first: bool, max_tags: usize) -> usize {
        let mut invalid = 0;
        if let (true, Collected::Page(v)) = (first, &mut *self) {
            v.reserve(page.len());
            for t in page {
                if is_valid_tag(&t) {
                    v.push(t);
                } else {
                    invalid += 1;
                }
            }
            if v.len() > max_tags {
                self.set();
            }
            return invalid;
        }
        let set = self.set();
        for t in page {
            if is_valid_tag(&t) {
                set.insert(t);
            } else {
                invalid += 1;
            }
        }
        invalid
    }

    /// The tags as a set (made from the first page's on first use).
    fn set(&mut self) -> &mut HashSet<String> {
        if let Collected::Page(v) = self {
            *self = Collected::Set(std::mem::take(v).into_iter().collect());
        }
        match self {
            Collected::Set(s) => s,
            Collected::Page(_) => unreachable!("made a set above"),
        }
    }

    fn into_tags(self) -> Vec<String> {
        match self {
            Collected::Page(v) => v,
            Collected::Set(s) => s.into_iter().collect(),
        }
    }
}

#[derive(serde::Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn tags_url(target: &Target, n: u32, last: Option<&str>) -> Url {
    let mut u = target.url(&format!("/v2/{}/tags/list", target.repository));
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("n", &n.to_string());
        if let Some(l) = last {
            q.append_pair("last", l);
        }
    }
    u
}

fn query_n(u: &Url) -> Option<usize> {
    u.query_pairs()
        .find(|(k, _)| k == "n")
        .and_then(|(_, v)| v.parse().ok())
}

/// The page cap a registry announces when it refuses `n` (Quay: `TOO_MANY_TAGS_REQUESTED`,
/// "... max is 100"), if this error body is such a refusal.
fn refused_page_size(body: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("TOO_MANY_TAGS_REQUESTED") && !text.to_ascii_lowercase().contains("max is") {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let at = lower.find("max is")? + "max is".len();
    let digits: String = lower[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok().filter(|&n| n > 0)
}

async fn list_raw(session: &mut Session<'_>, limits: &Limits) -> Result<RawListing, ScanError> {
    let truncated = |session: &Session<'_>, tags: usize, reason: String| ScanError::Truncated {
        registry: session.target.registry.clone(),
        repository: session.target.repository.clone(),
        tags,
        reason,
    };
    let mut url = tags_url(&session.target, limits.page_size, None);
    // Each valid tag once (sorted by the caller): the first page's tags as they came, in a set
    // from the second page on.
    let mut collected = Collected::Page(Vec::new());
    let mut visited: HashSet<String> = HashSet::new();
    let mut invalid_tags = 0usize;
    let mut pages = 0u32;
    let mut bytes = 0u64;
    let mut page_size_retried = false;
    let origin = session.target.base.origin().ascii_serialization();
    // The body of the page before a continuation we asked for ourselves (no `Link`), while
    // that continuation is in flight.
    let mut continued_from: Option<Vec<u8>> = None;
    // Set while that continuation learns whether the origin ignores `last`.
    let mut probe: Option<learn::Pupil<bool>> = None;
    loop {
        if pages >= limits.max_pages {
            return Err(truncated(
                session,
                collected.len(),
                format!("page budget of {} pages exhausted", limits.max_pages),
            ));
        }
        visited.insert(url.to_string());
        let resp = session
            .request(Method::GET, &url, &["application/json"], "tags/list")
            .await?;
        let status = resp.status();
        let link = resp
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| pagination::next_link(v).map(str::to_string));
        let remaining = limits.max_bytes.saturating_sub(bytes);
        let body = match read_capped(resp, remaining, &session.target).await {
            Ok(b) => b,
            Err(ScanError::TooLarge { .. }) if pages > 0 => {
                return Err(truncated(
                    session,
                    collected.len(),
                    format!("byte budget of {} bytes exhausted", limits.max_bytes),
                ))
            }
            Err(e) => return Err(e),
        };
        bytes += body.len() as u64;
        if status == StatusCode::BAD_REQUEST && !page_size_retried {
            // Quay refuses `n` above its cap instead of truncating: ask again with its cap.
            if let Some(cap) = refused_page_size(&body) {
                let asked = query_n(&url).unwrap_or(usize::MAX);
                if (cap as usize) < asked {
                    page_size_retried = true;
                    let last = url
                        .query_pairs()
                        .find(|(k, _)| k == "last")
                        .map(|(_, v)| v.into_owned());
                    url = tags_url(&session.target, cap, last.as_deref());
                    continue;
                }
            }
        }
        if !status.is_success() {
            return Err(session.target.status_error("tags/list", status, &body));
        }
        pages += 1;
        let page: TagsPage = serde_json::from_slice(&body).map_err(|e| {
            session.target.decode_error(
                "tags/list",
                format!(
                    "not a tag list ({:?} error at column {})",
                    e.classify(),
                    e.column()
                ),
            )
        })?;
        let page_tags = page.tags.unwrap_or_default();
        let page_len = page_tags.len();
        // Our own `last=` continuation answered with the very same page: `last` is ignored
        // here. (A page that merely repeats the boundary tag is a different quirk.)
        if let Some(previous) = continued_from.take() {
            let ignored = previous == body;
            match probe.take() {
                Some(pupil) => pupil.learnt(ignored),
                None if ignored => IGNORES_LAST.set(&origin, true),
                None => {}
            }
        }
        let last_tag = page_tags.iter().rev().find(|t| is_valid_tag(t)).cloned();
        let before = collected.len();
        invalid_tags += collected.add(page_tags, pages == 1, limits.max_tags);
        let new = collected.len() - before;
        if collected.len() > limits.max_tags {
            return Err(truncated(
                session,
                limits.max_tags,
                format!("tag budget of {} tags exhausted", limits.max_tags),
            ));
        }
        // A page that brings nothing new ends the listing: a looping or repeating registry
        // has nothing more to give.
        if new == 0 && pages > 1 {
            break;
        }
        let next = if let Some(link) = link {
            let next = url.join(&link).map_err(|_| {
                session
                    .target
                    .decode_error("tags/list", "the Link header is not a valid URL".into())
            })?;
            if !session.target.same_origin(&next) {
                return Err(ScanError::CrossOriginLink {
                    registry: session.target.registry.clone(),
                    repository: session.target.repository.clone(),
                    origin: next.origin().ascii_serialization(),
                });
            }
            Some(next)
        } else {
            // No Link: a page of exactly `n` may have a successor (Nexus); ask with `last`.
            // A page longer than `n` comes from a registry that ignores `n` (docker-registry
            // 2.8): it is the whole list.
            match (query_n(&url), last_tag) {
                (Some(n), Some(last)) if n > 0 && page_len == n => {
                    let ask = match IGNORES_LAST.ask(&origin).await {
                        learn::Answer::Known(ignores) => !ignores,
                        learn::Answer::Unknown => true,
                        learn::Answer::Learn(pupil) => {
                            probe = Some(pupil);
                            true
                        }
                    };
                    ask.then(|| {
                        continued_from = Some(body);
                        tags_url(&session.target, n as u32, Some(&last))
                    })
                }
                _ => None,
            }
        };
        match next {
            Some(n) if !visited.contains(n.as_str()) => url = n,
            _ => break,
        }
    }
    Ok(RawListing {
        tags: collected.into_tags(),
        pages,
        invalid_tags,
        rate_limit: session.rate_limit.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quay_refusal_names_its_cap() {
        let body = br#"{"errors":[{"code":"TOO_MANY_TAGS_REQUESTED","message":"Requested page size is too large: max is 100","detail":{}}]}"#;
        assert_eq!(refused_page_size(body), Some(100));
        assert_eq!(
            refused_page_size(br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#),
            None
        );
    }

    #[test]
    fn collected_tags_hash_only_from_the_second_page_and_count_distinct_against_the_budget() {
        let page = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut c = Collected::Page(Vec::new());
        assert_eq!(c.add(page(&["a", "b", "a", "-bad"]), true, 10), 1);
        assert!(matches!(c, Collected::Page(_)), "one page: no set");
        assert_eq!(c.len(), 3);
        assert_eq!(c.add(page(&["b", "c"]), false, 10), 0);
        assert!(matches!(c, Collected::Set(_)));
        assert_eq!(c.len(), 3, "a, b, c");
        let mut tags = c.into_tags();
        tags.sort();
        assert_eq!(tags, ["a", "b", "c"]);
        // A first page over the budget only through repeats is within it.
        let mut c = Collected::Page(Vec::new());
        c.add(page(&["x", "y", "x", "y"]), true, 2);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn rate_limit_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        h.insert("ratelimit-remaining", "76;w=21600".parse().unwrap());
        let mut r = None;
        client::record_rate_limit(&h, &mut r);
        assert_eq!(
            r,
            Some(RateLimit {
                limit: Some(100),
                remaining: Some(76)
            })
        );
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = Credentials::IdentityToken("tok-hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
        let id = ClientIdentity {
            cert_pem: b"c".to_vec(),
            key_pem: b"KEY-hunter2".to_vec(),
        };
        assert!(!format!("{id:?}").contains("hunter2"));
    }
}
