//! Self-test of the end-to-end harness: the real peers work as tests expect (push and list
//! tags with auth and TLS, clone and push over HTTP(S) and git://, refusals), and no peer or
//! scratch file outlives the test process. Uses only the harness, never tagline's code.

mod common;

use std::path::Path;
use std::process::Command;

use common::proc::{output, run};
use common::{
    git, tagline, unique_name, ConfigDir, GitDaemon, GitOptions, GitServer, Registry,
    RegistryOptions, SshServer, TestCa,
};

const USER: &str = "harness-user";
const PASS: &str = "s3cret-pass";

fn client(ca: Option<&str>) -> reqwest::blocking::Client {
    let roots = ca.map(|ca| reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    reqwest::blocking::Client::builder()
        .no_proxy()
        .tls_certs_only(roots)
        .build()
        .unwrap()
}

fn push_then_list(registry: &Registry) {
    let repo = unique_name("team/app");
    let digest = registry.push_tags(&repo, &["1.0.0", "1.1.0", "2.0.0"]);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    // More tags later point at the same image.
    assert_eq!(registry.push_tags(&repo, &["latest"]), digest);
    let want = vec!["1.0.0", "1.1.0", "2.0.0", "latest"];
    assert_eq!(registry.list_tags(&repo), want);
    assert_eq!(registry.list_tags_with_skopeo(&repo), want);
    assert_eq!(
        registry.manifest_digest(&repo, "1.1.0"),
        Some(digest.clone())
    );
    assert_eq!(registry.manifest_digest(&repo, "9.9.9"), None);
    let other = registry.push_variant(&repo, "other", &["3.0.0"]);
    assert_ne!(other, digest);
    assert_eq!(registry.manifest_digest(&repo, "3.0.0"), Some(other));
    assert_eq!(
        registry.list_tags(&unique_name("team/none")),
        Vec::<String>::new()
    );
}

#[test]
fn registry_plain_pushes_and_lists_tags() {
    let registry = Registry::start(RegistryOptions::default());
    assert!(registry.host().starts_with("127.0.0.1:"));
    assert_eq!(registry.ca_pem(), None);
    push_then_list(registry);
    // Shared per configuration: the same instance comes back.
    assert!(std::ptr::eq(
        registry,
        Registry::start(RegistryOptions::default())
    ));
}

#[test]
fn registry_with_htpasswd_requires_the_password() {
    let registry = Registry::start(RegistryOptions {
        htpasswd: Some((USER, PASS)),
        ..Default::default()
    });
    push_then_list(registry);
    let ping = format!("{}/v2/", registry.base_url());
    let http = client(None);
    assert_eq!(http.get(&ping).send().unwrap().status(), 401);
    let wrong = http
        .get(&ping)
        .basic_auth(USER, Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http.get(&ping).basic_auth(USER, Some(PASS)).send().unwrap();
    assert_eq!(right.status(), 200);
    // The reference client is refused without credentials.
    let repo = unique_name("team/app");
    registry.push_tags(&repo, &["1.0.0"]);
    let mut anonymous = Command::new("skopeo");
    anonymous
        .env_clear()
        .env("HOME", common::proc::scratch_home())
        .args(["list-tags", "--tls-verify=false", "--no-creds"])
        .arg(format!("docker://{}/{repo}", registry.host()));
    assert!(!output("skopeo without creds", &mut anonymous)
        .status
        .success());
    let json: serde_json::Value = serde_json::from_str(&registry.docker_config_json()).unwrap();
    assert_eq!(json["auths"][registry.host()]["username"], USER);
    assert_eq!(json["auths"][registry.host()]["password"], PASS);
}

#[test]
fn registry_with_tls_and_htpasswd_is_trusted_only_through_the_test_ca() {
    let registry = Registry::start(RegistryOptions {
        htpasswd: Some((USER, PASS)),
        tls: true,
        mtls: false,
    });
    assert_eq!(registry.scheme(), "https");
    assert_eq!(registry.ca_pem(), Some(TestCa::get().ca_pem()));
    push_then_list(registry);
    let ping = format!("{}/v2/", registry.base_url());
    assert!(
        client(None).get(&ping).send().is_err(),
        "untrusted CA accepted"
    );
    let trusted = client(registry.ca_pem()).get(&ping).send().unwrap();
    assert_eq!(trusted.status(), 401);
    // `localhost` is in the certificate too.
    let by_name = ping.replace("127.0.0.1", "localhost");
    let trusted = client(registry.ca_pem()).get(&by_name).send().unwrap();
    assert_eq!(trusted.status(), 401);
}

#[test]
fn registry_with_mtls_refuses_clients_without_a_certificate() {
    let registry = Registry::start(RegistryOptions {
        mtls: true,
        ..Default::default()
    });
    assert!(registry.options().tls);
    assert!(registry.client_identity_pem().is_some());
    push_then_list(registry);
    let ping = format!("{}/v2/", registry.base_url());
    assert!(
        client(registry.ca_pem()).get(&ping).send().is_err(),
        "client without cert accepted"
    );
}

#[test]
fn registry_with_token_auth_runs_the_bearer_flow() {
    let registry = Registry::start_token_auth(RegistryOptions {
        htpasswd: Some((USER, PASS)),
        ..Default::default()
    });
    let token_server = registry.token_server().expect("token server");
    let asked = token_server.requests();
    push_then_list(registry); // skopeo included: it runs the bearer flow itself
    assert!(token_server.requests() > asked);

    let repo = unique_name("team/app");
    registry.push_tags(&repo, &["1.0.0"]);
    let http = client(None);
    let ping = http
        .get(format!("{}/v2/", registry.base_url()))
        .send()
        .unwrap();
    assert_eq!(ping.status(), 401);
    let challenge = ping.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let realm = token_server.realm();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("service=\""), "{challenge}");

    let token = |user: &str, pass: &str, scope: &str| {
        let url = reqwest::Url::parse_with_params(
            &realm,
            [("service", common::token::SERVICE), ("scope", scope)],
        )
        .unwrap();
        http.get(url).basic_auth(user, Some(pass)).send().unwrap()
    };
    let scope = format!("repository:{repo}:pull");
    assert_eq!(token(USER, "wrong", &scope).status(), 401);
    let body: serde_json::Value =
        serde_json::from_str(&token(USER, PASS, &scope).text().unwrap()).unwrap();
    let bearer = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"].as_str(), Some(bearer));
    let tags = format!("{}/v2/{repo}/tags/list", registry.base_url());
    let listed = http.get(&tags).bearer_auth(bearer).send().unwrap();
    assert_eq!(listed.status(), 200);
    assert!(listed.text().unwrap().contains("\"1.0.0\""));
    // The registry checks the token's access claim: a token for another repository fails.
    let other = token_server.token_for("repository:team/other:pull", USER);
    assert_eq!(
        http.get(&tags).bearer_auth(other).send().unwrap().status(),
        401
    );
}

#[test]
fn owned_registry_stops_when_dropped() {
    let registry = Registry::start_owned(RegistryOptions::default());
    registry.push_tags("team/app", &["1.0.0"]);
    let ping = format!("{}/v2/", registry.base_url());
    assert!(registry.is_running());
    drop(registry);
    assert!(
        client(None).get(&ping).send().is_err(),
        "registry still answers"
    );
}

/// Clones `url` with the git CLI, commits a file, pushes, and checks the server saw it.
fn clone_commit_push(server: &GitServer, repo: &str) {
    let work = common::proc::scratch_dir("clone");
    let dir = work.path().join("w");
    run(
        "clone",
        server
            .git()
            .arg("clone")
            .arg("-q")
            .arg(server.url_with_credentials(repo))
            .arg(&dir),
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("deploy/app.yaml")).unwrap(),
        "image: app:1.0.0\n"
    );
    std::fs::write(dir.join("deploy/app.yaml"), "image: app:1.1.0\n").unwrap();
    run(
        "commit",
        server
            .git()
            .arg("-C")
            .arg(&dir)
            .args([
                "-c",
                "user.name=Pusher",
                "-c",
                "user.email=pusher@example.test",
                "commit",
                "-qam",
                "Bump app\n\nbody line",
            ])
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("GIT_AUTHOR_EMAIL"),
    );
    let before = server.head(repo, "main").unwrap();
    run(
        "push",
        server
            .git()
            .arg("-C")
            .arg(&dir)
            .args(["push", "-q", "origin", "main"]),
    );
    let log = server.log(repo, "main");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].author_name, "Pusher");
    assert_eq!(log[0].author_email, "pusher@example.test");
    assert_eq!(log[0].message, "Bump app\n\nbody line");
    assert_eq!(log[0].parents, vec![before.clone()]);
    assert_eq!(log[1].sha, before);
    assert_eq!(
        server.head(repo, "main").as_deref(),
        Some(log[0].sha.as_str())
    );
    assert_eq!(
        server.file(repo, "main", "deploy/app.yaml"),
        "image: app:1.1.0\n"
    );
    let diff = server.diff(repo, &before, "main");
    assert!(
        diff.contains("-image: app:1.0.0\n+image: app:1.1.0\n"),
        "{diff}"
    );
}

fn seed(server: &GitServer) -> String {
    let repo = unique_name("fleet");
    let url = server.create_repo(&repo, "main", &[("deploy/app.yaml", "image: app:1.0.0\n")]);
    assert_eq!(url, server.url(&repo));
    repo
}

/// Runs `git clone url` with `cmd` (a `git` command), asserts it fails, returns its stderr.
fn clone_fails_with(mut cmd: Command, url: &str) -> String {
    let work = common::proc::scratch_dir("clone");
    let out = output(
        "clone",
        cmd.arg("clone")
            .arg("-q")
            .arg(url)
            .arg(work.path().join("w")),
    );
    assert!(!out.status.success(), "clone of {url} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn git_over_http_with_basic_auth_clones_and_pushes_and_refuses_a_wrong_password() {
    let server = GitServer::start(GitOptions {
        basic_auth: Some((USER, PASS)),
        tls: false,
        ..Default::default()
    });
    let repo = seed(server);
    assert!(server.url(&repo).starts_with("http://127.0.0.1:"));
    clone_commit_push(server, &repo);
    let wrong = server
        .url(&repo)
        .replacen("://", &format!("://{USER}:wrong@"), 1);
    let err = clone_fails_with(git(), &wrong);
    assert!(
        err.contains("Authentication failed") || err.contains("401"),
        "{err}"
    );
    clone_fails_with(git(), &server.url(&repo));
}

#[test]
fn git_over_https_with_basic_auth_trusts_only_the_test_ca() {
    let server = GitServer::start(GitOptions {
        basic_auth: Some((USER, PASS)),
        tls: true,
        ..Default::default()
    });
    let repo = seed(server);
    assert!(server.url(&repo).starts_with("https://127.0.0.1:"));
    assert_eq!(server.ca_pem(), Some(TestCa::get().ca_pem()));
    clone_commit_push(server, &repo);
    // Without the CA (the harness scrubbed GIT_SSL_CAINFO; system roots only) it fails.
    let err = clone_fails_with(git(), &server.url_with_credentials(&repo));
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let wrong = server
        .url(&repo)
        .replacen("://", &format!("://{USER}:wrong@"), 1);
    clone_fails_with(server.git(), &wrong);
}

#[test]
fn git_over_plain_http_without_auth() {
    let server = GitServer::start(GitOptions::default());
    let repo = seed(server);
    clone_commit_push(server, &repo);
}

#[test]
fn git_daemon_clones_and_pushes() {
    let daemon = GitDaemon::start();
    let repo = unique_name("fleet");
    let url = daemon.create_repo(&repo, "main", &[("a.txt", "a\n")]);
    assert_eq!(url, format!("git://127.0.0.1:{}/{repo}.git", daemon.port()));
    let work = common::proc::scratch_dir("clone");
    let dir = work.path().join("w");
    run("clone", git().arg("clone").arg("-q").arg(&url).arg(&dir));
    std::fs::write(dir.join("a.txt"), "b\n").unwrap();
    run(
        "commit",
        git()
            .arg("-C")
            .arg(&dir)
            .args(["commit", "-qam", "change a"]),
    );
    run(
        "push",
        git()
            .arg("-C")
            .arg(&dir)
            .args(["push", "-q", "origin", "main"]),
    );
    assert_eq!(daemon.file(&repo, "main", "a.txt"), "b\n");
    assert_eq!(daemon.log(&repo, "main")[0].message, "change a");
}

#[test]
fn ssh_server_clones_and_pushes_with_the_client_key_only() {
    let server = SshServer::start();
    let repo = unique_name("fleet");
    let url = server.create_repo(&repo, "main", &[("a.txt", "a\n")]);
    assert!(url.starts_with(&format!(
        "ssh://{}@127.0.0.1:{}/",
        server.user(),
        server.port()
    )));
    assert!(server
        .known_hosts()
        .starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", server.port())));
    assert!(server.client_key().contains("OPENSSH PRIVATE KEY"));
    let work = common::proc::scratch_dir("clone");
    let dir = work.path().join("w");
    run(
        "clone",
        server.git().arg("clone").arg("-q").arg(&url).arg(&dir),
    );
    std::fs::write(dir.join("a.txt"), "b\n").unwrap();
    run(
        "commit",
        git()
            .arg("-C")
            .arg(&dir)
            .args(["commit", "-qam", "over ssh"]),
    );
    run(
        "push",
        server
            .git()
            .arg("-C")
            .arg(&dir)
            .args(["push", "-q", "origin", "main"]),
    );
    assert_eq!(server.file(&repo, "main", "a.txt"), "b\n");
    assert_eq!(server.log(&repo, "main")[0].message, "over ssh");

    // Another key is refused; so is an unknown host key.
    let other = common::proc::scratch_dir("key");
    let key = other.path().join("k");
    run(
        "ssh-keygen",
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key),
    );
    let mut wrong_key = server.git();
    wrong_key.env(
        "GIT_SSH_COMMAND",
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            key.display()
        ),
    );
    let err = clone_fails_with(wrong_key, &url);
    assert!(err.contains("Permission denied"), "{err}");
    let mut unknown_host = server.git();
    unknown_host.env(
        "GIT_SSH_COMMAND",
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/dev/null",
            server.client_key_path().display()
        ),
    );
    let err = clone_fails_with(unknown_host, &url);
    assert!(err.contains("Host key verification failed"), "{err}");
}

#[test]
fn repo_helpers_commit_branches_hooks_and_copy_trees() {
    let server = GitServer::start(GitOptions::default());
    let repo = unique_name("fleet");
    server.create_repo(&repo, "main", &[("x/one.yaml", "1\n"), ("two.yaml", "2\n")]);
    assert_eq!(server.files(&repo, "main"), vec!["two.yaml", "x/one.yaml"]);
    assert_eq!(server.head(&repo, "other"), None);
    let sha = server.commit(&repo, "other", &[("x/one.yaml", "one\n")], "on other");
    assert_eq!(server.head(&repo, "other"), Some(sha.clone()));
    assert_eq!(server.branches(&repo), vec!["main", "other"]);
    assert_eq!(server.file(&repo, "other", "x/one.yaml"), "one\n");
    assert_eq!(server.file(&repo, "main", "x/one.yaml"), "1\n");
    let log = server.log(&repo, "other");
    assert_eq!(log[0].author_name, common::git::HARNESS_NAME);
    assert_eq!(log[0].parents, vec![log[1].sha.clone()]);
    assert!(server.raw_commit(&repo, &sha).contains("\n\non other\n"));

    // A pre-receive hook that refuses every push.
    server.set_hook(
        &repo,
        "pre-receive",
        "#!/bin/sh\necho refused by hook >&2\nexit 1\n",
    );
    let work = common::proc::scratch_dir("clone");
    let dir = work.path().join("w");
    run(
        "clone",
        git()
            .arg("clone")
            .arg("-q")
            .arg(server.url(&repo))
            .arg(&dir),
    );
    run(
        "commit",
        git()
            .arg("-C")
            .arg(&dir)
            .args(["commit", "-q", "--allow-empty", "-m", "x"]),
    );
    let out = output(
        "push",
        git().arg("-C").arg(&dir).args(["push", "origin", "main"]),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused by hook"));

    let tree = common::proc::scratch_dir("tree");
    std::fs::create_dir_all(tree.path().join("deploy")).unwrap();
    std::fs::write(tree.path().join("deploy/app.yaml"), "image: a:1\n").unwrap();
    let copied = unique_name("fleet");
    server.create_repo_from_dir(&copied, "trunk", tree.path());
    assert_eq!(
        server.file(&copied, "trunk", "deploy/app.yaml"),
        "image: a:1\n"
    );
}

#[test]
fn tagline_command_runs_in_a_clean_environment() {
    let cmd = tagline();
    let envs: Vec<_> = cmd.get_envs().collect();
    let home = envs
        .iter()
        .find(|(k, _)| *k == "HOME")
        .and_then(|(_, v)| *v)
        .expect("HOME set");
    assert!(Path::new(home).starts_with(common::proc::scratch_root()));
    for leaky in [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        if std::env::var_os(leaky).is_some() {
            assert!(
                envs.iter().any(|(k, v)| *k == leaky && v.is_none()),
                "{leaky} kept"
            );
        }
    }
    assert!(Path::new(cmd.get_program()).is_file());
    let config = ConfigDir::new();
    let file = config.write("sub/objects.yaml", "kind: x\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "kind: x\n");
    assert!(file.starts_with(config.path()));
}

/// Env var that turns [`child_process_starts_peers`] into a real peer starter.
const CHILD_PIDS_FILE: &str = "TAGLINE_HARNESS_CHILD_PIDS_FILE";
/// Env var that makes [`child_process_starts_peers`] hang after starting its peers.
const CHILD_HANG: &str = "TAGLINE_HARNESS_CHILD_HANG";

/// Helper run by [`peers_and_scratch_files_die_with_the_test_process`] in a child test process:
/// starts every kind of peer, writes their pids and the scratch root, and returns.
#[test]
#[ignore = "helper: run by peers_and_scratch_files_die_with_the_test_process"]
fn child_process_starts_peers() {
    let Some(file) = std::env::var_os(CHILD_PIDS_FILE) else {
        return;
    };
    let registry = Registry::start(RegistryOptions {
        htpasswd: Some((USER, PASS)),
        tls: true,
        mtls: false,
    });
    let server = GitServer::start(GitOptions {
        basic_auth: None,
        tls: true,
        ..Default::default()
    });
    let daemon = GitDaemon::start();
    let ssh = SshServer::start();
    let pids: Vec<String> = [registry.pid(), server.pid(), daemon.pid(), ssh.pid()]
        .iter()
        .map(u32::to_string)
        .collect();
    let tmp = Path::new(&file).with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(
            "{}\n{}\n",
            pids.join(" "),
            common::proc::scratch_root().display()
        ),
    )
    .unwrap();
    std::fs::rename(tmp, file).unwrap();
    if std::env::var_os(CHILD_HANG).is_some() {
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

fn child_test_process(pids_file: &Path) -> Command {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--ignored",
            "--exact",
            "child_process_starts_peers",
            "--test-threads=1",
        ])
        .env(CHILD_PIDS_FILE, pids_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    child
}

/// Whether `pid` is gone or a zombie (killed, waiting for whoever adopted it to reap it).
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn peers_and_scratch_files_die_with_the_test_process() {
    let pids_dir = common::proc::scratch_dir("child");
    let pids_file = pids_dir.path().join("pids");
    let status = child_test_process(&pids_file).status().unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&pids_file).unwrap();
    let (pids, root) = text.split_once('\n').unwrap();
    let pids: Vec<&str> = pids.split(' ').collect();
    assert_eq!(pids.len(), 4);
    for pid in pids {
        // Killed and reaped by the child's exit handler: gone at once, not even a zombie.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "peer {pid} outlived its test process"
        );
    }
    assert!(
        !Path::new(root.trim()).exists(),
        "scratch root {root} left behind"
    );
}

#[test]
fn peers_die_with_a_test_process_that_is_killed() {
    let pids_dir = common::proc::scratch_dir("child");
    let pids_file = pids_dir.path().join("pids");
    let mut child = child_test_process(&pids_file)
        .env(CHILD_HANG, "1")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pids_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "child never started its peers"
        );
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&pids_file).unwrap();
    let (pids, root) = text.split_once('\n').unwrap();
    let pids: Vec<&str> = pids.split(' ').collect();
    assert!(pids.iter().all(|pid| !dead(pid)), "peers not running");
    child.kill().unwrap(); // SIGKILL: no exit handler runs, only PDEATHSIG.
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pids.iter().all(|pid| dead(pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "peers {pids:?} outlived a killed test process"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The killed process's scratch root is left; the next test process sweeps it.
    assert!(Path::new(root.trim()).exists());
    common::proc::sweep_stale_roots();
    assert!(!Path::new(root.trim()).exists());
}

#[test]
fn registry_with_token_auth_over_tls_hands_anonymous_tokens() {
    let registry = Registry::start_token_auth(RegistryOptions {
        tls: true,
        ..Default::default()
    });
    assert_eq!(registry.credentials(), None);
    push_then_list(registry);
    let ping = format!("{}/v2/", registry.base_url());
    let resp = client(registry.ca_pem()).get(&ping).send().unwrap();
    assert_eq!(resp.status(), 401, "anonymous access without a token");
}

#[test]
fn secret_yaml_round_trips_pem_json_and_keys() {
    let registry = Registry::start(RegistryOptions {
        htpasswd: Some((USER, PASS)),
        tls: true,
        mtls: true,
    });
    let secret: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&registry.pull_secret_yaml("regcred")).unwrap();
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "regcred");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(
        secret["stringData"][".dockerconfigjson"].as_str(),
        Some(registry.docker_config_json().as_str())
    );
    let certs: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&registry.cert_secret_yaml("certs").unwrap()).unwrap();
    let ca = TestCa::get();
    assert_eq!(certs["stringData"]["ca.crt"].as_str(), Some(ca.ca_pem()));
    assert_eq!(
        certs["stringData"]["tls.crt"].as_str(),
        Some(ca.client_cert_pem())
    );
    assert_eq!(
        certs["stringData"]["tls.key"].as_str(),
        Some(ca.client_key_pem())
    );
    assert_eq!(
        Registry::start(RegistryOptions::default()).cert_secret_yaml("x"),
        None
    );

    let git = GitServer::start(GitOptions {
        basic_auth: Some((USER, PASS)),
        tls: true,
        ..Default::default()
    });
    let auth: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&git.auth_secret_yaml("git-auth")).unwrap();
    assert_eq!(auth["stringData"]["username"], USER);
    assert_eq!(auth["stringData"]["password"], PASS);
    assert_eq!(auth["stringData"]["ca.crt"].as_str(), Some(ca.ca_pem()));

    let ssh = SshServer::start();
    let auth: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&ssh.auth_secret_yaml("ssh-auth")).unwrap();
    assert_eq!(
        auth["stringData"]["identity"].as_str(),
        Some(ssh.client_key().as_str())
    );
    assert_eq!(
        auth["stringData"]["known_hosts"].as_str(),
        Some(ssh.known_hosts().as_str())
    );
}
