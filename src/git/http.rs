//! tagline's own smart-HTTP transport for libgit2, used for HTTP(S) remotes that need what
//! libgit2's built-in transport cannot do right: a client certificate (`tls.crt` + `tls.key`),
//! a proxy from `proxySecretRef`, or a bearer token on a ref listing. libgit2 has no
//! client-certificate option at all; it connects straight to an `http://` remote although a
//! proxy is configured (libgit2#5650); and through a `CONNECT` proxy it reuses a closed tunnel
//! ("http parser error", libgit2#7081).
//!
//! How: the scheme `tagline+http(s)` is registered once with libgit2 as a smart transport in
//! RPC mode (stateless, as Git's own smart HTTP is); a [`Session`](super::transport::Session)
//! that needs it hands libgit2 the URL with that scheme and sets the client for its thread.
//! Each libgit2 action becomes one request: `GET info/refs?service=...` for a listing, `POST
//! git-upload-pack` / `git-receive-pack` with the body libgit2 wrote for the rest. The client is
//! reqwest (blocking) over the scanner's rustls configuration: system roots plus `ca.crt`, the
//! client identity, the proxy with its credentials; credentials go in an `Authorization` header
//! to the remote's origin only (reqwest drops it on a redirect to another origin).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::sync::{Arc, Once};
use std::time::Duration;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use git2::{ErrorClass, ErrorCode};

use super::{Auth, Remote};

/// The schemes registered with libgit2; the URL handed to libgit2 is `tagline+` + the remote's.
const PREFIX: &str = "tagline+";

/// The client of one session, for the libgit2 operations on this thread.
struct Client {
    http: reqwest::blocking::Client,
    authorization: Option<String>,
    /// The proxy's address without credentials, for errors.
    proxy: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Client>>> = const { RefCell::new(None) };
}

/// Whether `remote` goes through this transport: an HTTP(S) URL with a client identity, a
/// proxy, or a bearer token (libgit2's ref listing cannot send the `Authorization` header, so
/// a run with nothing to do would need a fetch).
pub(crate) fn wanted(remote: &Remote) -> bool {
    let lower = remote.url.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && (remote.client_identity.is_some()
            || remote.proxy.is_some()
            || matches!(remote.auth, Some(Auth::Bearer(_))))
}

/// The URL libgit2 is given for `remote` while `Installed` lives.
pub(crate) fn libgit2_url(url: &str) -> String {
    format!("{PREFIX}{url}")
}

/// The client for this thread's libgit2 operations; when dropped, the one installed before it
/// (a session within a session) is back.
pub(crate) struct Installed {
    previous: Option<Arc<Client>>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Builds the client for `remote` and installs it for this thread. Errors name the problem
/// (never key material or passwords).
pub(crate) fn install(remote: &Remote) -> Result<Installed, String> {
    register();
    let identity = remote
        .client_identity
        .as_ref()
        .map(|c| (c.cert_pem.as_slice(), c.key_pem.as_slice()));
    let tls = crate::scanner::tls_client_config(remote.ca_pem.as_deref(), identity, true)?;
    let mut builder = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(remote.timeout)
        .connect_timeout(remote.timeout.min(Duration::from_secs(30)))
        .user_agent(concat!("git/2.0 (tagline/", env!("CARGO_PKG_VERSION"), ")"))
        .http1_only();
    builder = match &remote.proxy {
        Some(p) => {
            let bad = |_| format!("proxy address '{}'", super::redact_url(&p.address));
            let proxy = if p.is_socks() {
                // The SOCKS5 login (RFC 1929) is taken from the proxy URL.
                reqwest::Proxy::all(p.url_with_credentials()).map_err(bad)?
            } else {
                let mut proxy = reqwest::Proxy::all(&p.address).map_err(bad)?;
                if let Some(user) = &p.username {
                    proxy = proxy.basic_auth(user, p.password.as_deref().unwrap_or_default());
                }
                proxy
            };
            builder.proxy(proxy)
        }
        None => builder.no_proxy(),
    };
    let http = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
    let authorization = match &remote.auth {
        Some(Auth::Basic { username, password }) => {
            use base64::Engine;
            let pair = format!("{username}:{password}");
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        }
        Some(Auth::Bearer(token)) => Some(format!("Bearer {token}")),
        _ => None,
    };
    let client = Arc::new(Client {
        http,
        authorization,
        proxy: remote.proxy.as_ref().map(|p| super::redact_url(&p.address)),
    });
    let previous = CURRENT.with(|c| c.borrow_mut().replace(client));
    Ok(Installed { previous })
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["http", "https"] {
            let name = format!("{PREFIX}{scheme}");
            // SAFETY: registered once per process, before any remote with this scheme is used;
            // libgit2 keeps the factory for the life of the process.
            let registered = unsafe {
                git2::transport::register(&name, |remote| {
                    let client = CURRENT.with(|c| c.borrow().clone()).ok_or_else(|| {
                        git2::Error::new(
                            ErrorCode::GenericError,
                            ErrorClass::Net,
                            "tagline's HTTP transport used without a session",
                        )
                    })?;
                    Transport::smart(remote, true, Subtransport { client })
                })
            };
            if let Err(e) = registered {
                tracing::error!("registering tagline's HTTP transport with libgit2: {e}");
            }
        }
    });
}

struct Subtransport {
    client: Arc<Client>,
}

impl SmartSubtransport for Subtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let url = url
            .strip_prefix(PREFIX)
            .unwrap_or(url)
            .trim_end_matches('/');
        let (service, listing) = match action {
            Service::UploadPackLs => ("git-upload-pack", true),
            Service::UploadPack => ("git-upload-pack", false),
            Service::ReceivePackLs => ("git-receive-pack", true),
            Service::ReceivePack => ("git-receive-pack", false),
        };
        if listing {
            let request = self
                .client
                .http
                .get(format!("{url}/info/refs?service={service}"));
            let response = send(&self.client, request, service)?;
            check_content_type(&response, &format!("application/x-{service}-advertisement"))?;
            return Ok(Box::new(Stream {
                state: State::Reading(Box::new(response)),
            }));
        }
        Ok(Box::new(Stream {
            state: State::Writing {
                client: self.client.clone(),
                url: format!("{url}/{service}"),
                service,
                body: Vec::new(),
            },
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// Sends `request` with the session's credentials; a refusal or a server error is a libgit2
/// error in the words the session maps (authentication, 403, 404).
fn send(
    client: &Client,
    mut request: reqwest::blocking::RequestBuilder,
    service: &str,
) -> Result<reqwest::blocking::Response, git2::Error> {
    if let Some(value) = &client.authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let response = request
        .header("Git-Protocol", "version=0")
        .send()
        .map_err(|e| {
            let mut cause = String::new();
            let mut source: Option<&dyn std::error::Error> = Some(&e);
            while let Some(s) = source {
                if !cause.is_empty() {
                    cause.push_str(": ");
                }
                cause.push_str(&s.to_string());
                source = s.source();
            }
            let lower = cause.to_ascii_lowercase();
            if let Some(proxy) = &client.proxy {
                if lower.contains("tunnel error") {
                    cause = format!(
                        "the proxy {proxy} refused the tunnel (wrong proxy credentials, or the \
                         proxy does not allow this host): {cause}"
                    );
                } else if lower.contains("socks") {
                    cause = format!("through the SOCKS proxy {proxy}: {cause}");
                }
            }
            let class = if lower.contains("certificate") || lower.contains("tls") {
                ErrorClass::Ssl
            } else {
                ErrorClass::Net
            };
            git2::Error::new(
                ErrorCode::GenericError,
                class,
                format!("{service}: {cause}"),
            )
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let code = if status == reqwest::StatusCode::UNAUTHORIZED {
        ErrorCode::Auth
    } else {
        ErrorCode::GenericError
    };
    Err(git2::Error::new(
        code,
        ErrorClass::Http,
        format!(
            "unexpected http status code: {} ({service})",
            status.as_u16()
        ),
    ))
}

fn check_content_type(
    response: &reqwest::blocking::Response,
    expected: &str,
) -> Result<(), git2::Error> {
    let got = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got.split(';').next().map(str::trim) == Some(expected) {
        Ok(())
    } else {
        Err(git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Http,
            format!(
                "the server does not speak Git's smart HTTP protocol (content type '{got}', \
                 expected '{expected}')"
            ),
        ))
    }
}

enum State {
    /// libgit2 writes the request body; the request goes out at its first read.
    Writing {
        client: Arc<Client>,
        url: String,
        service: &'static str,
        body: Vec<u8>,
    },
    Reading(Box<dyn Read + Send>),
    Done,
}

struct Stream {
    state: State,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let State::Writing { .. } = self.state {
            let State::Writing {
                client,
                url,
                service,
                body,
            } = std::mem::replace(&mut self.state, State::Done)
            else {
                unreachable!("matched above");
            };
            let request = client
                .http
                .post(url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("application/x-{service}-request"),
                )
                .header(
                    reqwest::header::ACCEPT,
                    format!("application/x-{service}-result"),
                )
                .body(body);
            let response = send(&client, request, service).map_err(io::Error::other)?;
            check_content_type(&response, &format!("application/x-{service}-result"))
                .map_err(io::Error::other)?;
            self.state = State::Reading(Box::new(response));
        }
        match &mut self.state {
            State::Reading(r) => r.read(buf),
            _ => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.state {
            State::Writing { body, .. } => {
                body.extend_from_slice(data);
                Ok(data.len())
            }
            _ => Err(io::Error::other(
                "tagline's HTTP transport: a write after the response began",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
