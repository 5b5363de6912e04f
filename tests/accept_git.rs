//! Acceptance tests for the Git write-back (issue 6) through `tagline run --once`, on the real
//! registry and git http-backend: two automations pushing to one branch (in one run, and from
//! two processes at once) both land; an edit someone else pushes to the same file between
//! fetch and push survives and ours is re-applied on top; without any ref, `master` is used.

mod common;
mod e2e_support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use e2e_support::*;

/// A Deployment at `registry/image:1.0.0` marked for policy `default:<policy>`.
fn deployment(registry: &Registry, image: &str, policy: &str) -> String {
    DEPLOYMENT
        .replace("REGISTRY", registry.host())
        .replace("IMAGE", image)
        .replace("default:app", &format!("default:{policy}"))
}

fn pinned(registry: &Registry, image: &str, tag: &str) -> String {
    format!("{}/{image}:{tag} #", registry.host())
}

/// An ImageRepository and an ImagePolicy named `name` for `image`, range `^1.0.0`.
fn image_objects(registry: &Registry, name: &str, image: &str) -> String {
    format!(
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: {name}
spec:
  image: {host}/{image}
  interval: 5m
  insecure: true
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: {name}
spec:
  imageRepositoryRef:
    name: {name}
  policy:
    semver:
      range: '^1.0.0'
",
        host = registry.host()
    )
}

/// A GitRepository `fleet` on branch `main` (or no ref at all when `branch` is None).
fn git_repository(git: &GitServer, fleet: &str, branch: Option<&str>) -> String {
    let reference = branch
        .map(|b| format!("  ref:\n    branch: {b}\n"))
        .unwrap_or_default();
    format!(
        "---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: fleet
spec:
  url: {url}
  interval: 1m
{reference}",
        url = git.url(fleet)
    )
}

/// An ImageUpdateAutomation `name` on GitRepository `fleet`, updating `path`.
fn automation(name: &str, path: &str) -> String {
    format!(
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: {name}
spec:
  interval: 5m
  sourceRef:
    kind: GitRepository
    name: fleet
  git:
    commit:
      author:
        name: Bot {name}
        email: {name}@example.com
  update:
    path: {path}
    strategy: Setters
"
    )
}

fn output(mut cmd: Command) -> Run {
    let out = cmd.output().expect("run tagline");
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Two images, a fleet repository with a Deployment for each under `deploy/a` and
/// `deploy/b`.
struct Two {
    registry: &'static Registry,
    git: &'static GitServer,
    image_a: String,
    image_b: String,
    fleet: String,
    initial: String,
}

fn two() -> Two {
    let registry = Registry::start(RegistryOptions::default());
    let git = GitServer::start(GitOptions::default());
    let image_a = unique_name("team/a");
    let image_b = unique_name("team/b");
    registry.push_tags(&image_a, &["1.0.0", "1.1.0"]);
    registry.push_tags(&image_b, &["1.0.0", "1.3.0"]);
    let fleet = unique_name("fleet");
    git.create_repo(
        &fleet,
        "main",
        &[
            ("deploy/a/app.yaml", &deployment(registry, &image_a, "a")),
            ("deploy/b/app.yaml", &deployment(registry, &image_b, "b")),
        ],
    );
    let initial = git.head(&fleet, "main").expect("main");
    Two {
        registry,
        git,
        image_a,
        image_b,
        fleet,
        initial,
    }
}

impl Two {
    fn assert_both_landed(&self) {
        let a = self.git.file(&self.fleet, "main", "deploy/a/app.yaml");
        let b = self.git.file(&self.fleet, "main", "deploy/b/app.yaml");
        assert_eq!(
            a,
            deployment(self.registry, &self.image_a, "a").replace(
                &pinned(self.registry, &self.image_a, "1.0.0"),
                &pinned(self.registry, &self.image_a, "1.1.0")
            )
        );
        assert_eq!(
            b,
            deployment(self.registry, &self.image_b, "b").replace(
                &pinned(self.registry, &self.image_b, "1.0.0"),
                &pinned(self.registry, &self.image_b, "1.3.0")
            )
        );
        // A straight line: initial, then one commit per automation, each on the other's.
        let log = self.git.log(&self.fleet, "main");
        assert_eq!(log.len(), 3, "{log:#?}");
        assert_eq!(log[1].parents, vec![self.initial.clone()]);
        assert_eq!(log[0].parents, vec![log[1].sha.clone()]);
        let mut authors: Vec<&str> = log[..2].iter().map(|c| c.author_name.as_str()).collect();
        authors.sort();
        assert_eq!(authors, ["Bot first", "Bot second"]);
    }
}

/// Issue 6, Conflicts: "Two automations pushing to one branch at once both land", within one
/// run sharing one clone cache; the outcome line names the commit, the branch and the change.
#[test]
fn two_automations_on_one_branch_in_one_run_both_land() {
    let t = two();
    let config = ConfigDir::new();
    config.write(
        "objects.yaml",
        &[
            image_objects(t.registry, "a", &t.image_a),
            image_objects(t.registry, "b", &t.image_b),
            git_repository(t.git, &t.fleet, Some("main")),
            automation("first", "./deploy/a"),
            automation("second", "./deploy/b"),
        ]
        .concat(),
    );
    let state = proc::scratch_dir("accept-state");
    let run = output(tagline_once(&config, Some(state.path())));
    assert_eq!(run.code, 0, "{}", run.stderr);
    t.assert_both_landed();
    let log = t.git.log(&t.fleet, "main");
    for (name, file, image, tag) in [
        ("first", "app.yaml", &t.image_a, "1.1.0"),
        ("second", "app.yaml", &t.image_b, "1.3.0"),
    ] {
        let commit = log
            .iter()
            .find(|c| c.author_name == format!("Bot {name}"))
            .expect("commit");
        let l = line(&run, &format!("ImageUpdateAutomation default/{name}"));
        assert!(
            l.contains(&format!("pushed commit {} to main: ", &commit.sha[..7])),
            "{l}"
        );
        // Files are named relative to `update.path`, as in Flux's `.Changed.FileChanges`.
        let host = t.registry.host();
        assert!(
            l.ends_with(&format!(
                "{file}: {host}/{image}:1.0.0 -> {host}/{image}:{tag}"
            )),
            "{l}"
        );
    }
    // Idempotent: a second run commits nothing.
    let again = output(tagline_once(&config, Some(state.path())));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(t.git.log(&t.fleet, "main").len(), 3);
}

/// Issue 6, Conflicts: two tagline processes (each with its own state dir, as two replicas or
/// a service and a manual run would be) push to one branch at once. The first one's push is
/// held in the server's pre-receive hook while the second one lands; released, the first
/// one's ref update fails (main moved), and it must fetch, re-apply and push again.
#[test]
fn two_taglines_pushing_to_one_branch_at_once_both_land() {
    let t = two();
    let objects = |name: &str, path: &str, policy: &str, image: &str| {
        [
            image_objects(t.registry, policy, image),
            git_repository(t.git, &t.fleet, Some("main")),
            automation(name, path),
        ]
        .concat()
    };
    let config_first = ConfigDir::new();
    config_first.write(
        "objects.yaml",
        &objects("first", "./deploy/a", "a", &t.image_a),
    );
    let config_second = ConfigDir::new();
    config_second.write(
        "objects.yaml",
        &objects("second", "./deploy/b", "b", &t.image_b),
    );
    let dir = t.git.git_dir(&t.fleet);
    let (held, waiting, release) = (dir.join("held"), dir.join("waiting"), dir.join("release"));
    let pushes = dir.join("pushes");
    t.git.set_hook(
        &t.fleet,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\necho push >> {pushes}\nif mkdir {held} 2>/dev/null; then\n  touch {waiting}\n  i=0\n  while [ ! -e {release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\nfi\nexit 0\n",
            held = held.display(),
            pushes = pushes.display(),
            waiting = waiting.display(),
            release = release.display(),
        ),
    );
    let state_first = proc::scratch_dir("accept-state");
    let state_second = proc::scratch_dir("accept-state");
    let first = Running::spawn(tagline_once(&config_first, Some(state_first.path())));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !waiting.exists() {
        assert!(Instant::now() < deadline, "the first push never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    // While the first push waits in the hook, the second tagline runs to the end.
    let second = output(tagline_once(&config_second, Some(state_second.path())));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(t
        .git
        .file(&t.fleet, "main", "deploy/b/app.yaml")
        .contains(&pinned(t.registry, &t.image_b, "1.3.0")));
    std::fs::write(&release, "").expect("release the first push");
    let first = first.wait();
    assert_eq!(first.code, 0, "{}", first.stderr);
    t.assert_both_landed();
    let log = t.git.log(&t.fleet, "main");
    assert_eq!(log[0].author_name, "Bot first", "the held one lands last");
    // Three pushes reached the server: the held one (its ref update lost), the second
    // tagline's, and the first one's again, rebuilt on the new tip.
    let pushes = std::fs::read_to_string(&pushes).unwrap();
    assert_eq!(pushes.lines().count(), 3, "{}", first.stderr);
}

/// Issue 6, Conflicts, "never overwrite a commit tagline did not make": someone else's edit of
/// another line of the very file tagline changes, pushed between tagline's fetch and push,
/// survives; tagline's change is applied again on top of it.
#[test]
fn a_concurrent_edit_to_the_same_file_survives_and_ours_is_reapplied() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let original = s.git.file(&s.fleet, "main", "deploy/app.yaml");
    let theirs_content = original.replace("containerPort: 8080", "containerPort: 9090");
    assert_ne!(theirs_content, original);
    let theirs = s.git.commit(
        &s.fleet,
        "competitor",
        &[("deploy/app.yaml", &theirs_content)],
        "someone else changes the port",
    );
    let marker = s.git.git_dir(&s.fleet).join("raced");
    s.git.set_hook(
        &s.fleet,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nif [ ! -e {m} ]; then\n  touch {m}\n  env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main {theirs}\nfi\nexit 0\n",
            m = marker.display()
        ),
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(marker.exists(), "the race happened");
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 3, "initial, theirs, ours: {log:#?}");
    assert_eq!(log[1].sha, theirs);
    assert_eq!(log[0].parents, vec![theirs.clone()]);
    assert_eq!(
        s.git.file(&s.fleet, "main", "deploy/app.yaml"),
        theirs_content.replace(
            &pinned(s.registry, &s.image, "1.0.0"),
            &pinned(s.registry, &s.image, "1.2.0")
        ),
        "their port and our tag"
    );
}

/// Issue 6, Checkout: without `git.checkout.ref` and without the GitRepository's `spec.ref`,
/// Flux checks out branch `master`. With no ref at all the push branch cannot be inferred
/// (Flux: "push spec not provided, and cannot be inferred ..."), so `git.push.branch` names
/// it; naming `master` is then no review branch but a push to the checkout branch.
#[test]
fn without_any_ref_the_automation_checks_out_master() {
    let registry = Registry::start(RegistryOptions::default());
    let git = GitServer::start(GitOptions::default());
    let image = unique_name("team/app");
    registry.push_tags(&image, &["1.0.0", "1.4.0"]);
    let fleet = unique_name("fleet");
    git.create_repo(
        &fleet,
        "master",
        &[("deploy/app.yaml", &deployment(registry, &image, "app"))],
    );
    // Another branch, with the marked file at another tag: it must stay untouched, and the
    // commit on master must be built on master's tree.
    git.commit(
        &fleet,
        "main",
        &[
            ("README.md", "main\n"),
            (
                "deploy/app.yaml",
                &deployment(registry, &image, "app").replace(":1.0.0 #", ":0.9.0 #"),
            ),
        ],
        "main",
    );
    let main_head = git.head(&fleet, "main");
    let master_head = git.head(&fleet, "master").expect("master");
    let config = ConfigDir::new();
    let objects = [
        image_objects(registry, "app", &image),
        git_repository(git, &fleet, None),
        automation("fleet", "./deploy"),
    ]
    .concat();
    config.write("objects.yaml", &objects);
    let run = output(tagline_once(&config, None));
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        line(&run, "ImageUpdateAutomation default/fleet").contains(
            "push spec not provided, and cannot be inferred from .spec.git.checkout.ref or GitRepository .spec.ref"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        git.head(&fleet, "master").as_deref(),
        Some(master_head.as_str())
    );

    config.write(
        "objects.yaml",
        &objects.replace(
            "  update:\n",
            "    push:\n      branch: master\n  update:\n",
        ),
    );
    let run = output(tagline_once(&config, None));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        git.file(&fleet, "master", "deploy/app.yaml"),
        deployment(registry, &image, "app").replace(
            &pinned(registry, &image, "1.0.0"),
            &pinned(registry, &image, "1.4.0")
        )
    );
    let log = git.log(&fleet, "master");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].parents, vec![master_head]);
    assert_eq!(git.head(&fleet, "main"), main_head);
    assert!(!git
        .files(&fleet, "master")
        .contains(&"README.md".to_string()));
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(l.contains(" to master: "), "{l}");
}

/// Issue 6, Commits: "a template that fails to parse or run blocks the commit with a clear
/// error". A template that parses but fails when run (Go: `len` of an int) pushes nothing,
/// leaves the cached clone clean, and the next run with a good template commits exactly the
/// one change.
#[test]
fn a_template_failing_at_run_time_blocks_the_commit_and_leaves_nothing_behind() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let good = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0");
    assert!(good.contains(MESSAGE));
    s.config
        .write("objects.yaml", &good.replace(MESSAGE, "Bump {{ len 3 }}"));
    let state = proc::scratch_dir("accept-state");
    let run = run_with_state(&s.config, state.path());
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(l.contains("failed: ") && l.contains("len"), "{l}");
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);

    s.config.write("objects.yaml", &good);
    let run = run_with_state(&s.config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0].message.trim_end(), "Bump images for default/fleet");
    assert_eq!(
        s.git.file(&s.fleet, "main", "deploy/app.yaml"),
        DEPLOYMENT
            .replace("REGISTRY", s.registry.host())
            .replace("IMAGE", &s.image)
            .replace(":1.0.0 #", ":1.2.0 #")
    );
    let diff = s.git.diff(&s.fleet, &s.initial_head, &log[0].sha);
    assert_eq!(
        diff.lines().filter(|l| l.starts_with("diff --git")).count(),
        1,
        "{diff}"
    );
}

/// `gpg` in a GNUPGHOME of its own (`--batch`, loopback pinentry); its agent is stopped when
/// dropped.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        use std::os::unix::fs::PermissionsExt;
        let home = proc::scratch_dir("gnupg");
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Gpg { home }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback"]);
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        proc::run("gpg", self.cmd().args(args))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// Issue 6, Commits: `git.commit.signingKey` with `type: gpg` from a Secret's `git.asc` and
/// `passphrase`, end to end: the pushed commit verifies with `git verify-commit` against the
/// public key, and neither the key nor the passphrase shows in the output.
#[test]
fn gpg_signed_commits_with_a_passphrase_verify_with_git() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let signer = Gpg::new();
    let passphrase = "gpg-Pa55phrase-3e1d";
    signer.run(&[
        "--passphrase",
        passphrase,
        "--quick-gen-key",
        "Tagline Bot <bot@example.com>",
        "ed25519",
        "sign",
        "never",
    ]);
    let armored = signer.run(&[
        "--passphrase",
        passphrase,
        "--armor",
        "--export-secret-keys",
        "bot@example.com",
    ]);
    let public = signer.run(&["--armor", "--export", "bot@example.com"]);
    s.config.write(
        "signing.yaml",
        &secret(
            "signing",
            "Opaque",
            &[("git.asc", &armored), ("passphrase", passphrase)],
        ),
    );
    s.config.write(
        "objects.yaml",
        &objects_with(
            s.registry,
            s.git,
            &s.image,
            &s.fleet,
            "^1.0.0",
            &Extra {
                commit: "      signingKey:\n        type: gpg\n        secretRef:\n          name: signing\n".into(),
                ..Default::default()
            },
        ),
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("PGP PRIVATE KEY"), "{}", run.stderr);
    assert!(!run.stderr.contains(passphrase), "{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);

    // A keyring that holds only the public key verifies the pushed commit.
    let verifier = Gpg::new();
    let public_file = verifier.home.path().join("public.asc");
    std::fs::write(&public_file, public).unwrap();
    verifier.run(&["--import", public_file.to_str().unwrap()]);
    let out = git()
        .env("GNUPGHOME", verifier.home.path())
        .arg("--git-dir")
        .arg(s.git.git_dir(&s.fleet))
        .args(["verify-commit", "-v", "main"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify-commit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The initial commit (by the harness) is not signed: verification is not vacuous.
    let initial = git()
        .env("GNUPGHOME", verifier.home.path())
        .arg("--git-dir")
        .arg(s.git.git_dir(&s.fleet))
        .args(["verify-commit", &s.initial_head])
        .output()
        .unwrap();
    assert!(!initial.status.success());
}

/// Issue 6, Transports: "the GitRepository's `timeout` bounds each clone, fetch and push",
/// through the config: a Git server that accepts connections and never answers ends the run
/// with a timeout naming the limit the GitRepository set.
#[test]
fn the_git_repository_timeout_bounds_a_silent_server() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold connections without a byte of answer (the thread ends with the test
    // process).
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace(
            &s.git.url(&s.fleet),
            &format!("http://127.0.0.1:{port}/git/silent.git"),
        )
        .replace(
            "  interval: 1m\n  ref:",
            "  interval: 1m\n  timeout: 2s\n  ref:",
        );
    assert!(objects.contains("timeout: 2s"));
    s.config.write("objects.yaml", &objects);
    let run = Running::spawn(tagline_once(&s.config, None)).wait();
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(l.contains("timed out after 2s"), "{l}");
}
