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
