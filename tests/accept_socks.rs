//! `proxySecretRef` with a SOCKS5 address (Flux takes one for ImageRepositories and
//! GitRepositories), through a real SOCKS5 server: OpenSSH's dynamic forwarding (`ssh -D`)
//! over the harness's `sshd`, whose log names each destination it connected to. The
//! registry is the real docker-registry, Git the real http-backend (HTTPS).

mod common;
mod e2e_support;

use common::*;
use e2e_support::*;

/// `objects` with `proxySecretRef`s: the ImageRepository's naming `registry_proxy`, the
/// GitRepository's naming `git_proxy` (each when given).
fn with_proxies(s: &Setup, registry_proxy: Option<&str>, git_proxy: Option<&str>) {
    let mut objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0");
    if let Some(name) = registry_proxy {
        objects = objects.replacen(
            "  secretRef:\n    name: regcred\n",
            &format!("  secretRef:\n    name: regcred\n  proxySecretRef:\n    name: {name}\n"),
            1,
        );
    }
    if let Some(name) = git_proxy {
        objects = objects.replacen(
            "  secretRef:\n    name: git-auth\n",
            &format!("  secretRef:\n    name: git-auth\n  proxySecretRef:\n    name: {name}\n"),
            1,
        );
    }
    s.config.write("objects.yaml", &objects);
}

fn https_git() -> &'static GitServer {
    GitServer::start(GitOptions {
        tls: true,
        ..Default::default()
    })
}

/// The tag listing goes through a `socks5://` proxy, the clone and push through a
/// `socks5h://` one (names resolved by the proxy), and the update lands.
#[test]
fn registry_and_git_go_through_a_socks5_proxy_secret_ref() {
    let s = setup(Registry::start(RegistryOptions::default()), https_git());
    let socks = SocksProxy::start();
    s.config
        .write("socks.yaml", &socks.secret_yaml("registry-socks", "socks5"));
    s.config
        .write("socks-h.yaml", &socks.secret_yaml("git-socks", "socks5h"));
    with_proxies(&s, Some("registry-socks"), Some("git-socks"));
    let before = socks.connections().len();
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));
    let seen = &socks.connections()[before..];
    let registry = s.registry.host().to_string();
    let git = format!("127.0.0.1:{}", s.git.port());
    assert!(seen.contains(&registry), "registry {registry}: {seen:#?}");
    assert!(
        seen.iter().filter(|c| **c == git).count() >= 2,
        "clone and push to {git}: {seen:#?}"
    );
}

/// A SOCKS5 proxy that is not there: the scan and the clone fail naming the proxy, nothing
/// goes around it, nothing is pushed.
#[test]
fn a_socks5_proxy_that_is_down_fails_the_scan_and_the_clone() {
    let s = setup(Registry::start(RegistryOptions::default()), https_git());
    let closed = proc::free_port();
    let down = secret(
        "down",
        "Opaque",
        &[("address", &format!("socks5://127.0.0.1:{closed}"))],
    );
    s.config.write("down.yaml", &down);

    with_proxies(&s, Some("down"), None);
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageRepository default/app");
    assert!(l.to_ascii_lowercase().contains("proxy"), "{l}");
    assert!(l.contains(&format!("127.0.0.1:{closed}")), "{l}");

    with_proxies(&s, None, Some("down"));
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(
        l.contains(&format!("the SOCKS proxy socks5://127.0.0.1:{closed}")),
        "{l}"
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1, "nothing pushed");
}

/// A proxy address in a scheme neither side speaks is refused at load, naming the object
/// and the Secret.
#[test]
fn a_proxy_address_in_another_scheme_is_refused_naming_the_secret() {
    let s = setup(Registry::start(RegistryOptions::default()), https_git());
    s.config.write(
        "ftp.yaml",
        &secret("ftp", "Opaque", &[("address", "ftp://127.0.0.1:21")]),
    );
    with_proxies(&s, None, Some("ftp"));
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("ftp") && run.stderr.contains("socks5://"),
        "{}",
        run.stderr
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1, "nothing pushed");
}
