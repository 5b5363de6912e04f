//! One session with one registry repository: the HTTP client (TLS roots, client identity),
//! requests with the auth challenge flow, capped body reads, and error classification.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::auth::{
    cached_token, parse_challenges, store_token, token_key, Challenge, TokenKey, TokenResponse,
};
use super::learn::{Answer, Lessons, Pupil};
use super::limit::{self, Manners};
use super::retry::{is_retryable_status, parse_retry_after, Clock, Retrier, RetryPolicy};
use super::{Credentials, ProxyConfig, RateLimit, ScanError, ScanOptions};

/// Largest token response accepted.
const TOKEN_BODY_LIMIT: u64 = 1 << 20;

/// Where the session points: the API host and the repository path.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub registry: String,
    pub repository: String,
    /// `https://host[:port]` or `http://...` when insecure.
    pub base: Url,
    /// Whether a client certificate is presented (for error hints).
    pub client_identity: bool,
    /// `scheme://host:port` of the proxy requests go through, if any (for messages).
    pub proxy: Option<String>,
    /// HTTPS first, plain HTTP if HTTPS cannot connect: a local host without `insecure`
    /// (go-containerregistry's rule, see [`plain_http_capable`]).
    pub fallback_http: bool,
}

/// Whether go-containerregistry (`name.Registry.Scheme`) lets `host` (`name[:port]`) fall back
/// to plain HTTP without `insecure`: `localhost:<port>`, `*.localhost[:port]`,
/// `127.0.0.1[:port]`, `::1` / `[::1][:port]`, and RFC 1918 IPv4 addresses.
pub(super) fn plain_http_capable(host: &str) -> bool {
    let strip_port = |rest: &str| -> bool {
        rest.is_empty()
            || rest.strip_prefix(':').is_some_and(|p| {
                (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
            })
    };
    if host.starts_with("localhost:") {
        return true;
    }
    if let Some(at) = host.rfind(".localhost") {
        if strip_port(&host[at + ".localhost".len()..]) {
            return true;
        }
    }
    if let Some(rest) = host.strip_prefix("127.0.0.1") {
        if strip_port(rest) {
            return true;
        }
    }
    if host == "::1" || host.strip_prefix("[::1]").is_some_and(strip_port) {
        return true;
    }
    let first = host.split(':').next().unwrap_or_default();
    match first.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            let o = ip.octets();
            o[0] == 10 || (o[0] == 172 && (16..32).contains(&o[1])) || (o[0] == 192 && o[1] == 168)
        }
        Err(_) => false,
    }
}

/// What this process knows of each registry origin's auth, from its first answer: later
/// sessions with that origin answer its challenge before their first request (a bearer token
/// for `repository:<name>:pull` from the same realm, or Basic credentials), as Docker's client
/// does after its `/v2/` ping, instead of spending a refused request per repository. While
/// the first session's first request is on its way, the sessions that start meanwhile wait
/// for its answer rather than each meeting the challenge themselves.
static ORIGIN_AUTH: Lessons<OriginAuth> = Lessons::new();

#[derive(Clone)]
enum OriginAuth {
    /// The origin challenges unauthenticated requests so.
    Challenges(Challenge),
    /// The origin answered an unauthenticated request without a challenge.
    Open,
}

/// The scheme found for a fallback-capable host, per API host, for this process.
static RESOLVED_SCHEMES: LazyLock<Mutex<HashMap<String, &'static str>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Target {
    pub fn new(api_host: &str, repository: &str, insecure: bool) -> Result<Target, ScanError> {
        let scheme = if insecure { "http" } else { "https" };
        let base =
            Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| ScanError::Options {
                registry: api_host.to_string(),
                reason: format!("registry host is not a valid URL authority: {e}"),
            })?;
        Ok(Target {
            registry: api_host.to_string(),
            repository: repository.to_string(),
            base,
            client_identity: false,
            proxy: None,
            fallback_http: !insecure && plain_http_capable(api_host),
        })
    }

    pub fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        u.set_path(path);
        u
    }

    /// Same scheme, host and port as the registry.
    pub fn same_origin(&self, u: &Url) -> bool {
        u.scheme() == self.base.scheme()
            && u.host_str() == self.base.host_str()
            && u.port_or_known_default() == self.base.port_or_known_default()
    }

    pub fn options_error(&self, reason: String) -> ScanError {
        ScanError::Options {
            registry: self.registry.clone(),
            reason,
        }
    }

    pub fn decode_error(&self, step: &'static str, reason: String) -> ScanError {
        ScanError::Decode {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            step,
            reason,
        }
    }

    pub fn auth_error(&self, mut reason: String) -> ScanError {
        // Over plain HTTP a proxy that refuses its credentials may answer 401 itself
        // (tinyproxy does), which reads like the registry's refusal.
        if let Some(proxy) = &self.proxy {
            reason.push_str(&format!(
                " (through the proxy {proxy}; the proxy may be the one refusing)"
            ));
        }
        ScanError::Auth {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason,
        }
    }

    /// The error for a proxy that refused us (407, or a refused `CONNECT`).
    pub fn proxy_error(&self, reason: String) -> ScanError {
        ScanError::Proxy {
            proxy: self.proxy.clone().unwrap_or_default(),
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason,
        }
    }

    /// Classifies a transport error by walking its source chain (proxy, TLS, connection).
    pub fn transport_error(&self, e: &reqwest::Error) -> ScanError {
        let mut chain = Vec::new();
        let mut cur: Option<&dyn std::error::Error> = Some(e);
        while let Some(err) = cur {
            chain.push(err.to_string());
            cur = err.source();
        }
        let all = chain.join(": ").to_ascii_lowercase();
        if self.proxy.is_some() {
            if all.contains("proxy authorization required") {
                return self.proxy_error(
                    "the proxy refused the credentials (HTTP 407 Proxy Authentication Required)"
                        .into(),
                );
            }
            if all.contains("tunnel") || all.contains("unsuccessful") {
                return self.proxy_error(format!(
                    "the proxy refused to open a tunnel (CONNECT) to {}: wrong proxy \
                     credentials, or the destination is not allowed",
                    self.registry
                ));
            }
        }
        // rustls names errors and alerts in CamelCase ("UnknownIssuer", "CertificateRequired").
        let squashed: String = all.chars().filter(|c| !c.is_whitespace()).collect();
        let tls_reason = if all.contains("hostname mismatch") || all.contains("not valid for name")
        {
            Some("certificate does not match the host name".to_string())
        } else if squashed.contains("unknownissuer")
            || all.contains("certificate verify failed")
            || all.contains("self-signed certificate")
            || all.contains("self signed certificate")
            || all.contains("invalid peer certificate")
        {
            Some("certificate not trusted".to_string())
        } else if squashed.contains("certificaterequired")
            || squashed.contains("badcertificate")
            || squashed.contains("unknownca")
            || squashed.contains("handshakefailure")
        {
            Some("handshake refused (client certificate missing or not accepted)".to_string())
        } else if all.contains("no ca certificates") {
            Some("no CA certificates to verify with (none on the system, no ca.crt)".into())
        } else if all.contains("corrupt message") || all.contains("invalidcontenttype") {
            Some(
                "the server does not speak TLS (a plain-HTTP registry needs insecure: true)".into(),
            )
        } else if all.contains("ssl") || all.contains("tls") || all.contains("handshake") {
            Some(format!(
                "handshake failed ({})",
                chain.last().cloned().unwrap_or_default()
            ))
        } else {
            None
        };
        if let Some(reason) = tls_reason {
            return ScanError::Tls {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                reason,
            };
        }
        // The innermost cause is the informative one (e.g. "Connection refused").
        let mut reason = if e.is_timeout() {
            "request timed out".to_string()
        } else {
            chain
                .iter()
                .rev()
                .find(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| "transport error".into())
        };
        // With TLS 1.3 a server that wants a client certificate just closes the connection
        // after the handshake; the alert does not reach us.
        if self.base.scheme() == "https"
            && !self.client_identity
            && all.contains("connection closed")
        {
            reason.push_str(
                " (if the registry requires a client certificate, provide tls.crt and tls.key)",
            );
        }
        if let Some(proxy) = &self.proxy {
            reason.push_str(&format!(" (through the proxy {proxy})"));
        }
        ScanError::Connect {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason,
        }
    }

    pub fn status_error(&self, step: &'static str, status: StatusCode, body: &[u8]) -> ScanError {
        match status.as_u16() {
            407 => self.proxy_error(format!(
                "{step}: the proxy refused the credentials (HTTP 407 Proxy Authentication Required)"
            )),
            401 | 403 => self.auth_error(format!("{step} answered HTTP {}", status.as_u16())),
            404 => ScanError::NotFound {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
            },
            s => ScanError::Status {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                step,
                status: s,
                detail: error_detail(body),
            },
        }
    }
}

/// The first `code: message` of a distribution error body, shortened; empty if none.
pub(super) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(e) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let Some(first) = e.errors.first() else {
        return String::new();
    };
    let mut s = format!(": {} {}", first.code, first.message);
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s.trim_end().to_string()
}

/// Clients by TLS configuration (user CA, client identity), proxy and tokio runtime (pooled
/// connections belong to the runtime that opened them): a shared client keeps its connections
/// alive across scans. (System roots are read once per process, at the first TLS handshake.)
type ClientKey = (
    Option<tokio::runtime::Id>,
    Option<Vec<u8>>,
    Option<(Vec<u8>, Vec<u8>)>,
    Duration,
    Option<ProxyConfig>,
);
static CLIENTS: LazyLock<Mutex<HashMap<ClientKey, reqwest::Client>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// More distinct TLS configurations than this and the cache starts over.
const MAX_CACHED_CLIENTS: usize = 64;

/// The HTTP client for these options: system roots plus the user CA, optional client identity.
pub(super) fn http_client(
    target: &Target,
    options: &ScanOptions,
) -> Result<reqwest::Client, ScanError> {
    let key: ClientKey = (
        tokio::runtime::Handle::try_current().ok().map(|h| h.id()),
        options.ca_pem.clone(),
        options
            .client_identity
            .as_ref()
            .map(|i| (i.cert_pem.clone(), i.key_pem.clone())),
        connect_timeout(options),
        options.proxy.clone(),
    );
    if let Some(c) = CLIENTS.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let client = build_http(target, options)?;
    let mut cache = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_CACHED_CLIENTS {
        cache.clear();
    }
    cache.insert(key, client.clone());
    Ok(client)
}

fn connect_timeout(options: &ScanOptions) -> Duration {
    options.timeout.min(Duration::from_secs(30))
}

/// Builds an HTTP client: system roots plus the user CA, optional client identity.
fn build_http(target: &Target, options: &ScanOptions) -> Result<reqwest::Client, ScanError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("tagline/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::limited(5))
        .connect_timeout(connect_timeout(options))
        // reqwest reads the environment as curl does; Flux (Go) reads it differently.
        .no_proxy();
    match &options.proxy {
        Some(config) => b = b.proxy(super::proxy::configured(config, &target.registry)?),
        None => {
            if let Some(p) = super::proxy::from_environment() {
                b = b.proxy(p);
            }
        }
    }
    let tls = super::tls::client_config(
        options.ca_pem.as_deref(),
        options
            .client_identity
            .as_ref()
            .map(|i| (i.cert_pem.as_slice(), i.key_pem.as_slice())),
    )
    .map_err(|reason| target.options_error(reason))?;
    b = b.tls_backend_preconfigured(tls);
    b.build()
        .map_err(|e| target.options_error(format!("cannot build the HTTP client: {e}")))
}

/// A session: the client, the target, the current `Authorization` header, retry state.
pub(super) struct Session<'a> {
    pub http: reqwest::Client,
    pub target: Target,
    pub credentials: Option<&'a Credentials>,
    pub authorization: Option<HeaderValue>,
    pub retry: RetryPolicy,
    pub clock: &'a dyn Clock,
    pub deadline: std::time::SystemTime,
    /// The last rate-limit headers the registry sent.
    pub rate_limit: Option<RateLimit>,
    /// Tokens fetched from the token server in this session.
    pub token_fetches: u32,
    /// How hard requests may press each host.
    pub manners: Manners,
    /// Where requests are counted, if anywhere.
    pub requests: Option<super::RequestLog>,
    /// Set while this session's first request learns the origin's auth for the others.
    learner: Option<Pupil<OriginAuth>>,
}

impl<'a> Session<'a> {
    pub fn new(
        http: reqwest::Client,
        target: Target,
        options: &'a ScanOptions,
        clock: &'a dyn Clock,
        deadline: std::time::SystemTime,
    ) -> Session<'a> {
        let mut s = Session {
            http,
            target,
            credentials: options.credentials.as_ref(),
            authorization: None,
            retry: options.retry,
            clock,
            deadline,
            rate_limit: None,
            token_fetches: 0,
            manners: options.manners,
            requests: options.requests.clone(),
            learner: None,
        };
        // A token from an earlier scan, if still valid: no challenge round trip.
        if let Some(tok) = cached_token(&s.token_key(), clock.now()) {
            s.authorization = header_value(&format!("Bearer {tok}"), &s.target).ok();
        }
        s
    }

    /// For a fallback-capable host: HTTPS if `GET /v2/` connects over it, else plain HTTP if
    /// that connects (go-containerregistry pings both; its winner is used for the whole
    /// operation). Learnt once per host and process. Any other host: nothing to do.
    pub async fn resolve_scheme(&mut self) {
        if !self.target.fallback_http {
            return;
        }
        let known = RESOLVED_SCHEMES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.target.registry)
            .copied();
        let scheme = match known {
            Some(s) => s,
            None => {
                let ping = |scheme: &str| {
                    let mut u = self.target.base.clone();
                    let _ = u.set_scheme(scheme);
                    u.set_path("/v2/");
                    self.http.get(u).send()
                };
                // HTTPS that connects at all wins; plain HTTP must answer like a registry
                // (200 or 401, as go-containerregistry requires), not e.g. a TLS server's 400.
                let http_ok = |r: Result<Response, reqwest::Error>| {
                    r.is_ok_and(|r| matches!(r.status().as_u16(), 200 | 401))
                };
                let https = ping("https").await;
                // A proxy that refuses us says nothing about the registry's HTTPS.
                if let Err(e) = &https {
                    if matches!(self.target.transport_error(e), ScanError::Proxy { .. }) {
                        return;
                    }
                }
                let scheme = if https.is_ok() {
                    "https"
                } else if http_ok(ping("http").await) {
                    "http"
                } else {
                    // Neither answers: report the HTTPS failure from the real request.
                    return;
                };
                RESOLVED_SCHEMES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.target.registry.clone(), scheme);
                scheme
            }
        };
        if self.target.base.scheme() != scheme {
            let _ = self.target.base.set_scheme(scheme);
            self.authorization = cached_token(&self.token_key(), self.clock.now())
                .and_then(|tok| header_value(&format!("Bearer {tok}"), &self.target).ok());
        }
    }

    /// Answers the challenge this origin is known to send (see [`ORIGIN_AUTH`]) before the
    /// first request, when no token is cached: saves the refused request per repository.
    /// The first session with an origin not known yet learns it; sessions starting while it
    /// does wait for its answer. A failure here is not an error: the request then meets the
    /// challenge as usual.
    pub async fn preauthorize(&mut self) {
        if self.authorization.is_some() {
            return;
        }
        let origin = self.target.base.origin().ascii_serialization();
        let challenge = match ORIGIN_AUTH.ask(&origin).await {
            Answer::Known(OriginAuth::Challenges(c)) => c,
            Answer::Known(OriginAuth::Open) | Answer::Unknown => return,
            Answer::Learn(pupil) => {
                self.learner = Some(pupil);
                return;
            }
        };
        match challenge {
            Challenge::Bearer { realm, service, .. } => {
                let scope = format!("repository:{}:pull", self.target.repository);
                match self
                    .fetch_token(&realm, service.as_deref(), Some(&scope))
                    .await
                {
                    Ok((token, expires_in)) => {
                        if let Ok(v) = header_value(&format!("Bearer {token}"), &self.target) {
                            self.authorization = Some(v);
                            self.token_fetches += 1;
                            store_token(self.token_key(), token, expires_in, self.clock.now());
                        }
                    }
                    Err(e) => tracing::debug!(
                        registry = %self.target.registry,
                        repository = %self.target.repository,
                        "no token ahead of the first request: {e}"
                    ),
                }
            }
            Challenge::Basic => {
                if let Some(Credentials::Basic { username, password }) = self.credentials {
                    self.authorization = basic_header(username, password, &self.target).ok();
                }
            }
        }
    }

    /// After the learner's first answer other than a 401 (which [`Session::answer`] learns
    /// from): an unauthenticated request the origin served (or found nothing for) means it
    /// sends no challenge. Either way the waiting sessions go on.
    fn learnt_from(&mut self, status: Option<StatusCode>) {
        let Some(pupil) = self.learner.take() else {
            return;
        };
        let open = status.is_some_and(|s| s.is_success() || s == StatusCode::NOT_FOUND);
        if open && self.authorization.is_none() {
            pupil.learnt(OriginAuth::Open);
        }
    }

    fn token_key(&self) -> TokenKey {
        token_key(
            &self.target.base.origin().ascii_serialization(),
            &self.target.repository,
            self.credentials,
        )
    }

    /// Sends a request with retries (408, 429, 5xx, connection failures), answering an auth
    /// challenge on the way. Returns the first response that is not worth retrying.
    pub async fn request(
        &mut self,
        method: Method,
        url: &Url,
        accept: &[&str],
        step: &'static str,
    ) -> Result<Response, ScanError> {
        let mut retrier = Retrier::new(self.retry, self.clock, self.deadline);
        loop {
            let (error, retry_after) =
                match self.authorized(method.clone(), url, accept, step).await {
                    Ok(resp) if is_retryable_status(resp.status().as_u16()) => {
                        let status = resp.status();
                        let retry_after = resp
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, self.clock.now()));
                        let body = read_capped(resp, 64 * 1024, &self.target)
                            .await
                            .unwrap_or_default();
                        let error = if status == StatusCode::TOO_MANY_REQUESTS {
                            ScanError::RateLimited {
                                registry: self.target.registry.clone(),
                                repository: self.target.repository.clone(),
                                attempts: 0,
                                retry_after,
                                rate_limit: self.rate_limit.clone(),
                            }
                        } else {
                            self.target.status_error(step, status, &body)
                        };
                        (error, retry_after)
                    }
                    Ok(resp) => return Ok(resp),
                    Err(e @ (ScanError::Connect { .. } | ScanError::Status { .. }))
                        if e.is_retryable() =>
                    {
                        (e, None)
                    }
                    Err(e) => return Err(e),
                };
            match retrier.after_failure(retry_after) {
                Some(delay) => {
                    tracing::debug!(
                        registry = %self.target.registry,
                        repository = %self.target.repository,
                        attempt = retrier.attempts(),
                        ?delay,
                        "retrying: {error}"
                    );
                    self.clock.sleep(delay).await
                }
                None => return Err(retrier.give_up(error)),
            }
        }
    }

    async fn send_once(
        &mut self,
        method: Method,
        url: &Url,
        accept: &[&str],
    ) -> Result<Response, ScanError> {
        let mut req = self.http.request(method, url.clone());
        if !accept.is_empty() {
            req = req.header(ACCEPT, accept.join(", "));
        }
        // Credentials go to the registry's own origin only.
        if let Some(a) = &self.authorization {
            if self.target.same_origin(url) {
                req = req.header(AUTHORIZATION, a.clone());
            }
        }
        let host = url.authority().to_string();
        limit::for_host(&host, self.manners).pace(self.clock).await;
        let sent = req.send().await;
        if let Some(log) = &self.requests {
            let status = sent.as_ref().map(|r| r.status().as_u16().to_string());
            log.record(&host, status.as_deref().unwrap_or("error"));
        }
        let resp = sent.map_err(|e| self.target.transport_error(&e))?;
        record_rate_limit(resp.headers(), &mut self.rate_limit);
        Ok(resp)
    }

    /// Sends a request, answering one auth challenge (401) if the registry sends one.
    /// A 401/403 after that is an `Auth` error; other statuses are returned to the caller.
    async fn authorized(
        &mut self,
        method: Method,
        url: &Url,
        accept: &[&str],
        step: &'static str,
    ) -> Result<Response, ScanError> {
        let resp = self.send_once(method.clone(), url, accept).await;
        let resp = match resp {
            Ok(r) if r.status() == StatusCode::UNAUTHORIZED => r,
            other => {
                self.learnt_from(other.as_ref().ok().map(Response::status));
                other?
            }
        };
        if resp.status() != StatusCode::UNAUTHORIZED {
            if resp.status() == StatusCode::FORBIDDEN {
                return Err(self.target.auth_error(format!("{step} answered HTTP 403")));
            }
            return Ok(resp);
        }
        let challenges = challenges(resp.headers());
        drop(resp);
        self.answer(&challenges, step).await?;
        let resp = self.send_once(method, url, accept).await?;
        match resp.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self
                .target
                .auth_error(format!("{step} answered HTTP {}", resp.status().as_u16()))),
            _ => Ok(resp),
        }
    }

    /// Sets `authorization` from the challenge: a bearer token or Basic credentials.
    async fn answer(
        &mut self,
        challenges: &[Challenge],
        step: &'static str,
    ) -> Result<(), ScanError> {
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => Some((realm, service, scope)),
            Challenge::Basic => None,
        });
        let origin = self.target.base.origin().ascii_serialization();
        if let Some((realm, service, scope)) = bearer {
            ORIGIN_AUTH.set(
                &origin,
                OriginAuth::Challenges(Challenge::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                    scope: None,
                }),
            );
            self.learner = None;
            let (token, expires_in) = self
                .fetch_token(realm, service.as_deref(), scope.as_deref())
                .await?;
            self.authorization = Some(header_value(&format!("Bearer {token}"), &self.target)?);
            self.token_fetches += 1;
            store_token(self.token_key(), token, expires_in, self.clock.now());
            return Ok(());
        }
        if challenges.contains(&Challenge::Basic) {
            ORIGIN_AUTH.set(&origin, OriginAuth::Challenges(Challenge::Basic));
            self.learner = None;
            return match self.credentials {
                Some(Credentials::Basic { username, password }) => {
                    self.authorization = Some(basic_header(username, password, &self.target)?);
                    Ok(())
                }
                Some(Credentials::IdentityToken(_)) => Err(self.target.auth_error(
                    "the registry asks for Basic auth; an identity token cannot answer it".into(),
                )),
                None => Err(self.target.auth_error(format!(
                    "{step} needs credentials (Basic challenge), none given"
                ))),
            };
        }
        self.learner = None;
        Err(self.target.auth_error(format!(
            "{step} answered HTTP 401 without a usable challenge"
        )))
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(String, Option<u64>), ScanError> {
        let mut url = Url::parse(realm).map_err(|_| {
            self.target
                .auth_error("the bearer challenge's realm is not a URL".into())
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(self
                .target
                .auth_error("the bearer challenge's realm is not an http(s) URL".into()));
        }
        // An HTTPS registry pointing at a plain-HTTP realm would have the secret sent in clear.
        if url.scheme() == "http"
            && self.target.base.scheme() == "https"
            && self.credentials.is_some()
        {
            return Err(self.target.auth_error(format!(
                "refusing to send credentials to the plain-HTTP token realm {}",
                url.origin().ascii_serialization()
            )));
        }
        let default_scope = format!("repository:{}:pull", self.target.repository);
        let scope = scope.unwrap_or(&default_scope);
        let realm_host = url.host_str().unwrap_or_default().to_string();
        let realm_authority = url.authority().to_string();
        let req = match self.credentials {
            Some(Credentials::IdentityToken(token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "tagline"),
                    ("refresh_token", token.as_str()),
                    ("scope", scope),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                self.http
                    .post(url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body)
            }
            creds => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let mut req = self.http.get(url);
                if let Some(Credentials::Basic { username, password }) = creds {
                    req = req.header(
                        AUTHORIZATION,
                        basic_header(username, password, &self.target)?,
                    );
                }
                req
            }
        };
        limit::for_host(&realm_authority, self.manners)
            .pace(self.clock)
            .await;
        let resp = req
            .send()
            .await
            .map_err(|e| self.target.transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_capped(resp, 64 * 1024, &self.target)
                .await
                .unwrap_or_default();
            let msg = format!(
                "token request to {realm_host} answered HTTP {}{}",
                status.as_u16(),
                error_detail(&body)
            );
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(ScanError::Status {
                    registry: self.target.registry.clone(),
                    repository: self.target.repository.clone(),
                    step: "token request",
                    status: status.as_u16(),
                    detail: format!(" ({msg})"),
                });
            }
            return Err(self.target.auth_error(msg));
        }
        let body = read_capped(resp, TOKEN_BODY_LIMIT, &self.target).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            self.target
                .decode_error("token response", "not a JSON token object".into())
        })?;
        let expires_in = parsed.expires_in;
        let token = parsed.into_token().ok_or_else(|| {
            self.target
                .auth_error(format!("token response from {realm_host} holds no token"))
        })?;
        Ok((token, expires_in))
    }
}

fn parse_leading_u64(v: &str) -> Option<u64> {
    let d: String = v
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    d.parse().ok()
}

/// Records `RateLimit-Limit`/`-Remaining` (Docker Hub: `ratelimit-remaining: 76;w=21600`) or
/// the `X-RateLimit-*` variants, if present.
pub(super) fn record_rate_limit(headers: &HeaderMap, into: &mut Option<RateLimit>) {
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| headers.get(*n))
            .and_then(|v| v.to_str().ok())
            .and_then(parse_leading_u64)
    };
    let limit = get(&["ratelimit-limit", "x-ratelimit-limit"]);
    let remaining = get(&["ratelimit-remaining", "x-ratelimit-remaining"]);
    if limit.is_some() || remaining.is_some() {
        *into = Some(RateLimit { limit, remaining });
    }
}

fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

fn header_value(s: &str, target: &Target) -> Result<HeaderValue, ScanError> {
    let mut v = HeaderValue::from_str(s).map_err(|_| {
        target.auth_error("credentials hold characters not allowed in a header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn basic_header(user: &str, pass: &str, target: &Target) -> Result<HeaderValue, ScanError> {
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    header_value(&format!("Basic {enc}"), target)
}

/// Reads a body, stopping with `TooLarge` as soon as it exceeds `limit` bytes.
pub(super) async fn read_capped(
    mut resp: Response,
    limit: u64,
    target: &Target,
) -> Result<Vec<u8>, ScanError> {
    let too_large = || ScanError::TooLarge {
        registry: target.registry.clone(),
        repository: target.repository.clone(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(resp.content_length().unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(|e| target.transport_error(&e))? {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_fallback_hosts_are_go_containerregistrys() {
        for host in [
            "localhost:5000",
            "registry.localhost",
            "registry.localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "::1",
            "[::1]:5000",
            "10.1.2.3:5000",
            "172.16.0.1",
            "172.31.255.255:443",
            "192.168.1.10:5000",
        ] {
            assert!(plain_http_capable(host), "{host}");
        }
        for host in [
            "localhost",
            "LOCALHOST:5000",
            "registry.local:5000",
            "127.0.0.2:5000",
            "172.32.0.1",
            "192.169.0.1",
            "11.0.0.1",
            "ghcr.io",
            "registry-1.docker.io",
            "localhost.example.com:5000",
        ] {
            assert!(!plain_http_capable(host), "{host}");
        }
        assert!(
            !Target::new("127.0.0.1:5000", "a", true)
                .unwrap()
                .fallback_http
        );
        assert!(
            Target::new("127.0.0.1:5000", "a", false)
                .unwrap()
                .fallback_http
        );
        assert!(!Target::new("ghcr.io", "a", false).unwrap().fallback_http);
    }
}
