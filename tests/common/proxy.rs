//! A real forward proxy peer: `tinyproxy` on 127.0.0.1 with Basic proxy auth, its request log
//! readable by tests (which requests went through it).

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::proc::{port_open, scratch_dir, start_on_free_port, Peer};

/// The user tinyproxy accepts (`BasicAuth`).
pub const PROXY_USER: &str = "proxy-user";
/// Its password.
pub const PROXY_PASSWORD: &str = "proxy-Pa55word-7f3e";

/// A running `tinyproxy` that requires [`PROXY_USER`] / [`PROXY_PASSWORD`].
///
/// tinyproxy answers a request without credentials with 407, and one with wrong credentials
/// with 401 (`WWW-Authenticate: Basic realm="Tinyproxy"`), on plain requests and on `CONNECT`.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    log: PathBuf,
    peer: Mutex<Peer>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// The proxy shared by every test of this test binary, started on first use.
    pub fn start() -> &'static Proxy {
        static SHARED: OnceLock<Proxy> = OnceLock::new();
        SHARED.get_or_init(Proxy::launch)
    }

    fn launch() -> Proxy {
        let guard = scratch_dir("proxy");
        let dir = guard.path().to_path_buf();
        let log = dir.join("tinyproxy.log");
        let (port, peer) = start_on_free_port("tinyproxy", |port| {
            // No `ConnectPort` line: CONNECT to any port (the registries' ports are random).
            let conf = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\n\
                 MaxClients 64\nBasicAuth {PROXY_USER} {PROXY_PASSWORD}\nDisableViaHeader Yes\n",
                log.display()
            );
            let path = dir.join("tinyproxy.conf");
            fs::write(&path, conf).expect("write tinyproxy.conf");
            let mut cmd = Command::new("tinyproxy");
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .arg("-d")
                .arg("-c")
                .arg(&path);
            let mut peer = Peer::spawn("tinyproxy", cmd, &dir.join("stderr.log"))
                .map_err(|e| format!("spawn tinyproxy: {e}"))?;
            peer.wait_ready(|| port_open(port))?;
            Ok((port, peer))
        });
        Proxy {
            port,
            log,
            peer: Mutex::new(peer),
            _dir: guard,
        }
    }

    /// `http://127.0.0.1:<port>`, without credentials.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines the proxy received (`CONNECT host:port HTTP/1.1`,
    /// `GET http://host:port/path HTTP/1.1`), oldest first, whether or not it let them through.
    pub fn requests(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once("): ").filter(|_| l.contains("Request (")))
            .map(|(_, req)| req.trim().to_string())
            .collect()
    }

    /// An `Opaque` Secret named `name` for an ImageRepository's `proxySecretRef`: `address`,
    /// and `username` / `password` when given.
    pub fn secret_yaml(&self, name: &str, credentials: Option<(&str, &str)>) -> String {
        let address = self.address();
        let mut entries = vec![("address", address.as_str())];
        if let Some((user, pass)) = credentials {
            entries.push(("username", user));
            entries.push(("password", pass));
        }
        super::yaml::secret(name, "Opaque", &entries)
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }
}
