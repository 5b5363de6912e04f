//! Acceptance tests for the Git write-back (issue 6) through a real forward proxy (tinyproxy),
//! whose request log doubles as a wire log: over HTTPS the GitRepository's `proxySecretRef`
//! carries clone, push and ref listing (one `CONNECT` per session); a wrong proxy password is
//! a clear error without the password; a run with nothing to do opens one session (the ref
//! listing) and no fetch; a plain `http://` remote goes through the proxy too. (All three
//! failed on libgit2's own transport; tagline's HTTP transport, src/git/http.rs, carries them.)

mod common;
mod e2e_support;

use common::*;
use e2e_support::*;

/// The proxy's log lines naming the Git server's port that arrived after the first `skip`.
fn git_requests(proxy: &Proxy, git: &GitServer, skip: usize) -> Vec<String> {
    proxy
        .requests()
        .into_iter()
        .skip(skip)
        .filter(|r| r.contains(&format!("127.0.0.1:{}", git.port())))
        .collect()
}

/// The reference client: `git` clones and pushes through the proxy to the same HTTPS server,
/// so what fails below fails in tagline, not in the peers.
fn git_cli_pushes_through(proxy: &Proxy, git: &GitServer) {
    let repo = unique_name("cli");
    let url = git.create_repo(&repo, "main", &[("a.txt", "a\n")]);
    let work = proc::scratch_dir("cli-work");
    let via = format!(
        "http.proxy=http://{PROXY_USER}:{PROXY_PASSWORD}@{}",
        proxy.address().trim_start_matches("http://")
    );
    let before = proxy.requests().len();
    proc::run(
        "git clone via proxy",
        git.git()
            .args(["-c", &via, "clone", "-q", &url])
            .arg(work.path().join("c")),
    );
    let dir = work.path().join("c");
    std::fs::write(dir.join("b.txt"), "b\n").unwrap();
    proc::run(
        "git add",
        git.git().arg("-C").arg(&dir).args(["add", "b.txt"]),
    );
    proc::run(
        "git commit",
        git.git().arg("-C").arg(&dir).args(["commit", "-qm", "b"]),
    );
    proc::run(
        "git push via proxy",
        git.git()
            .arg("-C")
            .arg(&dir)
            .args(["-c", &via, "push", "-q", "origin", "main"]),
    );
    assert!(git.files(&repo, "main").contains(&"b.txt".to_string()));
    assert!(
        git_requests(proxy, git, before).len() >= 2,
        "{:#?}",
        proxy.requests()
    );
}

fn https_git() -> &'static GitServer {
    GitServer::start(GitOptions {
        tls: true,
        basic_auth: None,
        ..Default::default()
    })
}

fn with_proxy(s: &Setup, secret: &str) {
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0").replace(
        "  secretRef:\n    name: git-auth\n",
        &format!("  secretRef:\n    name: git-auth\n  proxySecretRef:\n    name: {secret}\n"),
    );
    assert!(objects.contains("proxySecretRef"));
    s.config.write("objects.yaml", &objects);
}

/// Issue 6, Transports: `proxySecretRef` (address, username, password) carries the clone and
/// the push of an HTTPS remote. Issue 6, Cost: "a run where neither the remote branch nor any
/// policy result changed makes one ref listing and no fetch": the idle run opens exactly one
/// session (libgit2 opens one per ls-remote, fetch and push; each is one `CONNECT` here).
#[test]
fn git_goes_through_the_proxy_secret_ref_and_an_idle_run_lists_refs_once() {
    let s = setup(Registry::start(RegistryOptions::default()), https_git());
    let proxy = Proxy::start();
    git_cli_pushes_through(proxy, s.git);
    s.config.write(
        "git-proxy.yaml",
        &proxy.secret_yaml("git-proxy", Some((PROXY_USER, PROXY_PASSWORD))),
    );
    with_proxy(&s, "git-proxy");
    let state = proc::scratch_dir("accept-state");
    let before = proxy.requests().len();
    let first = run_with_state(&s.config, state.path());
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));
    let seen = git_requests(proxy, s.git, before);
    // At least the clone's session and the push's.
    assert!(
        seen.len() >= 2 && seen.iter().all(|r| r.starts_with("CONNECT ")),
        "{seen:#?}"
    );

    // Nothing moved: one session (the ref listing), no fetch, no push.
    let before = proxy.requests().len();
    let idle = run_with_state(&s.config, state.path());
    assert_eq!(idle.code, 0, "{}", idle.stderr);
    assert!(
        line(&idle, "ImageUpdateAutomation default/fleet")
            .ends_with("no change since last reconciliation"),
        "{}",
        idle.stderr
    );
    let seen = git_requests(proxy, s.git, before);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
}

/// Issue 6, Transports: a wrong proxy password fails with an error naming the proxy step,
/// never the password; nothing is pushed.
#[test]
fn a_wrong_proxy_password_is_a_clear_error_without_the_password() {
    let s = setup(Registry::start(RegistryOptions::default()), https_git());
    let proxy = Proxy::start();
    let wrong = "not-the-Pa55word-91c2";
    s.config.write(
        "git-proxy.yaml",
        &proxy.secret_yaml("git-proxy", Some((PROXY_USER, wrong))),
    );
    with_proxy(&s, "git-proxy");
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(l.contains("failed: "), "{l}");
    assert!(l.to_ascii_lowercase().contains("proxy"), "{l}");
    assert!(!run.stderr.contains(wrong), "{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
}

/// Issue 6, Transports: `proxySecretRef` on a plain `http://` remote. libgit2 1.9 writes the
/// absolute URL of a proxied request but connects straight to the server unless the remote is
/// `https` (`use_connect_proxy` in `transports/httpclient.c`), so tagline's `ProxyOptions` are
/// silently ignored: the run succeeds without ever touching the proxy, even a dead one. It
/// must either go through the proxy or refuse the combination with a clear error.
#[test]
fn a_plain_http_remote_never_silently_bypasses_its_proxy() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    // Nothing listens on port 9 (discard): a proxied request cannot succeed.
    s.config.write(
        "git-proxy.yaml",
        &secret("git-proxy", "Opaque", &[("address", "http://127.0.0.1:9")]),
    );
    with_proxy(&s, "git-proxy");
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "pushed around the proxy:\n{}", run.stderr);
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
}

/// Issue 6, Transports: a plain `http://` remote with `proxySecretRef` is cloned and pushed
/// through the proxy (absolute-form requests, no `CONNECT`), with the proxy's credentials.
#[test]
fn a_plain_http_remote_goes_through_its_proxy() {
    let s = setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    );
    let proxy = Proxy::start();
    s.config.write(
        "git-proxy.yaml",
        &proxy.secret_yaml("git-proxy", Some((PROXY_USER, PROXY_PASSWORD))),
    );
    with_proxy(&s, "git-proxy");
    let before = proxy.requests().len();
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));
    let seen = git_requests(proxy, s.git, before);
    assert!(
        seen.iter().any(|r| r.starts_with("GET ")) && seen.iter().any(|r| r.starts_with("POST ")),
        "{seen:#?}"
    );
    assert!(!run.stderr.contains(PROXY_PASSWORD), "{}", run.stderr);
}
