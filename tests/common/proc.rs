//! Peer processes and scratch space: children that die with the test process, per-process temp
//! dirs that are removed at exit, free loopback ports, and running helper CLIs.
//!
//! Lifecycle: shared peers live in statics, which Rust never drops. So every peer is spawned
//! (1) from one dedicated, never-ending spawner thread with `PR_SET_PDEATHSIG = SIGKILL` (the
//! signal fires when the *spawning thread* ends, so it must not be a test thread), and (2) as
//! the leader of its own process group, which an `atexit` handler kills (grandchildren too)
//! before removing this process's scratch root. A test process killed hard still takes its
//! peers with it (PDEATHSIG); its scratch root is swept by the next test process that starts.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Prefix of each test process's scratch root (`<base>/tagline-harness-<pid>`).
const ROOT_PREFIX: &str = "tagline-harness-";

/// How long a peer may take to answer before its start counts as failed.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Process-group ids of the live peers, killed by the `atexit` handler.
static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// This test process's scratch root, once created.
static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// This test process's scratch root, under `/dev/shm` when present (faster), else the temp dir.
/// Created on first use; removed when the process exits. Stale roots of dead processes are
/// removed here too.
pub fn scratch_root() -> &'static Path {
    ROOT.get_or_init(|| {
        let base = scratch_base();
        sweep_stale_roots();
        let root = base.join(format!("{ROOT_PREFIX}{}", std::process::id()));
        fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
        // SAFETY: `at_exit` is a plain `extern "C"` function that never unwinds.
        unsafe { libc::atexit(at_exit) };
        root
    })
}

/// A new directory under the scratch root, removed when the returned guard drops (and, for
/// guards that live in statics, when the process exits).
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(scratch_root())
        .unwrap_or_else(|e| panic!("create scratch dir {prefix}: {e}"))
}

/// A `HOME` for the CLI tools the harness runs: empty, under the scratch root, shared.
pub fn scratch_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let home = scratch_root().join("home");
        fs::create_dir_all(home.join(".config"))
            .unwrap_or_else(|e| panic!("create {}: {e}", home.display()));
        home
    })
}

/// Where scratch roots live: `/dev/shm` when present with at least 1 GiB free (a registry
/// with many tags writes many small files; tmpfs is about 3x faster), else the temp dir.
fn scratch_base() -> PathBuf {
    const MIN_FREE: u64 = 1 << 30;
    let shm = Path::new("/dev/shm");
    let free = || {
        let path = std::ffi::CString::new("/dev/shm").expect("no NUL");
        // SAFETY: statvfs fills the zeroed struct; the path is a valid C string.
        unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            (libc::statvfs(path.as_ptr(), &mut st) == 0)
                .then(|| st.f_bavail as u64 * st.f_frsize as u64)
        }
    };
    if shm.is_dir() && free().is_some_and(|f| f >= MIN_FREE) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes the scratch roots of test processes that no longer run (killed before their exit
/// handler could clean up). Runs when a test process creates its own root.
pub fn sweep_stale_roots() {
    let Ok(entries) = fs::read_dir(scratch_base()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(ROOT_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

extern "C" fn at_exit() {
    // Never block at exit: a test thread may still hold the lock in theory.
    if let Ok(live) = LIVE.try_lock() {
        for &pgid in live.iter() {
            // SAFETY: plain syscalls on ids this process created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
                libc::waitpid(pgid, std::ptr::null_mut(), 0);
            }
        }
    }
    if let Some(root) = ROOT.get() {
        let _ = fs::remove_dir_all(root);
    }
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Runs `job` on the harness's dedicated spawner thread, which lives as long as the process.
fn on_spawner_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("start the harness spawner thread");
        Mutex::new(tx)
    });
    let (done_tx, done_rx) = mpsc::channel();
    let job: SpawnJob = Box::new(move || {
        let _ = done_tx.send(job());
    });
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job)
        .expect("the harness spawner thread is gone");
    done_rx
        .recv()
        .expect("the harness spawner thread dropped a job")
}

/// A long-running peer process (registry, web server, daemon). Dropping it kills its whole
/// process group. Its stdout and stderr go to `log`, shown when it fails to start.
#[derive(Debug)]
pub struct Peer {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Peer {
    /// Spawns `cmd` as a peer named `name`, logging to `log`. The command's environment is
    /// used as given: callers clear it (`Command::env_clear`) where the host's could leak in.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> io::Result<Peer> {
        let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(io::Error::other("the test process exited during spawn"));
                }
                Ok(())
            });
        }
        let child = on_spawner_thread(move || cmd.spawn())?;
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id() as i32);
        Ok(Peer {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The path of the peer's log (its stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last few KiB of the peer's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// `Err` with the exit status and log when the peer has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); log:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(format!("{}: wait: {e}", self.name)),
        }
    }

    /// Polls `ready` until it returns true, failing when the peer exits or after
    /// [`START_TIMEOUT`].
    pub fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ready() {
                return Ok(());
            }
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not become ready within {START_TIMEOUT:?}; log:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the peer's process group and reaps it.
    pub fn stop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling a process group this harness created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&p| p != pgid);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a peer on a fresh free port, retrying with another port when it dies before it is
/// ready (another process may take the port between our probe and its bind).
pub fn start_on_free_port<T>(name: &str, mut attempt: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for _ in 0..5 {
        match attempt(free_port()) {
            Ok(peer) => return peer,
            Err(e) => errors.push(e),
        }
    }
    panic!("could not start {name}:\n{}", errors.join("\n---\n"));
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    // A connection to a free ephemeral port can connect to itself (TCP simultaneous open:
    // same local and peer address): that is no listener, and it holds the port the peer is
    // about to bind.
    match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) {
        Ok(s) => s.local_addr().ok() != s.peer_addr().ok(),
        Err(_) => false,
    }
}

/// Runs a helper CLI to completion and returns its stdout; panics with its stderr when it
/// fails. `what` names the step in the panic message.
pub fn run(what: &str, cmd: &mut Command) -> String {
    let out = output(what, cmd);
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {:?}\nstderr:\n{}\nstdout:\n{}",
            out.status,
            cmd,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{what}: stdout is not UTF-8: {e}"))
}

/// Runs a helper CLI to completion (stdin closed) and returns its output, whatever its status.
pub fn output(what: &str, cmd: &mut Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()))
}

/// Environment variables through which the host's TLS trust, git config or proxies could leak
/// into a child process: removed from every command the harness builds.
pub fn is_leaky_env(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    name.starts_with("GIT_")
        || name.starts_with("SSL_")
        || matches!(
            name,
            "CURL_CA_BUNDLE"
                | "REQUESTS_CA_BUNDLE"
                | "XDG_CONFIG_HOME"
                | "DOCKER_CONFIG"
                | "REGISTRY_AUTH_FILE"
                | "OPENSSL_CONF"
                | "http_proxy"
                | "https_proxy"
                | "all_proxy"
                | "no_proxy"
                | "HTTP_PROXY"
                | "HTTPS_PROXY"
                | "ALL_PROXY"
                | "NO_PROXY"
        )
}

/// Removes every [`is_leaky_env`] variable of this process from `cmd` and points `HOME` and
/// `XDG_CONFIG_HOME` at `home`.
pub fn scrub_env(cmd: &mut Command, home: &Path) {
    for (name, _) in std::env::vars_os() {
        if is_leaky_env(&name) {
            cmd.env_remove(&name);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"));
}
