//! A real OCI registry peer: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, with
//! optional htpasswd basic auth, TLS and mTLS, plus helpers to push small real images and
//! list tags (over the HTTP API, and with `skopeo` as the reference client).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::proc::{run, scratch_dir, scratch_home, scrub_env, start_on_free_port, Peer};
use super::tls::TestCa;
use super::token::{TokenServer, ISSUER, SERVICE};
use base64::Engine;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{StatusCode, Url};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How a [`Registry`] is configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RegistryOptions {
    /// Basic auth with this one user (`htpasswd -Bbn`); anonymous access is refused.
    pub htpasswd: Option<(&'static str, &'static str)>,
    /// Serve HTTPS with a certificate from the process's [`TestCa`].
    pub tls: bool,
    /// Require a client certificate signed by the [`TestCa`] (implies `tls`).
    pub mtls: bool,
}

/// A running `docker-registry`. Shared instances come from [`Registry::start`] (basic auth) and
/// [`Registry::start_token_auth`] (bearer tokens); owned ones from the `start_owned*`
/// variants stop when dropped.
#[derive(Debug)]
pub struct Registry {
    options: RegistryOptions,
    access_log: bool,
    token: Option<TokenServer>,
    host: String,
    dir: PathBuf,
    client: Client,
    peer: Mutex<Peer>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// The registry for `options`, shared by every test of this test binary: started on first
    /// use, on a free port, answering `GET /v2/` before this returns.
    pub fn start(options: RegistryOptions) -> &'static Registry {
        Registry::shared(options, false)
    }

    /// Like [`Registry::start`], but with the bearer-token flow (`auth.token`) that Docker Hub,
    /// GHCR and most hosted registries use: a 401 with `WWW-Authenticate: Bearer realm=…`
    /// sends clients to a token server ([`Registry::token_server`]) that hands out ES256 JWTs.
    /// `options.htpasswd`, when set, is what the token server requires as Basic auth.
    pub fn start_token_auth(options: RegistryOptions) -> &'static Registry {
        Registry::shared(options, true)
    }

    fn shared(options: RegistryOptions, token: bool) -> &'static Registry {
        type Shared = HashMap<(RegistryOptions, bool), &'static Registry>;
        static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
        let mut shared = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shared
            .entry((options, token))
            .or_insert_with(|| Box::leak(Box::new(Registry::launch(options, token, false))))
    }

    /// A registry of its own for one test (e.g. to stop it midway); stops when dropped.
    pub fn start_owned(options: RegistryOptions) -> Registry {
        Registry::launch(options, false, false)
    }

    /// A registry of its own with its access log on, so [`Registry::requests`] can tell which
    /// requests reached it; stops when dropped.
    pub fn start_owned_with_access_log(options: RegistryOptions) -> Registry {
        Registry::launch(options, false, true)
    }

    /// A token-auth registry of its own ([`Registry::start_token_auth`]); stops when dropped.
    pub fn start_owned_token_auth(options: RegistryOptions) -> Registry {
        Registry::launch(options, true, false)
    }

    /// A token-auth registry of its own with its access log on ([`Registry::requests`]).
    pub fn start_owned_token_auth_with_access_log(options: RegistryOptions) -> Registry {
        Registry::launch(options, true, true)
    }

    fn launch(options: RegistryOptions, token: bool, access_log: bool) -> Registry {
        let options = RegistryOptions {
            tls: options.tls || options.mtls,
            ..options
        };
        let guard = scratch_dir("registry");
        let dir = guard.path().to_path_buf();
        let ca = (options.tls).then(TestCa::get);
        let token = token.then(|| TokenServer::start(&dir, options.htpasswd));
        if let (Some((user, pass)), None) = (options.htpasswd, &token) {
            let mut cmd = Command::new("htpasswd");
            let line = run("htpasswd -Bbn", cmd.args(["-Bbn", user, pass]).env_clear());
            fs::write(dir.join("htpasswd"), line.trim_end().to_string() + "\n")
                .expect("write htpasswd");
        }
        if let Some(ca) = ca {
            // skopeo's --cert-dir layout: any *.crt is a CA; client.cert + client.key for mTLS.
            let certs = dir.join("skopeo-certs");
            fs::create_dir_all(&certs).expect("create skopeo cert dir");
            fs::write(certs.join("ca.crt"), ca.ca_pem()).expect("write ca.crt");
            if options.mtls {
                fs::write(certs.join("client.cert"), ca.client_cert_pem()).expect("write cert");
                fs::write(certs.join("client.key"), ca.client_key_pem()).expect("write key");
            }
        }
        let client = http_client(options);
        let (host, peer) = start_on_free_port("docker-registry", |port| {
            let config = dir.join("config.yml");
            let mut yaml = registry_config(&dir, port, options, token.as_ref());
            if access_log {
                yaml = yaml.replace("    disabled: true\n", "    disabled: false\n");
            }
            fs::write(&config, yaml).expect("write config");
            let mut cmd = Command::new("docker-registry");
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", scratch_home())
                .arg("serve")
                .arg(&config);
            let mut peer = Peer::spawn("docker-registry", cmd, &dir.join("registry.log"))
                .map_err(|e| format!("spawn docker-registry: {e}"))?;
            let scheme = if options.tls { "https" } else { "http" };
            let ping = format!("{scheme}://127.0.0.1:{port}/v2/");
            peer.wait_ready(|| client.get(&ping).send().is_ok())?;
            Ok((format!("127.0.0.1:{port}"), peer))
        });
        Registry {
            options,
            access_log,
            token,
            host,
            dir,
            client,
            peer: Mutex::new(peer),
            _dir: guard,
        }
    }

    /// `127.0.0.1:<port>`: the registry part of an image name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.host)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.options.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The image name of `repo` on this registry: `127.0.0.1:<port>/<repo>`.
    pub fn image(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host)
    }

    /// The options it was started with (`tls` set when `mtls` is).
    pub fn options(&self) -> RegistryOptions {
        self.options
    }

    /// The CA certificate (PEM) that signed its certificate; `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&'static str> {
        self.options.tls.then(|| TestCa::get().ca_pem())
    }

    /// The client certificate and key (PEM) it accepts, when it requires mTLS.
    pub fn client_identity_pem(&self) -> Option<(&'static str, &'static str)> {
        let ca = TestCa::get();
        self.options
            .mtls
            .then(|| (ca.client_cert_pem(), ca.client_key_pem()))
    }

    /// The token server, for a registry started with token auth.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The user and password it requires (from the token server, with token auth), if any.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        self.options.htpasswd
    }

    /// A `.dockerconfigjson` document (the `kubernetes.io/dockerconfigjson` Secret's key)
    /// holding this registry's credentials, or `{"auths":{}}` without auth.
    pub fn docker_config_json(&self) -> String {
        let auths = match self.options.htpasswd {
            Some((user, pass)) => {
                let auth =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                format!(
                    r#"{{"{}":{{"username":"{user}","password":"{pass}","auth":"{auth}"}}}}"#,
                    self.host
                )
            }
            None => "{}".to_string(),
        };
        format!(r#"{{"auths":{auths}}}"#)
    }

    /// A `kubernetes.io/dockerconfigjson` Secret named `name` holding
    /// [`Registry::docker_config_json`], for an ImageRepository's `secretRef`.
    pub fn pull_secret_yaml(&self, name: &str) -> String {
        super::yaml::secret(
            name,
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", &self.docker_config_json())],
        )
    }

    /// An `Opaque` Secret named `name` for an ImageRepository's `certSecretRef`: `ca.crt`, plus
    /// `tls.crt` and `tls.key` when the registry wants a client certificate. `None` for HTTP.
    pub fn cert_secret_yaml(&self, name: &str) -> Option<String> {
        let ca = self.ca_pem()?;
        let mut entries = vec![("ca.crt", ca)];
        if let Some((cert, key)) = self.client_identity_pem() {
            entries.push(("tls.crt", cert));
            entries.push(("tls.key", key));
        }
        Some(super::yaml::secret(name, "Opaque", &entries))
    }

    /// Pushes one small real image to `repo` (a gzip'd tar layer, its config, an OCI manifest)
    /// and tags it with every tag in `tags`. The image depends only on `repo`, so pushing more
    /// tags later points them at the same manifest. Returns the manifest digest.
    pub fn push_tags(&self, repo: &str, tags: &[&str]) -> String {
        self.push_variant(repo, "default", tags)
    }

    /// Like [`Registry::push_tags`], but the image also depends on `variant`: different
    /// variants have different digests. Returns the manifest digest.
    pub fn push_variant(&self, repo: &str, variant: &str, tags: &[&str]) -> String {
        let image = TestImage::new(repo, variant);
        self.upload_blob(repo, &image.layer);
        self.upload_blob(repo, &image.config);
        for tag in tags {
            let url = format!("{}/v2/{repo}/manifests/{tag}", self.base_url());
            let resp = self.send(
                "PUT manifest",
                repo,
                "pull,push",
                self.client
                    .put(&url)
                    .header("Content-Type", OCI_MANIFEST)
                    .body(image.manifest.clone()),
            );
            expect_status("PUT manifest", &url, resp, StatusCode::CREATED);
        }
        image.digest
    }

    fn upload_blob(&self, repo: &str, blob: &[u8]) {
        let digest = sha256_digest(blob);
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base_url());
        let resp = self.send(
            "start blob upload",
            repo,
            "pull,push",
            self.client.post(&start),
        );
        let resp = expect_status("start blob upload", &start, resp, StatusCode::ACCEPTED);
        let location = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("blob upload to {start}: no Location header"));
        let mut url = Url::parse(&start)
            .and_then(|base| base.join(location))
            .unwrap_or_else(|e| panic!("blob upload Location {location:?}: {e}"));
        url.query_pairs_mut().append_pair("digest", &digest);
        let what = "finish blob upload";
        let resp = self.send(
            what,
            repo,
            "pull,push",
            self.client
                .put(url.clone())
                .header("Content-Type", "application/octet-stream")
                .body(blob.to_vec()),
        );
        expect_status(what, url.as_str(), resp, StatusCode::CREATED);
    }

    /// The tags of `repo` as the registry's HTTP API lists them, sorted; empty when the
    /// repository is unknown or has no tags left.
    pub fn list_tags(&self, repo: &str) -> Vec<String> {
        let url = format!("{}/v2/{repo}/tags/list", self.base_url());
        let resp = self.send("list tags", repo, "pull", self.client.get(&url));
        if resp.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        let body = expect_status("list tags", &url, resp, StatusCode::OK)
            .text()
            .unwrap_or_else(|e| panic!("list tags {url}: read body: {e}"));
        sorted_tags(&format!("list tags {url}"), &body, "tags")
    }

    /// The digest of the manifest `repo:tag` points at, `None` when there is no such tag.
    pub fn manifest_digest(&self, repo: &str, tag: &str) -> Option<String> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base_url());
        let resp = self.send(
            "HEAD manifest",
            repo,
            "pull",
            self.client.head(&url).header("Accept", OCI_MANIFEST),
        );
        if resp.status() == StatusCode::NOT_FOUND {
            return None;
        }
        let resp = expect_status("HEAD manifest", &url, resp, StatusCode::OK);
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("HEAD {url}: no Docker-Content-Digest"));
        Some(digest.to_string())
    }

    /// Pushes an OCI image index under `tag` of `repo` that points at the manifest
    /// `manifest_digest` (`size` bytes, linux/amd64), like a multi-arch image. Returns the
    /// index digest.
    pub fn push_index(&self, repo: &str, manifest_digest: &str, size: usize, tag: &str) -> String {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{manifest_digest}","size":{size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base_url());
        let resp = self.send(
            "PUT index",
            repo,
            "pull,push",
            self.client
                .put(&url)
                .header("Content-Type", OCI_INDEX)
                .body(index.clone()),
        );
        expect_status("PUT index", &url, resp, StatusCode::CREATED);
        sha256_digest(index.as_bytes())
    }

    /// The length in bytes of the manifest `repo:reference` (tag or digest).
    pub fn manifest_len(&self, repo: &str, reference: &str) -> usize {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base_url());
        let resp = self.send(
            "GET manifest",
            repo,
            "pull",
            self.client.get(&url).header("Accept", OCI_MANIFEST),
        );
        let resp = expect_status("GET manifest", &url, resp, StatusCode::OK);
        resp.bytes()
            .unwrap_or_else(|e| panic!("GET {url}: read body: {e}"))
            .len()
    }

    /// Deletes the manifest `digest` of `repo`, which removes every tag pointing at it.
    pub fn delete_manifest(&self, repo: &str, digest: &str) {
        let url = format!("{}/v2/{repo}/manifests/{digest}", self.base_url());
        let resp = self.send("DELETE manifest", repo, "delete", self.client.delete(&url));
        expect_status("DELETE manifest", &url, resp, StatusCode::ACCEPTED);
    }

    /// The tags of `repo` as `skopeo list-tags` (the reference client) sees them, sorted.
    pub fn list_tags_with_skopeo(&self, repo: &str) -> Vec<String> {
        let mut cmd = self.skopeo("list-tags");
        cmd.arg(format!("docker://{}/{repo}", self.host));
        let body = run("skopeo list-tags", &mut cmd);
        sorted_tags("skopeo list-tags", &body, "Tags")
    }

    /// `skopeo <subcommand>` set up for this registry: its CA and client certificate
    /// (`--cert-dir`) or `--tls-verify=false` for plain HTTP, its credentials or `--no-creds`,
    /// and a scratch `HOME`. Append the subcommand's own arguments.
    pub fn skopeo(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new("skopeo");
        scrub_env(&mut cmd, scratch_home());
        cmd.arg(subcommand);
        if self.options.tls {
            cmd.arg("--cert-dir").arg(self.dir.join("skopeo-certs"));
        } else {
            cmd.arg("--tls-verify=false");
        }
        match self.options.htpasswd {
            Some((user, pass)) => cmd.arg("--creds").arg(format!("{user}:{pass}")),
            None => cmd.arg("--no-creds"),
        };
        cmd
    }

    /// The request lines (`GET /v2/team/app/tags/list?n=1000 HTTP/1.1`) the registry served,
    /// oldest first, from its access log; only for [`Registry::start_owned_with_access_log`].
    /// The harness's own requests (pushes, its readiness probes) are in it too.
    pub fn requests(&self) -> Vec<String> {
        assert!(
            self.access_log,
            "requests() needs start_owned_with_access_log"
        );
        let log = fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("] \""))
            .filter_map(|l| l.split('"').nth(1))
            .map(str::to_string)
            .collect()
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }

    /// Whether the registry process is still running.
    pub fn is_running(&self) -> bool {
        self.peer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check_running()
            .is_ok()
    }

    /// Stops the registry process now (for tests of an unreachable registry).
    pub fn stop(&self) {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }

    /// Sends `req` with this registry's credentials: Basic auth, or with token auth a bearer
    /// token for `repository:<repo>:<actions>` fetched from the token server.
    fn send(&self, what: &str, repo: &str, actions: &str, req: RequestBuilder) -> Response {
        let req = match (&self.token, self.options.htpasswd) {
            (Some(token), creds) => {
                let scope = format!("repository:{repo}:{actions}");
                let realm = Url::parse_with_params(
                    &token.realm(),
                    [("service", SERVICE), ("scope", scope.as_str())],
                )
                .expect("token request URL");
                let mut ask = self.client.get(realm);
                if let Some((user, pass)) = creds {
                    ask = ask.basic_auth(user, Some(pass));
                }
                let resp = ask
                    .send()
                    .unwrap_or_else(|e| panic!("{what}: token request: {e}"));
                let resp = expect_status("token request", &token.realm(), resp, StatusCode::OK);
                let body = resp.text().unwrap_or_default();
                let json: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{what}: token response ({e}): {body}"));
                let bearer = json["token"].as_str().expect("token in token response");
                req.bearer_auth(bearer)
            }
            (None, Some((user, pass))) => req.basic_auth(user, Some(pass)),
            (None, None) => req,
        };
        req.send()
            .unwrap_or_else(|e| panic!("{what} on {}: {e}", self.host))
    }
}

fn registry_config(
    dir: &std::path::Path,
    port: u16,
    options: RegistryOptions,
    token: Option<&TokenServer>,
) -> String {
    let mut yaml = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: tagline-harness-not-a-secret
",
        data = dir.join("data").display()
    );
    if options.tls {
        let ca = TestCa::get();
        yaml += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            ca.server_cert_path().display(),
            ca.server_key_path().display()
        );
        if options.mtls {
            yaml += &format!("    clientcas:\n      - {}\n", ca.ca_path().display());
        }
    }
    if let Some(token) = token {
        yaml += &format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
             rootcertbundle: {}\n",
            token.realm(),
            token.cert_path().display()
        );
    } else if options.htpasswd.is_some() {
        yaml += &format!(
            "auth:\n  htpasswd:\n    realm: tagline-harness\n    path: {}\n",
            dir.join("htpasswd").display()
        );
    }
    yaml
}

fn http_client(options: RegistryOptions) -> Client {
    let mut builder = Client::builder().no_proxy();
    if options.tls {
        let ca = TestCa::get();
        let cert = reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).expect("parse test CA");
        builder = builder.tls_certs_only([cert]);
        if options.mtls {
            let identity = reqwest::Identity::from_pkcs8_pem(
                ca.client_cert_pem().as_bytes(),
                ca.client_key_pem().as_bytes(),
            )
            .expect("load client identity");
            builder = builder.identity(identity);
        }
    }
    builder.build().expect("build HTTP client")
}

/// The string array under `field` of the JSON document `body`, sorted (empty when the field
/// is missing or `null`, as after the last manifest of a repository is deleted).
fn sorted_tags(what: &str, body: &str, field: &str) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    let mut tags: Vec<String> = json[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

fn expect_status(what: &str, url: &str, resp: Response, want: StatusCode) -> Response {
    if resp.status() != want {
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        panic!("{what} {url}: status {status}, wanted {want}: {body}");
    }
    resp
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = openssl::sha::sha256(bytes);
    let mut hex = String::with_capacity(64);
    for b in hash.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("sha256:{hex}")
}

/// The blobs and manifest of one small image.
struct TestImage {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    digest: String,
}

impl TestImage {
    fn new(repo: &str, variant: &str) -> TestImage {
        let content = format!("tagline test image {repo} {variant}\n");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, "hello.txt", content.as_bytes())
            .expect("build layer tar");
        let tar = tar.into_inner().expect("finish layer tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip layer");
        let layer = gz.finish().expect("gzip layer");
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"org.tagline.test.variant":"{variant}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256_digest(&tar)
        )
        .into_bytes();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
            sha256_digest(&config),
            config.len(),
            sha256_digest(&layer),
            layer.len()
        )
        .into_bytes();
        let digest = sha256_digest(&manifest);
        TestImage {
            layer,
            config,
            manifest,
            digest,
        }
    }
}
