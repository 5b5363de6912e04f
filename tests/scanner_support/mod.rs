//! Test peer for the scanner tests: a real Debian `docker-registry` on 127.0.0.1 (plain, basic
//! auth, TLS, mTLS, token auth), torn down when the test process exits, plus image pushing.
//!
//! Small and self-contained so it can later be swapped for the shared harness in `tests/common/`.
#![allow(dead_code)]

pub mod token;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::Digest as _;

/// How the registry authenticates and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Basic,
    Tls,
    MutualTls,
    Token,
    /// TLS registry whose token realm is plain HTTP.
    TlsToken,
}

pub const USER: &str = "scanner-user";
pub const PASSWORD: &str = "scanner-Pa55word";

/// A running registry. The process is a child of a `sh` that kills it and removes its directory
/// when our end of its stdin closes, which happens when the test process exits, however it ends.
pub struct Registry {
    pub port: u16,
    pub mode: Mode,
    pub dir: PathBuf,
    /// CA that signed the server certificate (TLS modes).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate/key signed by the CA (mTLS).
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// The token server's address (token mode).
    pub token_port: Option<u16>,
    _guard: Mutex<(Child, ChildStdin)>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA plus certificates it signs: server (localhost, 127.0.0.1) and client.
pub fn make_pki(dir: &Path) {
    let d = |f: &str| dir.join(f);
    let ec = |key: &str| {
        run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(d(key)));
    };
    ec("ca.key");
    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(d("ca.key"))
        .args(["-subj", "/CN=tagline test CA", "-days", "2", "-out"])
        .arg(d("ca.crt")));
    for (name, ext) in [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        ec(&format!("{name}.key"));
        run(Command::new("openssl")
            .args(["req", "-new", "-key"])
            .arg(d(&format!("{name}.key")))
            .args(["-subj", &format!("/CN=tagline test {name}"), "-out"])
            .arg(d(&format!("{name}.csr"))));
        std::fs::write(d(&format!("{name}.ext")), ext).unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(d(&format!("{name}.csr")))
            .arg("-CA")
            .arg(d("ca.crt"))
            .arg("-CAkey")
            .arg(d("ca.key"))
            .args(["-CAcreateserial", "-days", "2", "-extfile"])
            .arg(d(&format!("{name}.ext")))
            .arg("-out")
            .arg(d(&format!("{name}.crt"))));
    }
}

impl Registry {
    pub fn start(mode: Mode) -> Registry {
        let base = if Path::new("/dev/shm").is_dir() {
            tempfile::Builder::new()
                .prefix("tagline-scanner-")
                .tempdir_in("/dev/shm")
        } else {
            tempfile::Builder::new()
                .prefix("tagline-scanner-")
                .tempdir()
        }
        .unwrap();
        let dir = base.keep();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        let (mut ca_pem, mut client_cert_pem, mut client_key_pem, mut token_port) =
            (None, None, None, None);
        if matches!(mode, Mode::Tls | Mode::MutualTls | Mode::TlsToken) {
            make_pki(&dir);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ));
            if mode == Mode::MutualTls {
                config.push_str(&format!(
                    "    clientcas:\n      - {}\n",
                    dir.join("ca.crt").display()
                ));
            }
            ca_pem = Some(std::fs::read(dir.join("ca.crt")).unwrap());
            client_cert_pem = Some(std::fs::read(dir.join("client.crt")).unwrap());
            client_key_pem = Some(std::fs::read(dir.join("client.key")).unwrap());
        }
        if mode == Mode::Basic {
            run(Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(dir.join("htpasswd"))
                .args([USER, PASSWORD]));
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tagline-test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        if matches!(mode, Mode::Token | Mode::TlsToken) {
            let tp = token::start(&dir);
            token_port = Some(tp);
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{tp}/token\n    service: {}\n    \
                 issuer: {}\n    rootcertbundle: {}\n",
                token::SERVICE,
                token::ISSUER,
                dir.join("token-signer.crt").display()
            ));
        }
        let cfg_path = dir.join("config.yml");
        std::fs::write(&cfg_path, config).unwrap();
        let script = r#"docker-registry serve "$1" >"$2/registry.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$2"' EXIT
read _ignored || true
"#;
        let mut child = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&cfg_path)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let stdin = child.stdin.take().unwrap();
        let reg = Registry {
            port,
            mode,
            dir,
            ca_pem,
            client_cert_pem,
            client_key_pem,
            token_port,
            _guard: Mutex::new((child, stdin)),
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start on {}: {log}", self.port);
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn tls(&self) -> bool {
        matches!(self.mode, Mode::Tls | Mode::MutualTls | Mode::TlsToken)
    }

    fn base(&self) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// An admin client (trusts the CA, presents the client cert in mTLS mode).
    fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder().tls_backend_native().no_proxy();
        if let Some(ca) = &self.ca_pem {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap());
        }
        if self.mode == Mode::MutualTls {
            let key = pkcs8(self.client_key_pem.as_ref().unwrap());
            b = b.identity(
                reqwest::Identity::from_pkcs8_pem(self.client_cert_pem.as_ref().unwrap(), &key)
                    .unwrap(),
            );
        }
        b.build().unwrap()
    }

    async fn authorization(&self, c: &reqwest::Client, repo: &str) -> Option<String> {
        match self.mode {
            Mode::Basic => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
            )),
            Mode::Token | Mode::TlsToken => {
                let url = format!(
                    "http://127.0.0.1:{}/token?service=tagline-test&scope=repository:{repo}:pull,push",
                    self.token_port.unwrap()
                );
                let v: serde_json::Value = c
                    .get(url)
                    .basic_auth(USER, Some(PASSWORD))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                Some(format!("Bearer {}", v["token"].as_str().unwrap()))
            }
            _ => None,
        }
    }

    /// Pushes a one-layer OCI image to `repo` and tags it with each of `tags`.
    pub async fn push(&self, repo: &str, tags: &[&str]) -> String {
        let c = self.client();
        let auth = self.authorization(&c, repo).await;
        let with_auth = |r: reqwest::RequestBuilder| match &auth {
            Some(a) => r.header("Authorization", a),
            None => r,
        };
        // A tiny gzip'd tar with one file.
        let mut tar = vec![0u8; 1024 * 3];
        tar[..5].copy_from_slice(b"hello");
        let layer = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            gz.finish().unwrap()
        };
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256(&tar)
        );
        for blob in [&layer[..], config.as_bytes()] {
            let resp = with_auth(c.post(format!("{}/v2/{repo}/blobs/uploads/", self.base())))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202, "start upload");
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            let loc = if loc.starts_with('/') {
                format!("{}{loc}", self.base())
            } else {
                loc
            };
            let sep = if loc.contains('?') { '&' } else { '?' };
            let resp = with_auth(c.put(format!("{loc}{sep}digest={}", sha256(blob))))
                .header("Content-Type", "application/octet-stream")
                .body(blob.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "finish upload");
        }
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
            sha256(config.as_bytes()),
            config.len(),
            sha256(&layer),
            layer.len()
        );
        for tag in tags {
            let resp = with_auth(c.put(format!("{}/v2/{repo}/manifests/{tag}", self.base())))
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "put manifest {tag}");
        }
        sha256(manifest.as_bytes())
    }
}

impl Registry {
    /// Pushes an OCI index pointing at the manifest `manifest_digest` (of `size` bytes) under
    /// `tag`; returns the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        manifest_digest: &str,
        size: usize,
        tag: &str,
    ) -> String {
        let c = self.client();
        let auth = self.authorization(&c, repo).await;
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let mut req = c
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base()))
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .body(index.clone());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 201, "put index {tag}");
        sha256(index.as_bytes())
    }

    /// The manifest bytes' length for a digest (GET of the manifest).
    pub async fn manifest_len(&self, repo: &str, reference: &str) -> usize {
        let c = self.client();
        let auth = self.authorization(&c, repo).await;
        let mut req = c
            .get(format!("{}/v2/{repo}/manifests/{reference}", self.base()))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send().await.unwrap().bytes().await.unwrap().len()
    }
}

pub fn sha256(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Converts a PEM key to PKCS#8 PEM with the openssl CLI (for the admin client).
pub fn pkcs8(key_pem: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(key_pem).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}
