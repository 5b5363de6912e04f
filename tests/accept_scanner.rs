//! Acceptance tests for the scanner (issue 5) through `tagline run --once` with a state dir:
//! bad registry answers end in a clear error and the last good list survives, repositories of
//! one image keep separate lists (and identical ones share one scan), a bad `spec.image` names
//! its object, `spec.timeout` and its default bound the listing. The registry is the scripted
//! emulator (each quirk names the registry or failure it plays); Git is the real http-backend.

mod common;
mod e2e_support;
mod emulator;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use common::*;
use e2e_support::{line, Run, Running};
use emulator::{tags_body, Emulator, Request, Response};

/// The runtime the emulators of this test binary run on.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Emulator {
    rt().block_on(Emulator::start(handler))
}

/// `tagline <args> --config <config> --state-dir <state>`, bounded (see [`Running`]).
fn tagline_bounded(args: &[&str], config: &Path, state: &Path) -> Run {
    let mut cmd = tagline();
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state);
    Running::spawn(cmd).wait()
}

fn run_once(config: &ConfigDir, state: &Path) -> Run {
    tagline_bounded(&["run", "--once"], config.path(), state)
}

/// `tagline status -o json` over the config and the state dir.
fn status_json(config: &ConfigDir, state: &Path) -> serde_json::Value {
    let out = tagline()
        .args(["status", "-o", "json", "--config"])
        .arg(config.path())
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run tagline status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

fn status_item<'a>(doc: &'a serde_json::Value, kind: &str, name: &str) -> &'a serde_json::Value {
    doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["kind"] == kind && i["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {doc:#}"))
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn docker_config_secret(name: &str, host: &str, user: &str, password: &str) -> String {
    let json = serde_json::json!({
        "auths": { host: { "username": user, "password": password } }
    })
    .to_string();
    secret(
        name,
        "kubernetes.io/dockerconfigjson",
        &[(".dockerconfigjson", &json)],
    )
}

fn unauthorized() -> Response {
    Response::json(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)
        .header("WWW-Authenticate", "Basic realm=\"emulator\"")
}

// What the emulator plays in `bad_registry_answers_…`.
const GOOD: usize = 0;
/// A `Link` to another host (a compromised or misconfigured registry front).
const CROSS_ORIGIN_LINK: usize = 1;
/// An endless `Link` chain, each page a fresh URL with fresh tags (a paging bug in a
/// registry front; the first page holds only an older tag).
const ENDLESS_CHAIN: usize = 2;
/// A 100 MB body (a proxy's error page or a runaway listing).
const HUGE_BODY: usize = 3;
/// JSON cut short, with a Content-Length that matches what is sent (a proxy truncating).
const TRUNCATED_JSON: usize = 4;
/// Docker Hub's 429 without end.
const RATE_LIMITED_FOREVER: usize = 5;
/// Tag strings no registry may send (they would end up in YAML) next to good ones.
const INVALID_TAGS: usize = 6;

fn objects(host: &str, git_url: &str, timeout: &str) -> String {
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
spec:
  image: {host}/team/app
  interval: 1ms
  timeout: {timeout}
  insecure: true
  secretRef:
    name: regcred
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: '^1.0.0'
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: fleet
spec:
  url: {git_url}
  interval: 1m
  ref:
    branch: main
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
  update:
    path: ./deploy
    strategy: Setters
"
    )
}

/// Issue 5, "Done when", bad input: a `Link` to another host, an endless `Link` chain, a
/// 100 MB body, a truncated JSON body, a registry that answers 429 forever, a tag list with
/// invalid tag strings. Each ends in a clear error (or, for invalid strings, a list without
/// them), the run ends, nothing is committed or downgraded, and the last good list survives
/// in the state dir. Also: the credentials of the `secretRef` never reach the host a `Link`
/// names.
#[test]
fn bad_registry_answers_end_in_a_clear_error_and_the_last_good_list_survives() {
    let other = start(|_r: &Request| Response::json(200, r#"{"tags":["1.9.9"]}"#));
    let other_origin = format!("http://localhost:{}", other.port);
    let mode = Arc::new(AtomicUsize::new(GOOD));
    let m = mode.clone();
    let origin = other_origin.clone();
    let registry = start(move |r: &Request| {
        if r.header("authorization") != Some(basic("robot", "s3cret-pw").as_str()) {
            return unauthorized();
        }
        let good = |tags: &[&str]| {
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            Response::json(200, tags_body("team/app", &tags))
        };
        match m.load(Ordering::SeqCst) {
            GOOD => good(&["1.0.0", "1.1.0", "1.2.0"]),
            CROSS_ORIGIN_LINK => good(&["1.0.0"]).header(
                "Link",
                format!("<{origin}/v2/team/app/tags/list?last=1.0.0>; rel=\"next\""),
            ),
            ENDLESS_CHAIN => {
                let page: usize = r.q("page").and_then(|p| p.parse().ok()).unwrap_or(0);
                let tag = if page == 0 {
                    "1.0.0".to_string()
                } else {
                    format!("build-{page:06}")
                };
                good(&[tag.as_str()]).header(
                    "Link",
                    format!("</v2/team/app/tags/list?page={}>; rel=\"next\"", page + 1),
                )
            }
            HUGE_BODY => Response::stream(100 << 20, None),
            TRUNCATED_JSON => Response::json(200, r#"{"name":"team/app","tags":["1.0.0","1.1.0","#),
            RATE_LIMITED_FOREVER => {
                Response::json(429, r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#)
                    .header("Retry-After", "1")
            }
            INVALID_TAGS => good(&[
                "1.0.0",
                "1.1.0",
                "1.2.0",
                "1.3.0",
                "1.9.9 # {\"$imagepolicy\": \"x:y\"}",
                "1.8.0\nkind: Evil",
                "../1.7.0",
            ]),
            other => panic!("mode {other}"),
        }
    });
    let host = registry.host();
    let git = GitServer::start(GitOptions::default());
    let fleet = unique_name("fleet");
    let deployment = e2e_support::DEPLOYMENT
        .replace("REGISTRY", &host)
        .replace("IMAGE", "team/app");
    git.create_repo(&fleet, "main", &[("deploy/app.yaml", &deployment)]);
    let config = ConfigDir::new();
    config.write(
        "regcred.yaml",
        &docker_config_secret("regcred", &host, "robot", "s3cret-pw"),
    );
    config.write("objects.yaml", &objects(&host, &git.url(&fleet), "60s"));
    let state = proc::scratch_dir("accept-state");
    let pinned = |tag: &str| format!("{host}/team/app:{tag} #");

    // The good list: 1.2.0 lands.
    let first = run_once(&config, state.path());
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(git
        .file(&fleet, "main", "deploy/app.yaml")
        .contains(&pinned("1.2.0")));
    let commits = git.log(&fleet, "main").len();
    assert_eq!(commits, 2);

    let cases: [(usize, &str, &str); 5] = [
        (
            CROSS_ORIGIN_LINK,
            "60s",
            "refusing pagination link to another origin",
        ),
        (ENDLESS_CHAIN, "60s", "tag list truncated after"),
        (HUGE_BODY, "60s", "response body larger than"),
        (TRUNCATED_JSON, "60s", "cannot decode"),
        (RATE_LIMITED_FOREVER, "3s", "HTTP 429"),
    ];
    for (case, timeout, expected) in cases {
        mode.store(case, Ordering::SeqCst);
        config.write("objects.yaml", &objects(&host, &git.url(&fleet), timeout));
        let run = run_once(&config, state.path());
        assert_ne!(run.code, 0, "case {case}: {}", run.stderr);
        let repo = line(&run, "ImageRepository default/app");
        assert!(
            repo.contains("failed: ") && repo.contains(expected),
            "case {case}: {repo}"
        );
        assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
        // Nothing committed, nothing downgraded: the policy still chooses from the good list.
        assert_eq!(git.log(&fleet, "main").len(), commits, "case {case}");
        assert!(
            git.file(&fleet, "main", "deploy/app.yaml")
                .contains(&pinned("1.2.0")),
            "case {case}"
        );
        let policy = line(&run, "ImagePolicy default/app");
        assert!(policy.ends_with(":1.2.0"), "case {case}: {policy}");
        // The stored list is the last good one.
        let doc = status_json(&config, state.path());
        let scan = &status_item(&doc, "ImageRepository", "app")["status"]["lastScanResult"];
        assert_eq!(scan["tagCount"], 3, "case {case}: {doc:#}");
        assert_eq!(
            scan["latestTags"],
            serde_json::json!(["1.2.0", "1.1.0", "1.0.0"]),
            "case {case}"
        );
        let latest = &status_item(&doc, "ImagePolicy", "app")["status"]["latestRef"];
        assert_eq!(latest["tag"], "1.2.0", "case {case}: {doc:#}");
    }
    // The host the `Link` named saw no request at all, so no credentials.
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    // The endless chain stopped at the page budget.
    let chain_pages = registry
        .requests()
        .iter()
        .filter(|r| r.q("page").is_some())
        .count();
    assert!(chain_pages < 1000, "{chain_pages} chain pages fetched");

    // Invalid tag strings: dropped, the valid tags are used, nothing of them reaches Git.
    mode.store(INVALID_TAGS, Ordering::SeqCst);
    config.write("objects.yaml", &objects(&host, &git.url(&fleet), "60s"));
    let run = run_once(&config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        line(&run, "ImageRepository default/app").contains("scanned 4 tags"),
        "{}",
        run.stderr
    );
    let file = git.file(&fleet, "main", "deploy/app.yaml");
    assert_eq!(
        file,
        deployment.replace(&pinned("1.0.0"), &pinned("1.3.0")),
        "only the marked value changed, to a valid tag"
    );
    let doc = status_json(&config, state.path());
    let scan = &status_item(&doc, "ImageRepository", "app")["status"]["lastScanResult"];
    assert_eq!(
        scan["latestTags"],
        serde_json::json!(["1.3.0", "1.2.0", "1.1.0", "1.0.0"])
    );
}

/// Issue 5, State: two ImageRepositories for one image with different credentials or
/// exclusions keep separate lists; identical ones share one scan. The emulator shows each
/// user a different tag list (as a registry with per-user visibility does, e.g. Harbor
/// robot accounts scoped to different projects).
#[test]
fn repositories_of_one_image_keep_separate_lists_and_identical_ones_share_one_scan() {
    let alice = basic("alice", "pw-a");
    let bob = basic("bob", "pw-b");
    let (a, b) = (alice.clone(), bob.clone());
    let registry = start(move |r: &Request| {
        let tags: &[&str] = match r.header("authorization") {
            Some(h) if h == a => &["1.0.0", "1.1.0", "2.0.0"],
            Some(h) if h == b => &["1.0.0", "1.5.0"],
            _ => return unauthorized(),
        };
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        Response::json(200, tags_body("team/app", &tags))
    });
    let host = registry.host();
    let config = ConfigDir::new();
    config.write(
        "secrets.yaml",
        &format!(
            "{}---\n{}",
            docker_config_secret("alice", &host, "alice", "pw-a"),
            docker_config_secret("bob", &host, "bob", "pw-b")
        ),
    );
    let repo = |name: &str, secret: &str, extra: &str| {
        format!(
            "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: {name}
spec:
  image: {host}/team/app
  interval: 1h
  insecure: true
  secretRef:
    name: {secret}
{extra}---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: {name}
spec:
  imageRepositoryRef:
    name: {name}
  policy:
    semver:
      range: '>=1.0.0'
"
        )
    };
    config.write(
        "objects.yaml",
        &[
            repo("alice-one", "alice", ""),
            repo("alice-two", "alice", ""),
            repo("alice-no-2", "alice", "  exclusionList:\n    - '^2\\.'\n"),
            repo("bob", "bob", ""),
        ]
        .concat(),
    );
    let state = proc::scratch_dir("accept-state");
    let run = run_once(&config, state.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (policy, tag) in [
        ("alice-one", "2.0.0"),
        ("alice-two", "2.0.0"),
        ("alice-no-2", "1.1.0"),
        ("bob", "1.5.0"),
    ] {
        let l = line(&run, &format!("ImagePolicy default/{policy}"));
        assert!(
            l.ends_with(&format!("{host}/team/app:{tag}")),
            "{policy}: {l}"
        );
    }
    // alice-one and alice-two send the same requests: one listing between them; the
    // exclusion list makes alice-no-2 a listing of its own; bob has his own.
    let listings = |auth: &str| {
        registry
            .requests()
            .iter()
            .filter(|r| {
                r.path == "/v2/team/app/tags/list" && r.header("authorization") == Some(auth)
            })
            .count()
    };
    assert_eq!(listings(&alice), 2, "{:#?}", registry.requests());
    assert_eq!(listings(&bob), 1, "{:#?}", registry.requests());

    // The lists are kept apart in the state dir.
    let doc = status_json(&config, state.path());
    for (name, tags) in [
        ("alice-one", serde_json::json!(["2.0.0", "1.1.0", "1.0.0"])),
        ("alice-two", serde_json::json!(["2.0.0", "1.1.0", "1.0.0"])),
        ("alice-no-2", serde_json::json!(["1.1.0", "1.0.0"])),
        ("bob", serde_json::json!(["1.5.0", "1.0.0"])),
    ] {
        let repo = status_item(&doc, "ImageRepository", name);
        assert_eq!(
            repo["status"]["lastScanResult"]["latestTags"], tags,
            "{name}: {doc:#}"
        );
    }
    // A second run within the interval uses each stored list: the same choices, no listing.
    let before = registry.requests().len();
    let again = run_once(&config, state.path());
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(registry.requests().len(), before);
    let l = line(&again, "ImagePolicy default/bob");
    assert!(l.ends_with(":1.5.0"), "{l}");
}

/// Issue 5, Names: `spec.image` with a scheme, a tag or a digest is an error that names the
/// object; nothing is scanned.
#[test]
fn spec_image_with_a_scheme_a_tag_or_a_digest_is_an_error_naming_the_object() {
    let registry = start(|_r: &Request| Response::json(200, r#"{"tags":["1.0.0"]}"#));
    let host = registry.host();
    let config = ConfigDir::new();
    let digest = format!("sha256:{}", "a".repeat(64));
    let mut yaml = String::new();
    for (name, image) in [
        ("with-scheme", format!("https://{host}/team/app")),
        ("with-tag", format!("{host}/team/app:1.0.0")),
        ("with-digest", format!("{host}/team/app@{digest}")),
    ] {
        yaml += &format!(
            "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: {name}
spec:
  image: {image}
  interval: 1h
  insecure: true
"
        );
    }
    config.write("objects.yaml", &yaml);
    let state = proc::scratch_dir("accept-state");
    let run = run_once(&config, state.path());
    assert_ne!(run.code, 0, "{}", run.stderr);
    for name in ["with-scheme", "with-tag", "with-digest"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&format!("ImageRepository default/{name}"))
                    && l.contains("spec.image")),
            "{name}:\n{}",
            run.stderr
        );
    }
    assert!(registry.requests().is_empty(), "{:?}", registry.requests());
}

/// Issue 5, Auth and transport: `spec.timeout` bounds the whole listing, and without it the
/// interval does. The emulator answers after a minute (a registry stuck behind a load
/// balancer).
#[test]
fn spec_timeout_and_its_default_bound_the_listing_end_to_end() {
    let registry = start(|_r: &Request| {
        Response::json(200, r#"{"tags":["1.0.0"]}"#).delayed(Duration::from_secs(60))
    });
    let host = registry.host();
    let config = ConfigDir::new();
    config.write(
        "objects.yaml",
        &format!(
            "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: bounded
spec:
  image: {host}/team/app
  interval: 1h
  timeout: 1s
  insecure: true
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: by-interval
spec:
  image: {host}/team/other
  interval: 2s
  insecure: true
"
        ),
    );
    let state = proc::scratch_dir("accept-state");
    let run = run_once(&config, state.path());
    assert_ne!(run.code, 0, "{}", run.stderr);
    let bounded = line(&run, "ImageRepository default/bounded");
    assert!(bounded.contains("timed out after 1s"), "{bounded}");
    let by_interval = line(&run, "ImageRepository default/by-interval");
    assert!(by_interval.contains("timed out after 2s"), "{by_interval}");
}

/// Issue 5, Digests, against the real registry: the chosen tag is pushed again with another
/// image (its digest moves). `IfNotPresent` keeps the digest it reflected for that tag;
/// `Always` (with its `interval`) reflects the new one, and the `:digest` marker and
/// `<name>:<tag>@<digest>` carry it.
#[test]
fn digest_modes_on_a_tag_pushed_again() {
    for mode in ["IfNotPresent", "Always"] {
        let s = e2e_support::setup(
            Registry::start(RegistryOptions::default()),
            GitServer::start(GitOptions::default()),
        );
        let values = "image:\n  digest: sha256:0000 # {\"$imagepolicy\": \"default:app:digest\"}\n  full: x # {\"$imagepolicy\": \"default:app\"}\n";
        s.git.commit(
            &s.fleet,
            "main",
            &[("deploy/values.yaml", values)],
            "values",
        );
        let interval = if mode == "Always" {
            "  interval: 1ms\n"
        } else {
            ""
        };
        let objects = e2e_support::objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0")
            .replacen("interval: 5m", "interval: 1ms", 1)
            .replace(
                "  policy:\n    semver:",
                &format!("  digestReflectionPolicy: {mode}\n{interval}  policy:\n    semver:"),
            );
        s.config.write("objects.yaml", &objects);
        let state = proc::scratch_dir("accept-state");
        let full = |digest: &str| format!("{}/{}:1.2.0@{digest}", s.registry.host(), s.image);
        let expected = |digest: &str| {
            values
                .replace("sha256:0000", digest)
                .replace("full: x", &format!("full: {}", full(digest)))
        };

        let first_digest = s.registry.manifest_digest(&s.image, "1.2.0").unwrap();
        let run = tagline_bounded(&["run", "--once"], s.config.path(), state.path());
        assert_eq!(run.code, 0, "{mode}: {}", run.stderr);
        assert_eq!(
            s.git.file(&s.fleet, "main", "deploy/values.yaml"),
            expected(&first_digest),
            "{mode}"
        );
        let commits = s.git.log(&s.fleet, "main").len();

        let moved = s.registry.push_variant(&s.image, "moved", &["1.2.0"]);
        assert_ne!(moved, first_digest);
        let run = tagline_bounded(&["run", "--once"], s.config.path(), state.path());
        assert_eq!(run.code, 0, "{mode}: {}", run.stderr);
        let policy = line(&run, "ImagePolicy default/app");
        if mode == "Always" {
            assert_eq!(
                s.git.file(&s.fleet, "main", "deploy/values.yaml"),
                expected(&moved)
            );
            assert!(
                s.git
                    .file(&s.fleet, "main", "deploy/app.yaml")
                    .contains(&format!("image: {} #", full(&moved))),
                "{mode}"
            );
            assert_eq!(s.git.log(&s.fleet, "main").len(), commits + 1);
            assert!(policy.contains(&full(&moved)), "{policy}");
        } else {
            assert_eq!(
                s.git.file(&s.fleet, "main", "deploy/values.yaml"),
                expected(&first_digest)
            );
            assert_eq!(s.git.log(&s.fleet, "main").len(), commits);
            assert!(policy.ends_with(&full(&first_digest)), "{policy}");
        }
    }
}

/// Issue 5, rate limits: Docker Hub's `ratelimit-limit` / `ratelimit-remaining` headers are
/// kept with the scan in the state dir, and `tagline status` shows what the last scan saw
/// (JSON and table), after each run. A registry that sends none shows `-`. When the quota is
/// spent (Docker Hub's 429 with `ratelimit-remaining: 0`), the run fails naming it, status
/// shows `0/100`, and the last good list stays.
#[test]
fn docker_hub_rate_limit_headers_are_kept_with_the_scan_and_shown_by_status() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let hub = start(move |_r: &Request| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if n >= 2 {
            return Response::json(429, r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#)
                .header("ratelimit-limit", "100;w=21600")
                .header("ratelimit-remaining", "0;w=21600")
                .header("Retry-After", "3600");
        }
        Response::json(200, r#"{"tags":["1.0.0","1.1.0"]}"#)
            .header("ratelimit-limit", "100;w=21600")
            .header("ratelimit-remaining", format!("{};w=21600", 99 - n))
    });
    let plain = start(|_r: &Request| Response::json(200, r#"{"tags":["2.0.0"]}"#));
    let config = ConfigDir::new();
    let mut yaml = String::new();
    for (name, host) in [("hub", hub.host()), ("plain", plain.host())] {
        yaml += &format!(
            "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: {name}
spec:
  image: {host}/library/app
  interval: 1ms
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
      range: '>=1.0.0'
"
        );
    }
    config.write("objects.yaml", &yaml);
    let state = proc::scratch_dir("accept-state");
    let row = |doc: &serde_json::Value, policy: &str| {
        doc["images"]
            .as_array()
            .expect("images")
            .iter()
            .find(|r| r["policy"] == policy)
            .unwrap_or_else(|| panic!("no row {policy} in {doc:#}"))
            .clone()
    };
    for round in 1..=2 {
        let run = run_once(&config, state.path());
        assert_eq!(run.code, 0, "{}", run.stderr);
        let remaining = 100 - sent.load(Ordering::SeqCst);
        let doc = status_json(&config, state.path());
        assert_eq!(
            row(&doc, "default/hub")["rateLimit"],
            serde_json::json!({"limit": 100, "remaining": remaining}),
            "round {round}"
        );
        assert!(
            row(&doc, "default/plain").get("rateLimit").is_none(),
            "{doc:#}"
        );

        let out = tagline()
            .args(["status", "--config"])
            .arg(config.path())
            .arg("--state-dir")
            .arg(state.path())
            .output()
            .expect("run tagline status");
        let table = String::from_utf8_lossy(&out.stdout);
        let header = table.lines().next().expect("header");
        let column = header.find("RATE LIMIT").expect("a RATE LIMIT column");
        let cell = |policy: &str| {
            let line = table
                .lines()
                .find(|l| l.starts_with(policy))
                .unwrap_or_else(|| panic!("no {policy} in\n{table}"));
            line[column..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(cell("default/hub"), format!("{remaining}/100"), "{table}");
        assert_eq!(cell("default/plain"), "-", "{table}");
    }

    let run = run_once(&config, state.path());
    assert_ne!(run.code, 0, "the spent quota fails the run");
    let failure = line(&run, "ImageRepository default/hub");
    assert!(
        failure.contains("rate limited (HTTP 429)") && failure.contains("0 of 100 requests left"),
        "{failure}"
    );
    let doc = status_json(&config, state.path());
    assert_eq!(
        row(&doc, "default/hub")["rateLimit"],
        serde_json::json!({"limit": 100, "remaining": 0})
    );
    let hub_status = &status_item(&doc, "ImageRepository", "hub")["status"];
    assert_eq!(
        hub_status["lastScanResult"]["tagCount"], 2,
        "the list stays"
    );
}
