//! Acceptance tests for the service's object handling (issue 7) through `tagline run --once`
//! on the real registry and git http-backend: `suspend: true` is honoured on every kind.

mod common;
mod e2e_support;

use common::*;
use e2e_support::*;

/// Issue 7, Running: "`suspend: true` is honoured on all kinds". Each kind suspended in turn
/// holds the commit back (and says so in its outcome); with none suspended, it lands.
#[test]
fn suspend_is_honoured_on_every_kind() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        // Rescan on every run, so a suspended repository would otherwise be scanned.
        .replacen("interval: 5m", "interval: 1ms", 1);
    let suspend = |kind: &str| {
        let head = format!("kind: {kind}\nmetadata:\n  name: ");
        let at = objects.find(&head).expect("kind in objects") + head.len();
        let spec = at + objects[at..].find("spec:\n").expect("spec") + "spec:\n".len();
        format!("{}  suspend: true\n{}", &objects[..spec], &objects[spec..])
    };
    let state = proc::scratch_dir("accept-state");
    let pinned = |tag: &str| format!("{}/{}:{tag} #", s.registry.host(), s.image);

    // The policy suspended: it chooses nothing, so nothing is written.
    s.config.write("objects.yaml", &suspend("ImagePolicy"));
    let run = run_with_state(&s.config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        line(&run, "ImagePolicy default/app"),
        "ImagePolicy default/app: skipped: suspended"
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1, "{}", run.stderr);

    // The repository suspended (with a fresh state dir): not scanned, so the policy has no
    // tags and nothing is written.
    let state_repo = proc::scratch_dir("accept-state");
    s.config.write("objects.yaml", &suspend("ImageRepository"));
    let run = run_with_state(&s.config, state_repo.path());
    assert_eq!(
        line(&run, "ImageRepository default/app"),
        "ImageRepository default/app: skipped: suspended"
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1, "{}", run.stderr);

    // The automation suspended: the policy chooses 1.2.0, but nothing is pushed.
    s.config
        .write("objects.yaml", &suspend("ImageUpdateAutomation"));
    let run = run_with_state(&s.config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        line(&run, "ImagePolicy default/app").ends_with(":1.2.0"),
        "{}",
        run.stderr
    );
    assert_eq!(
        line(&run, "ImageUpdateAutomation default/fleet"),
        "ImageUpdateAutomation default/fleet: skipped: suspended"
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1, "{}", run.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(&pinned("1.0.0")));

    // Nothing suspended: the commit lands.
    s.config.write("objects.yaml", &objects);
    let run = run_with_state(&s.config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2, "{}", run.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(&pinned("1.2.0")));
}

/// Issue 7, Running: "`SIGTERM`: stop taking work, let a push in flight finish or abandon it
/// cleanly, exit; never a partial push". The push is held in the server's pre-receive hook
/// when SIGTERM arrives; once the hook lets it go, the service exits 0, the branch holds the
/// whole commit or nothing, and a restart on the same state completes the work exactly once.
#[test]
fn sigterm_with_a_push_in_flight_exits_cleanly_and_a_restart_commits_once() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let dir = s.git.git_dir(&s.fleet);
    let (waiting, release) = (dir.join("waiting"), dir.join("release"));
    s.git.set_hook(
        &s.fleet,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\ntouch {waiting}\ni=0\nwhile [ ! -e {release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\nexit 0\n",
            waiting = waiting.display(),
            release = release.display(),
        ),
    );
    let state = proc::scratch_dir("accept-state");
    let mut svc = Service::builder(&s.config).state(state.path()).start();
    svc.wait_for("the push to arrive", |_| waiting.exists());
    svc.signal(libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(&release, "").unwrap();
    let status = svc.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", svc.log());
    // Whole or nothing on the remote.
    let log = s.git.log(&s.fleet, "main");
    let pinned = |tag: &str| format!("{}/{}:{tag} #", s.registry.host(), s.image);
    let file = s.git.file(&s.fleet, "main", "deploy/app.yaml");
    match log.len() {
        1 => assert!(file.contains(&pinned("1.0.0")), "{file}"),
        2 => assert!(file.contains(&pinned("1.2.0")), "{file}"),
        n => panic!("{n} commits: {log:#?}\n{}", svc.log()),
    }
    assert!(!svc.log().contains("panicked"), "{}", svc.log());

    // A restart on the same state finishes the work exactly once.
    let run = run_with_state(&s.config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 2, "{log:#?}\n{}", run.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(&pinned("1.2.0")));
}
