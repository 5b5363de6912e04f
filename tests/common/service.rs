//! A running `tagline run` (the service) for end-to-end tests: its stderr in a log file, its
//! HTTP endpoints on a free loopback port, SIGKILLed when dropped whatever the test's fate.
//!
//! ```ignore
//! let mut service = Service::start(&config);                 // own state dir, --listen
//! let service = Service::builder(&config).state(dir).args(&["--log-format", "json"]).start();
//! service.wait_for("a pass", |s| s.passes() > 0);
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{proc, tagline, ConfigDir};

/// How long a wait on the service may take before the test fails (a guard against a hang).
const WAIT: Duration = Duration::from_secs(60);

/// How to start the service; see [`Service::builder`].
pub struct ServiceBuilder<'a> {
    config: &'a ConfigDir,
    state: Option<PathBuf>,
    listen: Option<u16>,
    args: Vec<String>,
}

impl ServiceBuilder<'_> {
    /// The state dir (default: a fresh one of its own).
    pub fn state(mut self, dir: &Path) -> Self {
        self.state = Some(dir.to_path_buf());
        self
    }

    /// Listen on this port (default: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.listen = Some(port);
        self
    }

    /// No `--listen`.
    pub fn without_listen(mut self) -> Self {
        self.listen = None;
        self
    }

    /// More arguments after `run --config <dir>`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn start(self) -> Service {
        let scratch = proc::scratch_dir("service");
        let log = scratch.path().join("stderr.log");
        let state = self.state.unwrap_or_else(|| scratch.path().join("state"));
        let mut cmd = tagline();
        cmd.args(["run", "--config"])
            .arg(self.config.path())
            .args(&self.args)
            .arg("--state-dir")
            .arg(&state);
        if let Some(port) = self.listen {
            cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("stderr log"))
            .spawn()
            .expect("start tagline run");
        Service {
            child,
            log,
            port: self.listen,
            _scratch: scratch,
        }
    }
}

/// The service child process.
pub struct Service {
    child: Child,
    log: PathBuf,
    port: Option<u16>,
    _scratch: tempfile::TempDir,
}

impl Service {
    /// `tagline run --config <config>` with a state dir of its own, listening on a free port.
    pub fn start(config: &ConfigDir) -> Service {
        Service::builder(config).start()
    }

    pub fn builder(config: &ConfigDir) -> ServiceBuilder<'_> {
        ServiceBuilder {
            config,
            state: None,
            listen: Some(proc::free_port()),
            args: Vec::new(),
        }
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port.expect("the service listens")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until `cond` holds; fails with the service's log if it exits or a minute passes.
    pub fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&mut Service) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            assert!(
                self.running(),
                "service exited while waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; log:\n{}", self.log());
    }

    /// Waits (at most a minute) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client")
    }

    /// `GET <path>`: status code and body; None while nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = Service::client()
            .get(format!("http://127.0.0.1:{}{path}", self.port()))
            .send()
            .ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.text().ok()?))
    }

    /// `POST <path>` with `headers` and `body`: the status code.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
        let mut req = Service::client()
            .post(format!("http://127.0.0.1:{}{path}", self.port()))
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().expect("POST to the service").status().as_u16()
    }

    /// `/api/v1/status` (JSON null while it does not answer).
    pub fn status(&self) -> serde_json::Value {
        self.get("/api/v1/status")
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    }

    /// Passes completed, from `/api/v1/status`.
    pub fn passes(&self) -> u64 {
        self.status()["passes"].as_u64().unwrap_or(0)
    }

    /// `/metrics`' samples: series (name and labels, as written) to value.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let (code, body) = self.get("/metrics").expect("/metrics answers");
        assert_eq!(code, 200, "{body}");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("`series value`");
                (series.to_string(), value.parse().expect("a number"))
            })
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
