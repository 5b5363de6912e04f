//! Scanner through a real forward proxy (`tinyproxy` with Basic proxy auth) in front of the
//! real registry: `proxySecretRef` (library and `tagline run --once`), the environment's
//! `HTTPS_PROXY` / `NO_PROXY` read as Go reads them, and wrong proxy credentials.

mod common;

use std::time::Duration;

use common::*;
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, ProxyConfig, ScanError, ScanOptions, ScanResult};

const USER: &str = "proxied-user";
const PASS: &str = "proxied-Pa55";

fn tls_registry() -> &'static Registry {
    Registry::start(RegistryOptions {
        htpasswd: Some((USER, PASS)),
        tls: true,
        mtls: false,
    })
}

fn plain_registry() -> &'static Registry {
    Registry::start(RegistryOptions {
        htpasswd: Some((USER, PASS)),
        ..RegistryOptions::default()
    })
}

fn proxy_config(password: Option<&str>) -> ProxyConfig {
    ProxyConfig {
        address: Proxy::start().address(),
        username: password.map(|_| PROXY_USER.to_string()),
        password: password.map(str::to_string),
    }
}

fn options(registry: &Registry, proxy: ProxyConfig) -> ScanOptions {
    ScanOptions {
        credentials: Some(Credentials::Basic {
            username: USER.into(),
            password: PASS.into(),
        }),
        ca_pem: registry.ca_pem().map(|p| p.as_bytes().to_vec()),
        insecure: registry.scheme() == "http",
        timeout: Duration::from_secs(20),
        proxy: Some(proxy),
        ..ScanOptions::default()
    }
}

fn run_scan(
    registry: &Registry,
    repo: &str,
    options: &ScanOptions,
) -> Result<ScanResult, ScanError> {
    let image = ImageName::parse(&registry.image(repo)).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scan(&image, options))
}

/// Request lines the proxy logged after `before` of them, mentioning `needle`.
fn proxied_since(before: usize, needle: &str) -> Vec<String> {
    Proxy::start()
        .requests()
        .into_iter()
        .skip(before)
        .filter(|r| r.contains(needle))
        .collect()
}

/// Pushes `tags` to a new repository of `registry` and scans it through the proxy with
/// `password` (None: no proxy credentials). Returns the repository, the proxy's request count
/// before the scan, and the scan's result.
fn push_and_scan(
    registry: &Registry,
    prefix: &str,
    tags: &[&str],
    password: Option<&str>,
) -> (String, usize, Result<ScanResult, ScanError>) {
    let repo = unique_name(prefix);
    registry.push_tags(&repo, tags);
    let before = Proxy::start().requests().len();
    let result = run_scan(registry, &repo, &options(registry, proxy_config(password)));
    (repo, before, result)
}

#[test]
fn https_registry_through_the_proxy_uses_connect() {
    let registry = tls_registry();
    let (_, before, r) = push_and_scan(
        registry,
        "proxy/tls",
        &["1.0.0", "1.1.0"],
        Some(PROXY_PASSWORD),
    );
    assert_eq!(r.unwrap().tags, ["1.1.0", "1.0.0"]);
    let connects = proxied_since(before, &format!("CONNECT {}", registry.host()));
    assert!(
        !connects.is_empty(),
        "no CONNECT through the proxy: {:?}",
        Proxy::start().requests()
    );
}

#[test]
fn plain_http_registry_through_the_proxy_sends_absolute_urls() {
    let registry = plain_registry();
    let (repo, before, r) =
        push_and_scan(registry, "proxy/plain", &["v1", "v2"], Some(PROXY_PASSWORD));
    assert_eq!(r.unwrap().tags, ["v2", "v1"]);
    let lists = proxied_since(
        before,
        &format!("GET http://{}/v2/{repo}/tags/list", registry.host()),
    );
    assert!(
        !lists.is_empty(),
        "tags/list not proxied: {:?}",
        Proxy::start().requests()
    );
}

#[test]
fn wrong_proxy_password_over_connect_is_a_proxy_error_without_secrets() {
    let (_, _, r) = push_and_scan(
        tls_registry(),
        "proxy/wrong",
        &["1.0.0"],
        Some("wrong-Pr0xy-pass"),
    );
    let e = r.unwrap_err();
    assert!(matches!(e, ScanError::Proxy { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&Proxy::start().address()), "{text}");
    assert!(text.contains("refused"), "{text}");
    for secret in ["wrong-Pr0xy-pass", PROXY_PASSWORD, PASS] {
        assert!(!text.contains(secret), "{text}");
        assert!(!format!("{e:?}").contains(secret));
    }
}

#[test]
fn missing_proxy_credentials_are_a_407_proxy_error() {
    let (_, _, r) = push_and_scan(tls_registry(), "proxy/none", &["1.0.0"], None);
    let e = r.unwrap_err();
    assert!(matches!(e, ScanError::Proxy { .. }), "{e:?}");
    assert!(e.to_string().contains("407"), "{e}");
    let (_, _, r) = push_and_scan(plain_registry(), "proxy/none-plain", &["1.0.0"], None);
    let e = r.unwrap_err();
    assert!(e.to_string().contains("407"), "{e}");
    assert!(!e.to_string().contains(PASS), "{e}");
}

#[test]
fn wrong_proxy_password_over_plain_http_names_the_proxy() {
    let (_, _, r) = push_and_scan(
        plain_registry(),
        "proxy/wrong-plain",
        &["1.0.0"],
        Some("wrong-Pr0xy-pass"),
    );
    let e = r.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&Proxy::start().address()), "{text}");
    assert!(
        !text.contains("wrong-Pr0xy-pass") && !text.contains(PASS),
        "{text}"
    );
}

fn tagline_tags(registry: &Registry, repo: &str, env: &[(&str, &str)]) -> std::process::Output {
    let config = ConfigDir::new();
    let docker = config.write("config.json", &registry.docker_config_json());
    let ca = config.write("ca.crt", registry.ca_pem().unwrap_or_default());
    let mut cmd = tagline();
    cmd.arg("tags").arg(registry.image(repo));
    if registry.scheme() == "http" {
        cmd.arg("--insecure");
    } else {
        cmd.arg("--ca-file").arg(ca);
    }
    cmd.arg("--docker-config").arg(docker);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tagline tags")
}

#[test]
fn environment_proxy_is_used_for_other_hosts_but_never_for_loopback() {
    let proxy = Proxy::start();
    let with_creds = format!(
        "http://{PROXY_USER}:{PROXY_PASSWORD}@{}",
        proxy.address().trim_start_matches("http://")
    );
    // Loopback is never proxied (Go's rule): the scan works although the proxy's address is
    // wrong.
    let registry = tls_registry();
    let repo = unique_name("proxy/env-loopback");
    registry.push_tags(&repo, &["2.0.0"]);
    let out = tagline_tags(registry, &repo, &[("HTTPS_PROXY", "http://127.0.0.1:9")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2.0.0");

    // Another host goes through HTTPS_PROXY (tinyproxy then fails to resolve it).
    let before = proxy.requests().len();
    let mut cmd = tagline();
    cmd.args(["tags", "registry.invalid:5443/team/app", "--timeout", "5s"])
        .env("HTTPS_PROXY", &with_creds);
    let out = cmd.output().expect("run tagline tags");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(PROXY_PASSWORD), "{stderr}");
    assert!(
        !proxied_since(before, "CONNECT registry.invalid:5443").is_empty(),
        "not proxied: {:?} / {stderr}",
        proxy.requests()
    );

    // NO_PROXY takes it off the proxy.
    let before = proxy.requests().len();
    let mut cmd = tagline();
    cmd.args(["tags", "registry.invalid:5443/team/app", "--timeout", "5s"])
        .env("HTTPS_PROXY", &with_creds)
        .env("NO_PROXY", "example.com,.invalid");
    let out = cmd.output().expect("run tagline tags");
    assert!(!out.status.success());
    assert!(proxied_since(before, "registry.invalid").is_empty());
}

#[test]
fn proxy_secret_ref_in_a_config_folder() {
    let registry = tls_registry();
    let proxy = Proxy::start();
    let repo = unique_name("proxy/config");
    registry.push_tags(&repo, &["3.1.0", "3.2.0"]);
    let run = |password: &str| {
        let config = ConfigDir::new();
        config.write(
            "objects.yaml",
            &format!(
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  \
                 name: app\nspec:\n  image: {}\n  interval: 5m\n  secretRef:\n    name: regcred\n  \
                 certSecretRef:\n    name: regtls\n  proxySecretRef:\n    name: proxy\n",
                registry.image(&repo)
            ),
        );
        config.write("regcred.yaml", &registry.pull_secret_yaml("regcred"));
        config.write("regtls.yaml", &registry.cert_secret_yaml("regtls").unwrap());
        config.write(
            "proxy.yaml",
            &proxy.secret_yaml("proxy", Some((PROXY_USER, password))),
        );
        let state = common::proc::scratch_dir("state");
        tagline()
            .args(["run", "--once", "--config"])
            .arg(config.path())
            .arg("--state-dir")
            .arg(state.path())
            .output()
            .expect("run tagline")
    };
    let before = proxy.requests().len();
    let out = run(PROXY_PASSWORD);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("scanned 2 tags"), "{stderr}");
    assert!(!proxied_since(before, &format!("CONNECT {}", registry.host())).is_empty());

    let out = run("not-the-proxy-pass");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("proxy") && all.contains("refused"), "{all}");
    assert!(
        !all.contains("not-the-proxy-pass") && !all.contains(PASS),
        "{all}"
    );
}
