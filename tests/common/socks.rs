//! A real SOCKS5 proxy peer: OpenSSH's dynamic forwarding (`ssh -D`) through the harness's
//! own `sshd` ([`super::git::SshServer`]), on 127.0.0.1. It asks for no login (OpenSSH's
//! SOCKS server has none); its debug log tells which destinations it was asked for.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::git::SshServer;
use super::proc::{port_open, scratch_dir, scratch_home, scrub_env, start_on_free_port, Peer};

/// A running `ssh -N -D 127.0.0.1:<port>`.
#[derive(Debug)]
pub struct SocksProxy {
    port: u16,
    log: PathBuf,
    peer: Mutex<Peer>,
    _dir: tempfile::TempDir,
}

impl SocksProxy {
    /// The SOCKS proxy shared by every test of this test binary, started on first use.
    pub fn start() -> &'static SocksProxy {
        static SHARED: OnceLock<SocksProxy> = OnceLock::new();
        SHARED.get_or_init(SocksProxy::launch)
    }

    fn launch() -> SocksProxy {
        let ssh = SshServer::start();
        let guard = scratch_dir("socks");
        let dir = guard.path().to_path_buf();
        let log = dir.join("ssh.log");
        let known_hosts = dir.join("known_hosts");
        fs::write(&known_hosts, ssh.known_hosts()).expect("write known_hosts");
        let (port, peer) = start_on_free_port("ssh -D", |port| {
            let mut cmd = Command::new("ssh");
            scrub_env(&mut cmd, scratch_home());
            cmd.args(["-vv", "-N", "-F", "/dev/null", "-E"])
                .arg(&log)
                .args(["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
                .arg("-i")
                .arg(ssh.client_key_path())
                .args(["-p", &ssh.port().to_string()])
                .args(["-D", &format!("127.0.0.1:{port}")])
                .arg(format!("{}@127.0.0.1", ssh.user()));
            let mut peer = Peer::spawn("ssh -D", cmd, &dir.join("stderr.log"))
                .map_err(|e| format!("spawn ssh -D: {e}"))?;
            peer.wait_ready(|| port_open(port))?;
            Ok((port, peer))
        });
        SocksProxy {
            port,
            log,
            peer: Mutex::new(peer),
            _dir: guard,
        }
    }

    /// `socks5://127.0.0.1:<port>` (`scheme` may be `socks5h` to have names resolved there).
    pub fn address(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The destinations (`host:port`) it was asked to connect to, oldest first.
    pub fn connections(&self) -> Vec<String> {
        // OpenSSH (at `-vv`) logs each SOCKS request as
        // `debug2: channel <n>: dynamic request: socks5 host <host> port <port> command 1`.
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let rest = l.split_once("dynamic request: socks")?.1;
                let (_, rest) = rest.split_once(" host ")?;
                let (host, rest) = rest.split_once(" port ")?;
                let port = rest.split_whitespace().next()?;
                Some(format!("{host}:{port}"))
            })
            .collect()
    }

    /// An `Opaque` Secret named `name` for a `proxySecretRef`, with the address in `scheme`.
    pub fn secret_yaml(&self, name: &str, scheme: &str) -> String {
        super::yaml::secret(name, "Opaque", &[("address", &self.address(scheme))])
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }
}
