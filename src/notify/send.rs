//! Sending one event to one Provider as notification-controller does: the Provider's Secrets
//! read the way Flux reads them, the body built per type, retries within the Provider's
//! timeout. Nothing secret (token, address, headers, proxy) reaches an error or a log.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::event::{go_json, Event};
use super::{slack, NotifyError};
use crate::api::notification::{Provider, ProviderType};
use crate::api::{Config, NamespacedName, Secret};

/// Header naming the sending controller (Flux's `NotificationHeader`).
pub const COMPONENT_HEADER: &str = "gotk-component";
/// Header carrying `sha256=<hex HMAC>` for `generic-hmac`.
pub const SIGNATURE_HEADER: &str = "X-Signature";
/// Slack's Web API endpoint, whose answers are checked for `"ok": true`.
pub const SLACK_API: &str = "https://slack.com/api/chat.postMessage";

/// Retries after the first attempt (Flux: go-retryablehttp `RetryMax` 4).
const RETRIES: u32 = 4;
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A Provider resolved against its Secrets: everything needed to send. `Debug` shows no
/// secret.
#[derive(Clone)]
pub struct Target {
    pub provider: NamespacedName,
    pub provider_type: ProviderType,
    url: String,
    token: Option<Vec<u8>>,
    headers: BTreeMap<String, String>,
    channel: String,
    username: String,
    proxy: Option<String>,
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    pub timeout: Duration,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("provider", &self.provider)
            .field("type", &self.provider_type)
            .field("channel", &self.channel)
            .field("username", &self.username)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field("has_token", &self.token.is_some())
            .field("has_proxy", &self.proxy.is_some())
            .field("has_ca", &self.ca.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn secret<'a>(
    config: &'a Config,
    provider: &NamespacedName,
    name: &str,
) -> Result<&'a Secret, NotifyError> {
    config
        .secrets
        .get(&NamespacedName::new(provider.namespace.clone(), name))
        .ok_or_else(|| NotifyError::SecretNotFound {
            provider: provider.clone(),
            secret: name.to_string(),
        })
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Resolves `provider` as Flux's `createNotifier` does: `spec.address`, replaced by the
/// Secret's `address`; `token`, `headers` (a YAML map), `username` with `password`, and the
/// deprecated `proxy` key from `secretRef`; the proxy from `proxySecretRef` (`address`,
/// `username`, `password`); `ca.crt` (and `tls.crt` + `tls.key`) from `certSecretRef`.
pub fn resolve(config: &Config, provider: &Provider) -> Result<Target, NotifyError> {
    let id = &provider.id;
    let mut url = provider.address.clone();
    let mut token = None;
    let mut headers = BTreeMap::new();
    let mut username = provider.username.clone();
    let mut proxy = (!provider.proxy.is_empty()).then(|| provider.proxy.clone());
    if let Some(name) = &provider.secret_ref {
        let s = secret(config, id, name)?;
        if let Some(a) = s.data.get("address") {
            if a.len() > 2048 {
                return Err(NotifyError::InvalidSecret {
                    provider: id.clone(),
                    secret: name.clone(),
                    key: "address",
                    cause: "longer than 2048 bytes".into(),
                });
            }
            url = text(a).trim().to_string();
        }
        if let Some(p) = s.data.get("proxy") {
            proxy = Some(text(p).trim().to_string());
        }
        if let Some(h) = s.data.get("headers") {
            headers = serde_yaml_ng::from_slice(h).map_err(|_| NotifyError::InvalidSecret {
                provider: id.clone(),
                secret: name.clone(),
                key: "headers",
                cause: "not a YAML map of strings".into(),
            })?;
        }
        token = s.data.get("token").cloned();
        if let (Some(u), Some(_)) = (s.data.get("username"), s.data.get("password")) {
            username = text(u);
        }
    }
    if let Some(name) = &provider.proxy_secret_ref {
        let s = secret(config, id, name)?;
        let bad = |cause: &str| NotifyError::InvalidSecret {
            provider: id.clone(),
            secret: name.clone(),
            key: "address",
            cause: cause.to_string(),
        };
        let address = s.data.get("address").ok_or_else(|| bad("missing"))?;
        let mut u = url::Url::parse(text(address).trim()).map_err(|_| bad("not a URL"))?;
        if let Some(user) = s.data.get("username") {
            u.set_username(&text(user))
                .map_err(|_| bad("cannot hold a user"))?;
            if let Some(pass) = s.data.get("password") {
                u.set_password(Some(&text(pass)))
                    .map_err(|_| bad("cannot hold a password"))?;
            }
        }
        proxy = Some(u.to_string());
    }
    let (mut ca, mut identity) = (None, None);
    if let Some(name) = &provider.cert_secret_ref {
        let s = secret(config, id, name)?;
        let get = |k: &str, legacy: &str| s.data.get(k).or_else(|| s.data.get(legacy)).cloned();
        ca = get("ca.crt", "caFile");
        match (get("tls.crt", "certFile"), get("tls.key", "keyFile")) {
            (Some(c), Some(k)) => identity = Some((c, k)),
            (None, None) => {}
            _ => {
                return Err(NotifyError::InvalidSecret {
                    provider: id.clone(),
                    secret: name.clone(),
                    key: "tls.crt",
                    cause: "tls.crt and tls.key must come together".into(),
                })
            }
        }
    }
    match &provider.provider_type {
        ProviderType::Unsupported(t) => {
            return Err(NotifyError::UnsupportedType {
                provider: id.clone(),
                provider_type: t.clone(),
            })
        }
        ProviderType::GenericHmac if token.as_deref().is_none_or(<[u8]>::is_empty) => {
            return Err(NotifyError::EmptyHmacKey {
                provider: id.clone(),
            })
        }
        _ => {}
    }
    let parsed = url::Url::parse(&url).map_err(|_| NotifyError::InvalidAddress {
        provider: id.clone(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(NotifyError::InvalidAddress {
            provider: id.clone(),
        });
    }
    Ok(Target {
        provider: id.clone(),
        provider_type: provider.provider_type.clone(),
        url,
        token,
        headers,
        channel: provider.channel.clone(),
        username,
        proxy,
        ca,
        identity,
        timeout: provider.timeout,
    })
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` keyed by `key`, as Flux's `generic-hmac`
/// Provider and GitHub-style receivers write it.
pub fn signature(body: &[u8], key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The request one event makes to one target: body and headers, before any IO.
#[derive(Clone)]
pub struct Request {
    pub body: Vec<u8>,
    /// Header name and value; values may be secret, never logged.
    pub headers: Vec<(String, String)>,
}

/// Builds the request `target` gets for `event`.
pub fn request(target: &Target, event: &Event) -> Request {
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let body = match target.provider_type {
        ProviderType::Slack => {
            if let Some(t) = target.token.as_deref().filter(|t| !t.is_empty()) {
                headers.push(("Authorization".into(), format!("Bearer {}", text(t))));
            }
            go_json(&slack::payload(event, &target.username, &target.channel))
        }
        _ => {
            let body = event.to_json();
            headers.push((
                COMPONENT_HEADER.to_string(),
                event.reporting_controller.clone(),
            ));
            for (k, v) in &target.headers {
                headers.push((k.clone(), v.clone()));
            }
            if target.provider_type == ProviderType::GenericHmac {
                let key = target.token.as_deref().unwrap_or_default();
                headers.push((SIGNATURE_HEADER.to_string(), signature(&body, key)));
            }
            body
        }
    };
    Request { body, headers }
}

/// Removes every occurrence of the token (and the address) from an error text.
fn mask(target: &Target, s: &str) -> String {
    let mut out = s.to_string();
    if let Some(t) = target.token.as_deref().map(text) {
        let t = t.trim();
        if !t.is_empty() {
            out = out.replace(t, "*****");
        }
    }
    if !target.url.is_empty() {
        out = out.replace(&target.url, "<address>");
    }
    out
}

fn client(target: &Target) -> Result<reqwest::Client, NotifyError> {
    let tls = |cause: String| NotifyError::Tls {
        provider: target.provider.clone(),
        cause,
    };
    let mut b = reqwest::Client::builder().connect_timeout(target.timeout);
    // A ca.crt replaces the system roots, as in Flux.
    let config = crate::scanner::tls_client_config(
        target.ca.as_deref(),
        target
            .identity
            .as_ref()
            .map(|(cert, key)| (cert.as_slice(), key.as_slice())),
        target.ca.is_none(),
    )
    .map_err(tls)?;
    b = b.tls_backend_preconfigured(config);
    if let Some(p) = &target.proxy {
        let proxy = reqwest::Proxy::all(p).map_err(|_| NotifyError::InvalidProxy {
            provider: target.provider.clone(),
        })?;
        b = b.proxy(proxy);
    }
    b.build().map_err(|e| tls(e.without_url().to_string()))
}

/// Whether go-retryablehttp's default policy retries this status.
fn retry_status(status: u16) -> bool {
    status == 429 || (status >= 500 && status != 501)
}

/// Sends `event` to `target`: up to four retries on connection errors (not on an untrusted
/// certificate), 429 and 5xx but 501 (waiting 2s, 4s, 8s, ... at most 30s, or the
/// `Retry-After` seconds of a 429 or 503), all within the Provider's timeout.
pub async fn send(target: &Target, event: &Event) -> Result<(), NotifyError> {
    let req = request(target, event);
    let client = client(target)?;
    // The last failed attempt, kept outside the attempts so a timeout can say what it was.
    let last = std::sync::Mutex::new(None::<NotifyError>);
    let attempts = async {
        let mut retry_after = None;
        for attempt in 0..=RETRIES {
            if attempt > 0 {
                let backoff = RETRY_MIN.saturating_mul(1 << (attempt - 1)).min(RETRY_MAX);
                tokio::time::sleep(retry_after.take().unwrap_or(backoff)).await;
            }
            let mut r = client.post(&target.url).body(req.body.clone());
            for (k, v) in &req.headers {
                r = r.header(k.as_str(), v.as_str());
            }
            let response = match r.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    let e = e.without_url();
                    let cause = mask(target, &error_chain(&e));
                    // As go-retryablehttp: an untrusted certificate will not become trusted.
                    // (rustls says "invalid peer certificate: UnknownIssuer" and the like.)
                    let hopeless = cause.contains("invalid peer certificate")
                        || cause.contains("certificate verify failed");
                    let err = NotifyError::Post {
                        provider: target.provider.clone(),
                        cause,
                    };
                    if hopeless {
                        return Err(err);
                    }
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                    continue;
                }
            };
            let status = response.status().as_u16();
            if status == 429 || status == 503 {
                retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
            }
            let body = response.text().await.unwrap_or_default();
            if (200..300).contains(&status) {
                if target.provider_type == ProviderType::Slack && target.url == SLACK_API {
                    return slack_ok(target, &body);
                }
                return Ok(());
            }
            let body: String = body.chars().take(200).collect();
            let err = NotifyError::Rejected {
                provider: target.provider.clone(),
                status,
                body: mask(target, &body),
            };
            if !retry_status(status) {
                return Err(err);
            }
            *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
        }
        Err(last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("at least one attempt ran"))
    };
    let result = tokio::time::timeout(target.timeout, attempts).await;
    result.unwrap_or_else(|_| {
        Err(NotifyError::Timeout {
            provider: target.provider.clone(),
            after: target.timeout,
            last: last
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .map(|e| format!(" (last attempt: {e})"))
                .unwrap_or_default(),
        })
    })
}

fn slack_ok(target: &Target, body: &str) -> Result<(), NotifyError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        ok: bool,
        #[serde(default)]
        error: String,
    }
    match serde_json::from_str::<Answer>(body) {
        Ok(a) if a.ok => Ok(()),
        Ok(a) => Err(NotifyError::Slack {
            provider: target.provider.clone(),
            error: mask(target, &a.error),
        }),
        Err(_) => Err(NotifyError::Slack {
            provider: target.provider.clone(),
            error: "unreadable answer".into(),
        }),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Origin;

    fn provider(t: ProviderType, address: &str, secret: Option<&str>) -> Provider {
        Provider {
            id: NamespacedName::new("flux-system", "p"),
            origin: Origin {
                file: "p.yaml".into(),
                document: 1,
            },
            provider_type: t,
            address: address.into(),
            channel: String::new(),
            username: String::new(),
            timeout: Duration::from_secs(15),
            proxy: String::new(),
            proxy_secret_ref: None,
            secret_ref: secret.map(str::to_string),
            cert_secret_ref: None,
            suspend: false,
        }
    }

    fn config_with_secret(data: &[(&str, &str)]) -> Config {
        let mut c = Config::default();
        let id = NamespacedName::new("flux-system", "s");
        c.secrets.insert(
            id.clone(),
            Secret {
                id,
                secret_type: None,
                data: data
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect(),
            },
        );
        c
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"what do ya want for nothing?", b"Jefe"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_secret_supplies_address_token_and_headers() {
        let c = config_with_secret(&[
            ("address", " http://127.0.0.1:1/hook/s3cret-path \n"),
            ("token", "t0ken"),
            ("headers", "X-Team: a\nX-Env: prod\n"),
        ]);
        let p = provider(ProviderType::GenericHmac, "", Some("s"));
        let t = resolve(&c, &p).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:1/hook/s3cret-path");
        assert_eq!(t.headers["X-Env"], "prod");
        let debug = format!("{t:?}");
        assert!(
            !debug.contains("t0ken") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn resolution_errors_name_the_provider_and_hide_the_secret() {
        let c = config_with_secret(&[("address", "not a url s3cret")]);
        let p = provider(ProviderType::Generic, "", Some("s"));
        let e = resolve(&c, &p).unwrap_err().to_string();
        assert!(e.contains("flux-system/p"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = resolve(&c, &provider(ProviderType::Generic, "", Some("missing")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Secret flux-system/missing"), "{e}");
        let c = config_with_secret(&[("token", "")]);
        let p = provider(ProviderType::GenericHmac, "http://127.0.0.1:1/", Some("s"));
        assert!(matches!(
            resolve(&c, &p),
            Err(NotifyError::EmptyHmacKey { .. })
        ));
        let p = provider(
            ProviderType::Unsupported("msteams".into()),
            "http://x/",
            None,
        );
        assert!(matches!(
            resolve(&c, &p),
            Err(NotifyError::UnsupportedType { .. })
        ));
    }

    #[test]
    fn error_texts_are_masked() {
        let c = config_with_secret(&[("token", "t0ken\n")]);
        let p = provider(ProviderType::Slack, "http://127.0.0.1:1/x", Some("s"));
        let t = resolve(&c, &p).unwrap();
        assert_eq!(
            mask(&t, "bad token t0ken at http://127.0.0.1:1/x"),
            "bad token ***** at <address>"
        );
    }
}
