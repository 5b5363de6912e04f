//! The scanner tests' registries: each [`Mode`] is one of the shared harness's real
//! `docker-registry` peers (`tests/common`: started once per test binary, killed with the test
//! process), with async wrappers so `#[tokio::test]`s can push (the harness's client is
//! blocking, so its calls run on a plain thread).
#![allow(dead_code, unused_imports)]

#[path = "../common/mod.rs"]
pub mod common;

pub use common::proc::free_port;

/// How the registry authenticates and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Basic,
    Tls,
    MutualTls,
    /// Bearer tokens from the harness's token server, which wants `USER`/`PASSWORD`.
    Token,
    /// TLS registry whose token realm is plain HTTP.
    TlsToken,
}

pub const USER: &str = "scanner-user";
pub const PASSWORD: &str = "scanner-Pa55word";

/// A running registry of the shared harness, seen the way the scanner tests use it.
pub struct Registry {
    inner: &'static common::Registry,
    pub mode: Mode,
    /// CA that signed the server certificate (TLS modes).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and PKCS#8 key signed by the CA (what mTLS accepts).
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
}

/// Runs a blocking harness call off the async test's thread.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("harness call panicked"))
}

impl Registry {
    pub fn start(mode: Mode) -> Registry {
        let credentials =
            matches!(mode, Mode::Basic | Mode::Token | Mode::TlsToken).then_some((USER, PASSWORD));
        let options = common::RegistryOptions {
            htpasswd: credentials,
            tls: matches!(mode, Mode::Tls | Mode::MutualTls | Mode::TlsToken),
            mtls: mode == Mode::MutualTls,
        };
        let inner = off_runtime(|| match mode {
            Mode::Token | Mode::TlsToken => common::Registry::start_token_auth(options),
            _ => common::Registry::start(options),
        });
        let ca = common::TestCa::get();
        let tls = options.tls;
        Registry {
            inner,
            mode,
            ca_pem: tls.then(|| ca.ca_pem().as_bytes().to_vec()),
            client_cert_pem: tls.then(|| ca.client_cert_pem().as_bytes().to_vec()),
            client_key_pem: tls.then(|| ca.client_key_pem().as_bytes().to_vec()),
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.inner.host().to_string()
    }

    pub fn tls(&self) -> bool {
        self.inner.options().tls
    }

    /// Token requests the token server has answered so far (token modes; else 0).
    pub fn token_requests(&self) -> u64 {
        self.inner.token_server().map_or(0, |t| t.requests())
    }

    /// Pushes a one-layer OCI image to `repo` and tags it with each of `tags`; returns the
    /// manifest digest.
    pub async fn push(&self, repo: &str, tags: &[&str]) -> String {
        let inner = self.inner;
        off_runtime(|| inner.push_tags(repo, tags))
    }

    /// Pushes an OCI index pointing at the manifest `manifest_digest` (of `size` bytes) under
    /// `tag`; returns the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        manifest_digest: &str,
        size: usize,
        tag: &str,
    ) -> String {
        let inner = self.inner;
        off_runtime(|| inner.push_index(repo, manifest_digest, size, tag))
    }

    /// The manifest bytes' length for a tag or digest.
    pub async fn manifest_len(&self, repo: &str, reference: &str) -> usize {
        let inner = self.inner;
        off_runtime(|| inner.manifest_len(repo, reference))
    }
}
