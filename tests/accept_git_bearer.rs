//! Acceptance test for the Git write-back (issue 6), Real parts: "`git http-backend` over
//! HTTPS ... with a bearer token check in the web server". lighttpd (started here, as the
//! harness starts its own) serves `git http-backend` and answers 403 unless the request
//! carries `Authorization: Bearer <token>`; the GitRepository's Secret holds `bearerToken`.

mod common;
mod e2e_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::proc::{port_open, run, scratch_dir, start_on_free_port, Peer};
use common::*;
use e2e_support::*;

const TOKEN: &str = "tok-5f1e9c2a7b3d";

/// lighttpd in front of `git http-backend`, HTTPS with the test CA, checking the bearer.
struct BearerGit {
    root: PathBuf,
    port: u16,
    _peer: Peer,
    _dir: tempfile::TempDir,
}

impl BearerGit {
    fn start() -> BearerGit {
        let guard = scratch_dir("git-bearer");
        let dir = guard.path().to_path_buf();
        for sub in ["repos", "www", "upload", "home"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (port, peer) = start_on_free_port("lighttpd", |port| {
            let conf = dir.join("lighttpd.conf");
            fs::write(&conf, config(&dir, port)).unwrap();
            let mut cmd = Command::new("lighttpd");
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .arg("-D")
                .arg("-f")
                .arg(&conf);
            let mut peer = Peer::spawn("lighttpd", cmd, &dir.join("lighttpd.log"))
                .map_err(|e| format!("spawn lighttpd: {e}"))?;
            peer.wait_ready(|| port_open(port))?;
            Ok((port, peer))
        });
        BearerGit {
            root: dir.join("repos"),
            port,
            _peer: peer,
            _dir: guard,
        }
    }

    fn url(&self, repo: &str) -> String {
        format!("https://127.0.0.1:{}/git/{repo}.git", self.port)
    }

    fn git_dir(&self, repo: &str) -> PathBuf {
        self.root.join(format!("{repo}.git"))
    }

    /// A bare repository with `files` committed on `main`.
    fn create_repo(&self, repo: &str, files: &[(&str, &str)]) {
        let bare = self.git_dir(repo);
        run(
            "git init --bare",
            git()
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(&bare),
        );
        run(
            "git config",
            git()
                .arg("--git-dir")
                .arg(&bare)
                .args(["config", "http.receivepack", "true"]),
        );
        let work = scratch_dir("bearer-work");
        run(
            "git init",
            git().args(["init", "-q", "-b", "main"]).arg(work.path()),
        );
        for (path, content) in files {
            let file = work.path().join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, content).unwrap();
        }
        let in_work = |args: &[&str]| {
            let mut cmd = git();
            cmd.arg("-C").arg(work.path()).args(args);
            cmd
        };
        run("git add", &mut in_work(&["add", "-A"]));
        run("git commit", &mut in_work(&["commit", "-qm", "initial"]));
        run(
            "git push",
            in_work(&["push", "-q"])
                .arg(&bare)
                .arg("HEAD:refs/heads/main"),
        );
    }

    fn show(&self, repo: &str, what: &str) -> String {
        run(
            "git show",
            git()
                .arg("--git-dir")
                .arg(self.git_dir(repo))
                .args(["show", what]),
        )
    }

    fn commits(&self, repo: &str) -> usize {
        run(
            "git rev-list",
            git()
                .arg("--git-dir")
                .arg(self.git_dir(repo))
                .args(["rev-list", "--count", "main"]),
        )
        .trim()
        .parse()
        .unwrap()
    }
}

fn config(dir: &Path, port: u16) -> String {
    let backend = Path::new("/usr/lib/git-core/git-http-backend");
    format!(
        r#"server.modules = ("mod_access", "mod_alias", "mod_setenv", "mod_cgi", "mod_openssl")
server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{www}"
server.upload-dirs = ("{upload}")
server.errorlog = "{errorlog}"
server.max-request-size = 0
alias.url = ("/git" => "{backend}")
$HTTP["url"] =~ "^/git" {{
    cgi.assign = ("" => "")
    setenv.add-environment = (
        "GIT_PROJECT_ROOT" => "{root}",
        "GIT_HTTP_EXPORT_ALL" => "",
        "GIT_CONFIG_NOSYSTEM" => "1",
        "HOME" => "{home}"
    )
    $REQUEST_HEADER["Authorization"] != "Bearer {TOKEN}" {{
        url.access-deny = ("")
    }}
}}
ssl.engine = "enable"
ssl.pemfile = "{pem}"
"#,
        www = dir.join("www").display(),
        upload = dir.join("upload").display(),
        errorlog = dir.join("lighttpd-error.log").display(),
        backend = backend.display(),
        root = dir.join("repos").display(),
        home = dir.join("home").display(),
        pem = TestCa::get().server_pem_path().display(),
    )
}

fn bearer_secret(token: &str) -> String {
    secret(
        "git-auth",
        "Opaque",
        &[("bearerToken", token), ("ca.crt", TestCa::get().ca_pem())],
    )
}

/// Issue 6, Transports and auth: `bearerToken` against a web server that checks it: the
/// right token clones and pushes; a wrong one fails once, clearly, without the token in the
/// output, and pushes nothing.
#[test]
fn bearer_token_is_checked_by_the_web_server_and_a_wrong_one_fails_clearly() {
    let server = BearerGit::start();
    let registry = Registry::start(RegistryOptions::default());
    let image = unique_name("team/app");
    registry.push_tags(&image, &["1.0.0", "1.2.0"]);
    let fleet = unique_name("fleet");
    let deployment = DEPLOYMENT
        .replace("REGISTRY", registry.host())
        .replace("IMAGE", &image);
    server.create_repo(&fleet, &[("deploy/app.yaml", &deployment)]);

    // The reference client: without the token the server refuses, with it git clones.
    let probe = scratch_dir("bearer-probe");
    let ca = TestCa::get().ca_path();
    let clone = |header: Option<&str>, to: &str| {
        let mut cmd = git();
        cmd.arg("-c")
            .arg(format!("http.sslCAInfo={}", ca.display()));
        if let Some(h) = header {
            cmd.arg("-c").arg(format!("http.extraHeader={h}"));
        }
        cmd.args(["clone", "-q", &server.url(&fleet)])
            .arg(probe.path().join(to));
        proc::output("git clone", &mut cmd).status.success()
    };
    assert!(!clone(None, "without"));
    assert!(clone(
        Some(&format!("Authorization: Bearer {TOKEN}")),
        "with"
    ));

    // Objects from the shared helpers, pointed at this server.
    let dummy = GitServer::start(GitOptions::default());
    let objects = objects(registry, dummy, &image, &fleet, "^1.0.0")
        .replace(&dummy.url(&fleet), &server.url(&fleet));
    let config = ConfigDir::new();
    config.write("objects.yaml", &objects);
    config.write(
        "registry-secret.yaml",
        &registry.pull_secret_yaml("regcred"),
    );

    let wrong = "tok-wrong-0c9d8e7f";
    config.write("git-secret.yaml", &bearer_secret(wrong));
    let run = run_once(&config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(l.contains("failed: ") && l.contains("403"), "{l}");
    assert!(!run.stderr.contains(wrong), "{}", run.stderr);
    assert_eq!(server.commits(&fleet), 1);

    config.write("git-secret.yaml", &bearer_secret(TOKEN));
    let state = proc::scratch_dir("bearer-state");
    let run = run_with_state(&config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains(TOKEN), "{}", run.stderr);
    assert_eq!(server.commits(&fleet), 2);
    assert_eq!(
        server.show(&fleet, "main:deploy/app.yaml"),
        deployment.replace(":1.0.0 #", ":1.2.0 #")
    );

    // A run with nothing to do lists the remote's refs (sending the token:
    // tagline's HTTP transport carries bearer remotes) and stops there.
    let idle = run_with_state(&config, state.path());
    assert_eq!(idle.code, 0, "{}", idle.stderr);
    let l = line(&idle, "ImageUpdateAutomation default/fleet");
    assert!(l.ends_with("no change since last reconciliation"), "{l}");
    assert!(!idle.stderr.contains(TOKEN), "{}", idle.stderr);
    assert_eq!(server.commits(&fleet), 2);
}
