//! `tagline run --once` end to end on real parts: Debian's docker-registry and git
//! http-backend behind lighttpd, both on 127.0.0.1, started once for this test binary.

mod common;

use common::*;

const DEPLOYMENT: &str = "---
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

const MESSAGE: &str = "Bump images for {{ .AutomationObject }}";

/// What a test sets up: a registry repository with tags, a Git repository with the
/// Deployment, and a config folder wired to both.
struct Setup {
    registry: &'static Registry,
    git: &'static GitServer,
    image: String,
    fleet: String,
    config: ConfigDir,
    initial_head: String,
}

fn setup(registry: &'static Registry, git: &'static GitServer) -> Setup {
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

fn objects(registry: &Registry, git: &GitServer, image: &str, fleet: &str, range: &str) -> String {
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
  update:
    path: ./deploy
    strategy: Setters
",
        host = registry.host(),
        url = git.url(fleet),
    )
}

struct Run {
    code: i32,
    stderr: String,
}

fn run_once(config: &ConfigDir) -> Run {
    let out = tagline()
        .args(["run", "--once", "--config"])
        .arg(config.path())
        .output()
        .expect("run tagline");
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The one-line outcome for `object` (e.g. `ImagePolicy default/app`).
fn line<'a>(run: &'a Run, object: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|l| l.starts_with(&format!("{object}: ")))
        .unwrap_or_else(|| panic!("no outcome line for {object} in:\n{}", run.stderr))
}

fn assert_updates_once(s: &Setup) {
    let first = run_once(&s.config);
    assert_eq!(first.code, 0, "stderr:\n{}", first.stderr);
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 2, "exactly one new commit: {log:#?}");
    let commit = &log[0];
    assert_eq!(commit.parents, vec![s.initial_head.clone()]);
    assert_eq!(commit.author_name, "Tagline Bot");
    assert_eq!(commit.author_email, "bot@example.com");
    assert_eq!(commit.committer_email, "bot@example.com");
    assert_eq!(commit.message.trim_end(), "Bump images for default/fleet");

    // The only change is 1.0.0 -> 1.2.0 on the marked line.
    let before = DEPLOYMENT
        .replace("REGISTRY", s.registry.host())
        .replace("IMAGE", &s.image);
    let after = before.replace(
        &format!("{}/{}:1.0.0", s.registry.host(), s.image),
        &format!("{}/{}:1.2.0", s.registry.host(), s.image),
    );
    assert_ne!(before, after);
    assert_eq!(s.git.file(&s.fleet, "main", "deploy/app.yaml"), after);
    let diff = s.git.diff(&s.fleet, &s.initial_head, &commit.sha);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed.len(), 2, "one line out, one line in:\n{diff}");
    assert!(changed[0].ends_with(&format!(
        "{}:1.0.0 # {{\"$imagepolicy\": \"default:app\"}}",
        s.image
    )));
    assert!(changed[1].ends_with(&format!(
        "{}:1.2.0 # {{\"$imagepolicy\": \"default:app\"}}",
        s.image
    )));

    let automation = line(&first, "ImageUpdateAutomation default/fleet");
    assert!(
        automation.contains(&format!("pushed commit {}", &commit.sha[..7])),
        "{automation}"
    );
    assert!(
        automation.contains("app.yaml: ") && automation.contains(":1.0.0 -> "),
        "{automation}"
    );
    let policy = line(&first, "ImagePolicy default/app");
    assert!(
        policy.ends_with(&format!("{}/{}:1.2.0", s.registry.host(), s.image)),
        "{policy}"
    );

    // Nothing new: no commit, success.
    let second = run_once(&s.config);
    assert_eq!(second.code, 0, "stderr:\n{}", second.stderr);
    assert_eq!(
        s.git.log(&s.fleet, "main").len(),
        2,
        "a second run adds no commit"
    );
    assert!(line(&second, "ImageUpdateAutomation default/fleet").contains("no changes"));
}

#[test]
fn plain_registry_and_git_server() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    assert_updates_once(&s);
}

#[test]
fn basic_auth_on_both_and_registry_behind_tls() {
    let s = setup(
        Registry::start(RegistryOptions {
            htpasswd: Some(("reguser", "regpass")),
            tls: true,
            ..Default::default()
        }),
        GitServer::start(GitOptions {
            basic_auth: Some(("gituser", "gitpass")),
            ..Default::default()
        }),
    );
    assert_updates_once(&s);
}

fn auth_setup() -> Setup {
    setup(
        Registry::start(RegistryOptions {
            htpasswd: Some(("reguser", "regpass")),
            ..Default::default()
        }),
        GitServer::start(GitOptions {
            basic_auth: Some(("gituser", "gitpass")),
            ..Default::default()
        }),
    )
}

/// Runs tagline on a broken setup and checks: non-zero exit, the failing object's line says
/// `expected`, no secret in the output, and the Git repository is untouched.
fn assert_fails_cleanly(s: &Setup, object: &str, expected: &str) -> Run {
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "stderr:\n{}", run.stderr);
    let l = if object.is_empty() {
        run.stderr.lines().next().unwrap_or_default()
    } else {
        line(&run, object)
    };
    assert!(
        l.contains(expected),
        "expected '{expected}' in: {l}\nall:\n{}",
        run.stderr
    );
    for secret in ["regpass", "gitpass", "wrongpass"] {
        assert!(
            !run.stderr.contains(secret),
            "secret leaked:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        s.git.head(&s.fleet, "main").as_deref(),
        Some(s.initial_head.as_str())
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
    run
}

#[test]
fn yaml_syntax_error_in_the_config() {
    let s = auth_setup();
    s.config
        .write("broken.yaml", "apiVersion: v1\nkind: [unclosed\n");
    let run = assert_fails_cleanly(&s, "", "broken.yaml (document 1): invalid YAML");
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn policy_naming_a_missing_image_repository() {
    let s = auth_setup();
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0").replace(
        "  imageRepositoryRef:\n    name: app",
        "  imageRepositoryRef:\n    name: nothere",
    );
    s.config.write("objects.yaml", &objects);
    assert_fails_cleanly(
        &s,
        "ImagePolicy default/app",
        "ImageRepository default/nothere not found",
    );
}

#[test]
fn secret_that_does_not_exist() {
    let s = auth_setup();
    std::fs::remove_file(s.config.path().join("registry-secret.yaml")).unwrap();
    assert_fails_cleanly(
        &s,
        "ImageRepository default/app",
        "Secret default/regcred not found",
    );
}

#[test]
fn wrong_registry_credentials() {
    let s = auth_setup();
    let json = format!(
        r#"{{"auths":{{"{}":{{"username":"reguser","password":"wrongpass"}}}}}}"#,
        s.registry.host()
    );
    s.config.write(
        "registry-secret.yaml",
        &secret(
            "regcred",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", &json)],
        ),
    );
    let run = assert_fails_cleanly(&s, "ImageRepository default/app", "authentication failed");
    assert!(line(&run, "ImagePolicy default/app").contains("failed"));
}

#[test]
fn wrong_git_credentials() {
    let s = auth_setup();
    s.config.write(
        "git-secret.yaml",
        &secret(
            "git-auth",
            "Opaque",
            &[("username", "gituser"), ("password", "wrongpass")],
        ),
    );
    let run = assert_fails_cleanly(
        &s,
        "ImageUpdateAutomation default/fleet",
        "authentication failed",
    );
    // The registry side still worked: the policy elected its tag.
    assert!(line(&run, "ImagePolicy default/app").contains(":1.2.0"));
}

#[test]
fn unreachable_registry() {
    let s = auth_setup();
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace(s.registry.host(), &format!("127.0.0.1:{port}"));
    s.config.write("objects.yaml", &objects);
    assert_fails_cleanly(
        &s,
        "ImageRepository default/app",
        &format!("127.0.0.1:{port}"),
    );
}

#[test]
fn registry_that_does_not_trust_us_without_the_ca() {
    let s = setup(
        Registry::start(RegistryOptions {
            htpasswd: Some(("reguser", "regpass")),
            tls: true,
            ..Default::default()
        }),
        GitServer::start(GitOptions::default()),
    );
    std::fs::remove_file(s.config.path().join("registry-ca.yaml")).unwrap();
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
        .replace("  certSecretRef:\n    name: registry-ca\n", "");
    s.config.write("objects.yaml", &objects);
    assert_fails_cleanly(&s, "ImageRepository default/app", "certificate");
}
