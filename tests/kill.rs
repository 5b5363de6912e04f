//! Killing tagline with SIGKILL at chosen points of a run (mid-scan, push in flight, remote
//! updated but state not saved, state being saved), for `run --once` and for the service:
//! the remote is left either unchanged or fully updated, the state file is never torn, and a
//! restart with the same state directory ends with exactly one tagline commit carrying the
//! right content, never a duplicate or a revert.
//!
//! Each point is reached deterministically: a proxy in front of the registry holds the scan's
//! connection, a pre-receive / post-receive hook on the real git server blocks until the test
//! releases it, inotify reports the state save's temporary file.

mod common;
mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::holding_proxy::HoldingProxy;
use common::*;
use e2e_support::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Once,
    Service,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    /// The registry has accepted the scan's connection and holds it.
    MidScan,
    /// The pack is on the server and its pre-receive hook runs: the ref is not updated yet.
    PushInFlight,
    /// The ref is updated (post-receive hook running), tagline has not heard back, so it has
    /// not saved its state.
    RemoteUpdated,
    /// The state save has created its temporary file.
    DuringSave,
}

const WAIT: Duration = Duration::from_secs(60);

fn wait_until(what: &str, child: &mut Child, log: &Path, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "tagline exited ({status}) before {what}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A hook that, while `<ctl>/armed` exists, records `<ctl>/entered`, waits for
/// `<ctl>/release` (at most a minute), then records `<ctl>/left`.
fn blocking_hook(ctl: &Path) -> String {
    let c = ctl.display();
    format!(
        "#!/bin/sh
cat >/dev/null
[ -e '{c}/armed' ] || exit 0
touch '{c}/entered'
i=0
while [ ! -e '{c}/release' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
touch '{c}/left'
exit 0
"
    )
}

/// Holds every open of a file directly in `dir` (fanotify permission events) and, on the
/// first open of the state save's temporary file (`state.json.*.tmp`), kills the opening process while
/// its open is held: the save has begun and written nothing. Returns the watcher thread,
/// which yields the file's name. Needs CAP_SYS_ADMIN (the tests run as root).
fn kill_at_state_save(dir: &Path) -> std::thread::JoinHandle<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("path");
    // SAFETY: plain syscalls on a descriptor this test owns.
    let fd = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC,
            (libc::O_RDONLY | libc::O_LARGEFILE) as libc::c_uint,
        )
    };
    assert!(
        fd >= 0,
        "fanotify_init: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: as above; `path` outlives the call.
    let rc = unsafe {
        libc::fanotify_mark(
            fd,
            libc::FAN_MARK_ADD,
            libc::FAN_OPEN_PERM | libc::FAN_EVENT_ON_CHILD,
            libc::AT_FDCWD,
            path.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "fanotify_mark: {}", std::io::Error::last_os_error());
    std::thread::spawn(move || {
        let size = std::mem::size_of::<libc::fanotify_event_metadata>();
        let mut buf = vec![0u8; 64 * size];
        loop {
            // SAFETY: reading into a buffer we own; events are parsed within `n` bytes.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            assert!(n > 0, "fanotify read: {}", std::io::Error::last_os_error());
            let mut off = 0usize;
            let mut hit = None;
            while off + size <= n as usize {
                // SAFETY: the kernel writes whole, possibly unaligned, metadata records.
                let ev: libc::fanotify_event_metadata =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                off += ev.event_len as usize;
                if ev.fd < 0 {
                    continue;
                }
                let name = std::fs::read_link(format!("/proc/self/fd/{}", ev.fd))
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_default();
                let mut response = libc::fanotify_response {
                    fd: ev.fd,
                    response: libc::FAN_ALLOW,
                };
                if hit.is_none() && is_state_temp(&name) {
                    // SAFETY: the process is blocked in open() until we answer.
                    unsafe { libc::kill(ev.pid, libc::SIGKILL) };
                    response.response = libc::FAN_DENY;
                    hit = Some(name);
                }
                // SAFETY: answering the kernel and closing the event's descriptor.
                unsafe {
                    libc::write(
                        fd,
                        (&response as *const libc::fanotify_response).cast(),
                        std::mem::size_of::<libc::fanotify_response>(),
                    );
                    libc::close(ev.fd);
                }
            }
            if let Some(name) = hit {
                // SAFETY: closing the group allows anything still pending.
                unsafe { libc::close(fd) };
                return name;
            }
        }
    })
}

/// Waits until no process (receive-pack, its hooks) works in the bare repository `git_dir`:
/// the server has finished or abandoned the killed client's push.
fn wait_for_server_idle(git_dir: &Path) {
    let git_dir = git_dir.canonicalize().expect("git dir");
    let deadline = Instant::now() + WAIT;
    loop {
        let busy = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .any(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == git_dir));
        if !busy {
            return;
        }
        assert!(Instant::now() < deadline, "the git server never settled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn(mode: Mode, config: &ConfigDir, state: &Path, log: &Path) -> Child {
    let mut cmd = tagline();
    cmd.args(["run", "--config"])
        .arg(config.path())
        .arg("--state-dir")
        .arg(state);
    if mode == Mode::Once {
        cmd.arg("--once");
    }
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    cmd.spawn().expect("start tagline")
}

fn sigkill(child: &mut Child) {
    // SAFETY: signalling our own child, which has not been reaped yet.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -KILL");
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "tagline was still running"
    );
}

/// A state save's temporary file: `state.json.<random>.tmp`.
fn is_state_temp(name: &str) -> bool {
    name.starts_with("state.json.") && name.ends_with(".tmp")
}

/// The state file is absent or a whole JSON document; no other non-temporary file appears.
fn assert_state_whole(state: &Path) {
    let file = state.join("state.json");
    if let Ok(bytes) = std::fs::read(&file) {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("torn state file {}: {e}", file.display()));
        assert!(v.is_object(), "{v}");
    }
}

struct Case {
    s: Setup,
    state: tempfile::TempDir,
    ctl: tempfile::TempDir,
    logs: tempfile::TempDir,
    pinned: String,
}

impl Case {
    /// The remote holds the initial commit, or it plus exactly one tagline commit that pins
    /// the new tag; returns how many tagline commits it holds.
    fn check_remote(&self, after: &str) -> usize {
        // One snapshot: the tip, then its history and file.
        let tip = self.s.git.head(&self.s.fleet, "main").expect("main exists");
        let log = self.s.git.log(&self.s.fleet, &tip);
        let content = self.s.git.file(&self.s.fleet, &tip, "deploy/app.yaml");
        match log.as_slice() {
            [initial] => {
                assert_eq!(initial.sha, self.s.initial_head, "{after}");
                assert!(content.contains(":1.0.0"), "{after}: {content}");
                0
            }
            [bump, initial] => {
                assert_eq!(initial.sha, self.s.initial_head, "{after}");
                assert_eq!(bump.parents, std::slice::from_ref(&initial.sha), "{after}");
                assert_eq!(bump.author_name, "Tagline Bot", "{after}");
                assert!(content.contains(&self.pinned), "{after}: {content}");
                let diff = self.s.git.diff(&self.s.fleet, &initial.sha, &bump.sha);
                let changed: Vec<&str> = diff
                    .lines()
                    .filter(|l| {
                        (l.starts_with('+') || l.starts_with('-'))
                            && !l.starts_with("+++")
                            && !l.starts_with("---")
                    })
                    .collect();
                assert_eq!(changed.len(), 2, "{after}: one line changed:\n{diff}");
                1
            }
            more => panic!("{after}: more than one tagline commit: {more:#?}"),
        }
    }
}

fn kill_then_restart(mode: Mode, point: Point) {
    let registry = Registry::start(RegistryOptions::default());
    let s = setup(registry, GitServer::start(GitOptions::default()));
    let state = proc::scratch_dir("kill-state");
    let ctl = proc::scratch_dir("kill-ctl");
    let logs = proc::scratch_dir("kill-logs");
    let mut host = registry.host().to_string();

    let proxy = HoldingProxy::start(registry.host().parse().expect("registry address"));
    match point {
        Point::MidScan => {
            host = proxy.host();
            let objects = objects(registry, s.git, &s.image, &s.fleet, "^1.0.0")
                .replace(registry.host(), &host);
            s.config.write("objects.yaml", &objects);
            proxy.hold();
        }
        Point::PushInFlight | Point::RemoteUpdated => {
            let hook = if point == Point::PushInFlight {
                "pre-receive"
            } else {
                "post-receive"
            };
            s.git.set_hook(&s.fleet, hook, &blocking_hook(ctl.path()));
            std::fs::write(ctl.path().join("armed"), "").expect("arm the hook");
        }
        Point::DuringSave => {}
    }
    let pinned = format!("{host}/{}:1.2.0", s.image);
    let case = Case {
        s,
        state,
        ctl,
        logs,
        pinned,
    };
    let state = case.state.path();
    let ctl = case.ctl.path();
    let log1 = case.logs.path().join("first.log");

    // The first run, killed at the point.
    std::fs::create_dir_all(state).expect("state dir");
    let watcher = (point == Point::DuringSave).then(|| kill_at_state_save(state));
    let mut child = spawn(mode, &case.s.config, state, &log1);
    match point {
        Point::MidScan => {
            wait_until("the scan's connection", &mut child, &log1, || {
                proxy.arrivals() > 0
            });
            sigkill(&mut child);
            assert_eq!(case.check_remote("killed mid-scan"), 0);
            assert!(!state.join("state.json").exists(), "nothing saved mid-scan");
        }
        Point::PushInFlight => {
            wait_until("the pre-receive hook", &mut child, &log1, || {
                ctl.join("entered").exists()
            });
            sigkill(&mut child);
            assert!(!state.join("state.json").exists(), "nothing saved mid-push");
            assert_eq!(case.check_remote("killed while the push was in flight"), 0);
        }
        Point::RemoteUpdated => {
            wait_until("the post-receive hook", &mut child, &log1, || {
                ctl.join("entered").exists()
            });
            assert_eq!(case.check_remote("the ref updated"), 1);
            assert!(
                !state.join("state.json").exists(),
                "tagline saved its state before the push returned"
            );
            sigkill(&mut child);
        }
        Point::DuringSave => {
            let name = watcher.expect("watcher").join().expect("watcher thread");
            let status = child.wait().expect("wait");
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGKILL), "killed at {name}");
            assert!(
                !state.join("state.json").exists(),
                "the first save was stopped before its rename"
            );
            assert_eq!(case.check_remote("killed while saving"), 1);
        }
    }
    assert_state_whole(state);

    // Let the server side finish whatever it was doing, then restart with the same state.
    proxy.release();
    let _ = std::fs::remove_file(ctl.join("armed"));
    std::fs::write(ctl.join("release"), "").expect("release the hook");
    if ctl.join("entered").exists() {
        let deadline = Instant::now() + WAIT;
        while !ctl.join("left").exists() {
            assert!(Instant::now() < deadline, "the hook never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    wait_for_server_idle(&case.s.git.git_dir(&case.s.fleet));
    let after_kill = case.check_remote("after the kill settled");
    eprintln!("{mode:?} killed at {point:?}: the remote then held {after_kill} tagline commit(s)");

    let log2 = case.logs.path().join("second.log");
    let mut child = spawn(mode, &case.s.config, state, &log2);
    match mode {
        Mode::Once => {
            let status = child.wait().expect("wait");
            let text = std::fs::read_to_string(&log2).unwrap_or_default();
            assert_eq!(status.code(), Some(0), "{text}");
        }
        Mode::Service => {
            wait_until(
                "the restarted service's first pass",
                &mut child,
                &log2,
                || {
                    std::fs::read_to_string(&log2)
                        .unwrap_or_default()
                        .contains("ImageUpdateAutomation default/fleet: ")
                },
            );
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().expect("wait");
            assert_eq!(status.code(), Some(0));
        }
    }
    let text = std::fs::read_to_string(&log2).unwrap_or_default();
    assert_state_whole(state);
    assert_eq!(
        case.check_remote(&format!("after the restart (log: {text})")),
        1,
        "{text}"
    );
    if after_kill == 1 {
        assert!(!text.contains("pushed commit"), "pushed again:\n{text}");
    }

    // The restart removed what the killed save left behind.
    let leftovers: Vec<String> = std::fs::read_dir(state)
        .expect("state dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_state_temp(n))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{mode:?} killed at {point:?}: temporary files left in the state dir: {leftovers:?}"
    );

    // And a third run has nothing to do.
    let head = case.s.git.head(&case.s.fleet, "main");
    let third = run_with_state(&case.s.config, state);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(
        case.s.git.head(&case.s.fleet, "main"),
        head,
        "{}",
        third.stderr
    );
    let _: PathBuf = log1;
}

#[test]
fn once_killed_mid_scan_then_restarted_commits_once() {
    kill_then_restart(Mode::Once, Point::MidScan);
}

#[test]
fn once_killed_with_its_push_in_flight_then_restarted_commits_once() {
    kill_then_restart(Mode::Once, Point::PushInFlight);
}

#[test]
fn once_killed_after_the_remote_updated_before_saving_then_restarted_commits_nothing_more() {
    kill_then_restart(Mode::Once, Point::RemoteUpdated);
}

#[test]
fn once_killed_while_saving_its_state_then_restarted_commits_nothing_more() {
    kill_then_restart(Mode::Once, Point::DuringSave);
}

#[test]
fn service_killed_mid_scan_then_restarted_commits_once() {
    kill_then_restart(Mode::Service, Point::MidScan);
}

#[test]
fn service_killed_with_its_push_in_flight_then_restarted_commits_once() {
    kill_then_restart(Mode::Service, Point::PushInFlight);
}

#[test]
fn service_killed_after_the_remote_updated_before_saving_then_restarted_commits_nothing_more() {
    kill_then_restart(Mode::Service, Point::RemoteUpdated);
}

#[test]
fn service_killed_while_saving_its_state_then_restarted_commits_nothing_more() {
    kill_then_restart(Mode::Service, Point::DuringSave);
}
