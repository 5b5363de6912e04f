//! What the end-to-end tests share: a registry repository with tags, a Git repository with a
//! marked Deployment, a config folder wired to both, and running `tagline run --once`.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub const DEPLOYMENT: &str = "---
# The app's Deployment; only the marked line may change.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: default

spec:
  template:
    spec:
      containers:
        - name: app
          image: REGISTRY/IMAGE:1.0.0 # {\"$imagepolicy\": \"default:app\"}
          ports:
            - containerPort: 8080
";

pub const MESSAGE: &str = "Bump images for {{ .AutomationObject }}";

/// What a test sets up: a registry repository with tags, a Git repository with the
/// Deployment, and a config folder wired to both.
pub struct Setup {
    pub registry: &'static Registry,
    pub git: &'static GitServer,
    pub image: String,
    pub fleet: String,
    pub config: ConfigDir,
    pub initial_head: String,
}

pub fn setup(registry: &'static Registry, git: &'static GitServer) -> Setup {
    let image = unique_name("team/app");
    registry.push_tags(&image, &["1.0.0", "1.1.0", "1.2.0", "2.0.0"]);
    let fleet = unique_name("fleet");
    let deployment = DEPLOYMENT
        .replace("REGISTRY", registry.host())
        .replace("IMAGE", &image);
    git.create_repo(&fleet, "main", &[("deploy/app.yaml", &deployment)]);
    let initial_head = git.head(&fleet, "main").expect("main exists");
    let config = ConfigDir::new();
    config.write(
        "objects.yaml",
        &objects(registry, git, &image, &fleet, "^1.0.0"),
    );
    config.write(
        "registry-secret.yaml",
        &registry.pull_secret_yaml("regcred"),
    );
    if let Some(cert) = registry.cert_secret_yaml("registry-ca") {
        config.write("registry-ca.yaml", &cert);
    }
    config.write("git-secret.yaml", &git.auth_secret_yaml("git-auth"));
    Setup {
        registry,
        git,
        image,
        fleet,
        config,
        initial_head,
    }
}

pub fn objects(
    registry: &Registry,
    git: &GitServer,
    image: &str,
    fleet: &str,
    range: &str,
) -> String {
    objects_with(registry, git, image, fleet, range, &Extra::default())
}

/// Additions to the ImageUpdateAutomation's `spec.git`: `commit` lines (indented 6 spaces,
/// e.g. a signingKey) and `git` lines (indented 4, e.g. `push:`).
#[derive(Debug, Default)]
pub struct Extra {
    pub commit: String,
    pub git: String,
}

pub fn objects_with(
    registry: &Registry,
    git: &GitServer,
    image: &str,
    fleet: &str,
    range: &str,
    extra: &Extra,
) -> String {
    let insecure = registry.ca_pem().is_none();
    let cert = if insecure {
        String::new()
    } else {
        "  certSecretRef:\n    name: registry-ca\n".to_string()
    };
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
spec:
  image: {host}/{image}
  interval: 5m
  insecure: {insecure}
  secretRef:
    name: regcred
{cert}---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: '{range}'
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: fleet
spec:
  url: {url}
  interval: 1m
  ref:
    branch: main
  secretRef:
    name: git-auth
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: fleet
spec:
  interval: 5m
  sourceRef:
    kind: GitRepository
    name: fleet
  git:
    commit:
      author:
        name: Tagline Bot
        email: bot@example.com
      messageTemplate: '{MESSAGE}'
{commit_extra}{git_extra}  update:
    path: ./deploy
    strategy: Setters
",
        host = registry.host(),
        url = git.url(fleet),
        commit_extra = extra.commit,
        git_extra = extra.git,
    )
}

pub struct Run {
    pub code: i32,
    pub stderr: String,
}

pub fn run_once(config: &ConfigDir) -> Run {
    run_tagline(config, None)
}

pub fn run_with_state(config: &ConfigDir, state: &std::path::Path) -> Run {
    run_tagline(config, Some(state))
}

fn run_tagline(config: &ConfigDir, state: Option<&std::path::Path>) -> Run {
    Running::spawn(tagline_once(config, state)).wait()
}

/// `tagline run --once --config <config> [--state-dir <state>]`, not started.
pub fn tagline_once(config: &ConfigDir, state: Option<&std::path::Path>) -> Command {
    let mut cmd = tagline();
    cmd.args(["run", "--once", "--config"]).arg(config.path());
    if let Some(state) = state {
        cmd.arg("--state-dir").arg(state);
    }
    cmd
}

/// A child `tagline`, killed when dropped whatever the test's fate.
pub struct Running(Option<Child>);

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tagline");
        Running(Some(child))
    }

    /// Waits for the child to end (at most two minutes, a guard against a hang).
    pub fn wait(mut self) -> Run {
        let mut child = self.0.take().expect("child");
        let mut pipe = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tagline did not end:\n{}",
                    reader.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stderr: reader.join().expect("stderr reader"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The one-line outcome for `object` (e.g. `ImagePolicy default/app`).
pub fn line<'a>(run: &'a Run, object: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|l| l.starts_with(&format!("{object}: ")))
        .unwrap_or_else(|| panic!("no outcome line for {object} in:\n{}", run.stderr))
}
