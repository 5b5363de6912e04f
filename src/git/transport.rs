//! One network session with a remote: credentials (capped), TLS CA / SSH host key checks,
//! the deadline, and the mapping of libgit2 failures onto `GitError`.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Once;
use std::time::Instant;

use git2::{CertificateCheckStatus, Cred, CredentialType, ErrorClass, ErrorCode, RemoteCallbacks};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509StoreContext, X509};

use super::error::{redact_url, scrub};
use super::{http, ssh, Auth, GitError, Remote};

/// Makes libgit2 ignore the host's system / global / XDG git configuration (`url.insteadOf`,
/// `core.autocrlf`, `http.sslCAInfo`...): only what the `GitRepository` says applies.
pub(crate) fn isolate_from_host_config() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for level in [
            git2::ConfigLevel::System,
            git2::ConfigLevel::XDG,
            git2::ConfigLevel::Global,
            git2::ConfigLevel::ProgramData,
        ] {
            // SAFETY: called once, before any repository is opened by this module.
            let _ = unsafe { git2::opts::set_search_path(level, "") };
        }
    });
}

/// Set by [`init_early`]: libgit2's OpenSSL context was made without the system CA bundle,
/// which is then loaded before the first HTTPS session through libgit2's own transport.
static LAZY_ROOTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The CA bundle to load lazily (the caller's `SSL_CERT_FILE`, else the probed one).
static ROOTS_FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

/// Initialises libgit2 without parsing the system CA bundle: libgit2 builds its OpenSSL
/// context at initialisation and `SSL_CTX_set_default_verify_paths` reads the whole bundle
/// (about 30 ms of CPU, most of a run with nothing to do). `SSL_CERT_FILE` points at an empty
/// file while libgit2 starts; the bundle is loaded when an HTTPS remote first needs it.
///
/// # Safety
/// Changes the process environment: call before any other thread exists (in `main`).
pub unsafe fn init_early() {
    let saved = std::env::var_os("SSL_CERT_FILE");
    let bundle = saved
        .as_ref()
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| openssl_probe::probe().cert_file);
    let _ = ROOTS_FILE.set(bundle);
    // SAFETY: the caller guarantees no other thread runs.
    unsafe { std::env::set_var("SSL_CERT_FILE", "/dev/null") };
    isolate_from_host_config();
    match saved {
        // SAFETY: as above.
        Some(v) => unsafe { std::env::set_var("SSL_CERT_FILE", v) },
        None => unsafe { std::env::remove_var("SSL_CERT_FILE") },
    }
    LAZY_ROOTS.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Before an HTTPS session on libgit2's transport: the CA bundle [`init_early`] left out.
fn load_lazy_roots() {
    static ONCE: Once = Once::new();
    if !LAZY_ROOTS.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    ONCE.call_once(|| {
        if let Some(Some(file)) = ROOTS_FILE.get() {
            // SAFETY: libgit2 is initialised; the option only loads certificates into its
            // OpenSSL context.
            if let Err(e) = unsafe { git2::opts::set_ssl_cert_file(file) } {
                tracing::warn!("loading the CA bundle {}: {e}", file.display());
            }
        }
    });
}

/// State shared between the libgit2 callbacks of one operation and the code that reads their
/// verdict afterwards.
#[derive(Default)]
struct Flags {
    auth_failed: Cell<bool>,
    timed_out: Cell<bool>,
    cert_problem: RefCell<Option<String>>,
}

pub(crate) struct Session<'r> {
    pub remote: &'r Remote,
    step: &'static str,
    deadline: Instant,
    cas: Rc<Vec<X509>>,
    known_hosts: Option<Rc<ssh::KnownHosts>>,
    /// Held from before the SSH connection until its host key was seen.
    home_lease: Rc<RefCell<Option<ssh::HomeLease>>>,
    _socket_timeout: SocketTimeout,
    flags: Rc<Flags>,
    /// tagline's own HTTP transport, when the remote needs it (client certificate, proxy).
    http: Option<http::Installed>,
}

/// libgit2's socket timeouts (connect, and each read: what stops a server that goes silent)
/// are process-wide and read when a connection is made. While sessions run concurrently, the
/// option holds the smallest of their timeouts, so no session waits on a silent server
/// longer than its own `Remote.timeout`; one may give up on a silent server sooner.
struct SocketTimeout {
    id: u64,
}

static ACTIVE_TIMEOUTS: std::sync::Mutex<Vec<(u64, i32)>> = std::sync::Mutex::new(Vec::new());

impl SocketTimeout {
    fn register(timeout: std::time::Duration) -> SocketTimeout {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ms = i32::try_from(timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let mut active = ACTIVE_TIMEOUTS.lock().unwrap_or_else(|p| p.into_inner());
        active.push((id, ms));
        Self::apply(&active);
        SocketTimeout { id }
    }

    fn apply(active: &[(u64, i32)]) {
        if let Some(ms) = active.iter().map(|(_, ms)| *ms).min() {
            // SAFETY: plain integer options of libgit2.
            unsafe {
                let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
                let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
            }
        }
    }
}

impl Drop for SocketTimeout {
    fn drop(&mut self) {
        let mut active = ACTIVE_TIMEOUTS.lock().unwrap_or_else(|p| p.into_inner());
        active.retain(|(id, _)| *id != self.id);
        Self::apply(&active);
    }
}

impl<'r> Session<'r> {
    pub fn new(remote: &'r Remote, step: &'static str) -> Result<Self, GitError> {
        isolate_from_host_config();
        let url = redact_url(&remote.url);
        let cas = match &remote.ca_pem {
            Some(pem) if !pem.iter().all(u8::is_ascii_whitespace) => X509::stack_from_pem(pem)
                .ok()
                .filter(|cas| !cas.is_empty())
                .ok_or_else(|| GitError::Config {
                    url: url.clone(),
                    cause: "ca.crt holds no PEM certificate".into(),
                })?,
            _ => Vec::new(),
        };
        let known_hosts = match &remote.auth {
            Some(Auth::Ssh { known_hosts, .. }) => Some(Rc::new(
                ssh::KnownHosts::parse(known_hosts).map_err(|cause| GitError::Config {
                    url: url.clone(),
                    cause,
                })?,
            )),
            _ => None,
        };
        let lease = match &known_hosts {
            Some(kh) => Some(ssh::lease_home(kh).map_err(|cause| GitError::Local {
                dir: "libgit2 home".into(),
                cause,
            })?),
            None => None,
        };
        if let Some(Auth::Ssh { identity, .. }) = &remote.auth {
            if identity.trim().is_empty() {
                return Err(GitError::Config {
                    url,
                    cause: "the 'identity' key is empty".into(),
                });
            }
        }
        let own_http = http::wanted(remote);
        if !own_http && remote.url.to_ascii_lowercase().starts_with("https://") {
            load_lazy_roots();
        }
        let http = if own_http {
            Some(http::install(remote).map_err(|cause| GitError::Config {
                url: url.clone(),
                cause,
            })?)
        } else {
            None
        };
        let socket_timeout = SocketTimeout::register(remote.timeout);
        let started = Instant::now();
        Ok(Session {
            remote,
            step,
            deadline: started + remote.timeout,
            cas: Rc::new(cas),
            known_hosts,
            home_lease: Rc::new(RefCell::new(lease)),
            _socket_timeout: socket_timeout,
            flags: Rc::new(Flags::default()),
            http,
        })
    }

    pub fn url(&self) -> String {
        redact_url(&self.remote.url)
    }

    /// The URL to hand libgit2: the remote's, or the one of tagline's own HTTP transport.
    pub fn libgit2_url(&self) -> String {
        match self.http {
            Some(_) => http::libgit2_url(&self.remote.url),
            None => self.remote.url.clone(),
        }
    }

    /// Extra HTTP headers (bearer token).
    pub fn headers(&self) -> Vec<String> {
        match &self.remote.auth {
            Some(Auth::Bearer(token)) => vec![format!("Authorization: Bearer {token}")],
            _ => Vec::new(),
        }
    }

    pub fn timeout(&self) -> GitError {
        GitError::Timeout {
            step: self.step,
            url: self.url(),
            after: self.remote.timeout,
        }
    }

    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Callbacks for fetch and push: credentials (one attempt per kind), certificate check,
    /// deadline in the progress callbacks.
    pub fn callbacks(&self) -> RemoteCallbacks<'static> {
        let mut cb = RemoteCallbacks::new();

        let auth = self.remote.auth.clone();
        let flags = self.flags.clone();
        let mut userpass_tries = 0u32;
        let mut key_tries = 0u32;
        let mut username_tries = 0u32;
        cb.credentials(move |_url, user_from_url, allowed| {
            let fail = |flags: &Flags| {
                flags.auth_failed.set(true);
                Err(git2::Error::new(
                    ErrorCode::Auth,
                    ErrorClass::Callback,
                    "authentication failed",
                ))
            };
            match &auth {
                Some(Auth::Basic { username, password })
                    if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
                {
                    userpass_tries += 1;
                    if userpass_tries > 1 {
                        return fail(&flags);
                    }
                    Cred::userpass_plaintext(username, password)
                }
                Some(Auth::Ssh {
                    identity, password, ..
                }) => {
                    let user = user_from_url.unwrap_or("git");
                    if allowed.contains(CredentialType::USERNAME) {
                        username_tries += 1;
                        if username_tries > 1 {
                            return fail(&flags);
                        }
                        return Cred::username(user);
                    }
                    if allowed.contains(CredentialType::SSH_MEMORY) {
                        key_tries += 1;
                        if key_tries > 1 {
                            return fail(&flags);
                        }
                        return Cred::ssh_key_from_memory(
                            user,
                            None,
                            identity,
                            password.as_deref(),
                        );
                    }
                    fail(&flags)
                }
                _ => fail(&flags),
            }
        });

        let cas = self.cas.clone();
        let known_hosts = self.known_hosts.clone();
        let flags = self.flags.clone();
        let port = ssh::port_of(&self.remote.url);
        let home_lease = self.home_lease.clone();
        let https_port = url::Url::parse(&self.remote.url)
            .ok()
            .filter(|u| u.scheme() == "https")
            .and_then(|u| u.port_or_known_default());
        let deadline = self.deadline;
        cb.certificate_check(move |cert, host| {
            if let Some(x509) = cert.as_x509() {
                if cas.is_empty() {
                    return Ok(CertificateCheckStatus::CertificatePassthrough);
                }
                let verdict = verify_leaf(&cas, x509.data(), host).or_else(|why| {
                    // libgit2 shows only the leaf: a server certificate issued by an
                    // intermediate needs the chain the server sends, so look at it ourselves.
                    let Some(port) = https_port else {
                        return Err(why);
                    };
                    verify_chain(&cas, host, port, x509.data(), deadline)
                        .map_err(|chain_why| format!("{why}; {chain_why}"))
                });
                return match verdict {
                    Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                    Err(why) => {
                        // Not signed by the configured CA: let the system store decide, as
                        // Flux appends ca.crt to the system pool.
                        *flags.cert_problem.borrow_mut() = Some(why);
                        Ok(CertificateCheckStatus::CertificatePassthrough)
                    }
                };
            }
            if let Some(hostkey) = cert.as_hostkey() {
                // The handshake is done: other sessions may set up theirs.
                home_lease.borrow_mut().take();
                let verdict = match (&known_hosts, hostkey.hostkey()) {
                    (Some(kh), Some(key)) => kh.check(host, port, key),
                    (None, _) => Err("no known_hosts configured for SSH".to_string()),
                    (_, None) => Err("the server sent no host key".to_string()),
                };
                return match verdict {
                    Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                    Err(why) => {
                        *flags.cert_problem.borrow_mut() = Some(why.clone());
                        Err(git2::Error::new(
                            ErrorCode::Certificate,
                            ErrorClass::Ssh,
                            why,
                        ))
                    }
                };
            }
            Ok(CertificateCheckStatus::CertificatePassthrough)
        });

        let deadline = self.deadline;
        let flags = self.flags.clone();
        cb.transfer_progress(move |_| {
            if Instant::now() >= deadline {
                flags.timed_out.set(true);
                return false;
            }
            true
        });
        let flags = self.flags.clone();
        cb.sideband_progress(move |_| {
            if Instant::now() >= deadline {
                flags.timed_out.set(true);
                return false;
            }
            true
        });
        cb
    }

    /// Maps a libgit2 failure of this session onto a `GitError`; `other` builds the
    /// step-specific variant from the (scrubbed) cause.
    pub fn error(&self, e: &git2::Error, other: impl FnOnce(String) -> GitError) -> GitError {
        let url = self.url();
        if self.flags.timed_out.get() || self.past_deadline() || is_timeout(e) {
            return GitError::Timeout {
                step: self.step,
                url,
                after: self.remote.timeout,
            };
        }
        if self.flags.auth_failed.get() || e.code() == ErrorCode::Auth {
            return GitError::Auth {
                url,
                hint: String::new(),
            };
        }
        if e.class() == ErrorClass::Http && e.message().contains("status code: 403") {
            return GitError::Auth {
                url,
                hint: ": access denied (HTTP 403): the credentials may lack access or write \
                       permission"
                    .into(),
            };
        }
        if e.class() == ErrorClass::Http && e.message().contains("status code: 404") {
            return other(format!(
                "repository not found (HTTP 404): {}",
                self.scrub(e.message())
            ));
        }
        if e.class() == ErrorClass::Ssh && e.message().contains("failed to authenticate SSH") {
            // libssh2 could not use the private key (wrong passphrase, unsupported format).
            let detail = e
                .message()
                .split_once(": ")
                .map(|(_, d)| d)
                .unwrap_or_default();
            return GitError::Auth {
                url,
                hint: format!(
                    ": the SSH key could not be used: wrong or missing passphrase, or \
                     unsupported key ({})",
                    self.scrub(detail)
                ),
            };
        }
        // Only a refused certificate or host key: other TLS failures (reset, EOF) are
        // network errors, worth retrying.
        let cert_words = e.message().contains("certificate") || e.message().contains("hostkey");
        if e.code() == ErrorCode::Certificate || (e.class() == ErrorClass::Ssl && cert_words) {
            let mut cause = self.scrub(e.message());
            if let Some(why) = self.flags.cert_problem.borrow().as_ref() {
                cause = format!("{cause} ({why})");
            }
            return GitError::Certificate { url, cause };
        }
        let message = e.message().to_ascii_lowercase();
        if e.class() == ErrorClass::Ssl
            && [
                "shutdown while in init",
                "certificate required",
                "handshake failure",
            ]
            .iter()
            .any(|m| message.contains(m))
        {
            return other(format!(
                "{} (the server ended the TLS handshake: it may require a client certificate, \
                 'tls.crt' and 'tls.key' in the Secret)",
                self.scrub(e.message())
            ));
        }
        other(self.scrub(e.message()))
    }

    /// libgit2 proxy options for an HTTP(S) remote with a `Remote::proxy` (credentials go in
    /// the proxy URL's userinfo: libgit2 answers the proxy's Basic challenge with them); None
    /// for other remotes or without a proxy (then libgit2 uses no proxy at all).
    pub fn proxy_options(&self) -> Option<git2::ProxyOptions<'static>> {
        if self.http.is_some() {
            return None;
        }
        let proxy = self.remote.proxy.as_ref()?;
        let lower = self.remote.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return None;
        }
        let mut opts = git2::ProxyOptions::new();
        opts.url(&proxy.url_with_credentials());
        Some(opts)
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = Vec::new();
        if let Some(p) = self
            .remote
            .proxy
            .as_ref()
            .and_then(|p| p.password.as_deref())
        {
            secrets.push(p);
        }
        match &self.remote.auth {
            Some(Auth::Basic { password, .. }) => secrets.push(password),
            Some(Auth::Bearer(t)) => secrets.push(t),
            Some(Auth::Ssh {
                password: Some(p), ..
            }) => secrets.push(p),
            Some(Auth::Ssh { .. }) | None => {}
        }
        scrub(text, &self.remote.url, &secrets)
    }
}

fn is_timeout(e: &git2::Error) -> bool {
    let m = e.message().to_ascii_lowercase();
    m.contains("timed out") || m.contains("timeout")
}

/// Checks a server's leaf certificate (DER) against the configured CAs and the host name.
fn verify_leaf(cas: &[X509], der: &[u8], host: &str) -> Result<(), String> {
    let leaf = X509::from_der(der).map_err(|e| format!("unreadable server certificate: {e}"))?;
    let mut builder = X509StoreBuilder::new().map_err(|e| e.to_string())?;
    for ca in cas {
        builder.add_cert(ca.clone()).map_err(|e| e.to_string())?;
    }
    let mut param = X509VerifyParam::new().map_err(|e| e.to_string())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => param.set_ip(ip),
        Err(_) => param.set_host(bare),
    }
    .map_err(|e| e.to_string())?;
    builder.set_param(&param).map_err(|e| e.to_string())?;
    let store = builder.build();
    let chain = Stack::new().map_err(|e| e.to_string())?;
    let mut ctx = X509StoreContext::new().map_err(|e| e.to_string())?;
    let verdict = ctx
        .init(&store, &leaf, &chain, |c| {
            let ok = c.verify_cert()?;
            Ok(if ok {
                None
            } else {
                Some(c.error().error_string().to_string())
            })
        })
        .map_err(|e| e.to_string())?;
    match verdict {
        None => Ok(()),
        Some(why) => Err(format!("not verified by the configured ca.crt: {why}")),
    }
}

/// Connects to `host:port` with TLS, verifies the chain the server sends against the
/// configured CAs (and the host name), and checks that its leaf is `leaf_der`, the
/// certificate libgit2 got.
fn verify_chain(
    cas: &[X509],
    host: &str,
    port: u16,
    leaf_der: &[u8],
    deadline: Instant,
) -> Result<(), String> {
    use openssl::ssl::{SslConnector, SslMethod};
    use std::net::{TcpStream, ToSocketAddrs};
    let why = |e: &dyn std::fmt::Display| format!("chain check: {e}");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| why(&"out of time"))?;
    let addr = (bare, port)
        .to_socket_addrs()
        .map_err(|e| why(&e))?
        .next()
        .ok_or_else(|| why(&"no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, left).map_err(|e| why(&e))?;
    tcp.set_read_timeout(Some(left)).map_err(|e| why(&e))?;
    tcp.set_write_timeout(Some(left)).map_err(|e| why(&e))?;
    let mut store = X509StoreBuilder::new().map_err(|e| why(&e))?;
    for ca in cas {
        store.add_cert(ca.clone()).map_err(|e| why(&e))?;
    }
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| why(&e))?;
    builder.set_cert_store(store.build());
    let connector = builder.build();
    let tls = connector
        .connect(bare, tcp)
        .map_err(|e| why(&format!("not verified by the configured ca.crt: {e}")))?;
    let served = tls
        .ssl()
        .peer_certificate()
        .and_then(|c| c.to_der().ok())
        .ok_or_else(|| why(&"no server certificate"))?;
    if served != leaf_der {
        return Err(why(&"the server showed another certificate"));
    }
    Ok(())
}
