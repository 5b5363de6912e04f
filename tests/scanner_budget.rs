//! The `tagline.dev/scan-max-*` annotations bound one listing end to end (`run --once`
//! against the emulator): a listing cut by its budget is a failed scan naming the budget, its
//! policy elects nothing, and an unbudgeted repository of the same image gets every tag.

mod common;
mod emulator;

use std::sync::OnceLock;

use common::*;
use emulator::{tags_body, Emulator, Request, Response};

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

/// Six tags in three pages of two, chained by relative `Link` headers (as docker-registry
/// pages with `n=2`).
fn paged_registry() -> Emulator {
    rt().block_on(Emulator::start(|r: &Request| {
        let tags = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0"];
        let page: usize = r.q("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let slice: Vec<String> = tags
            .iter()
            .skip(page * 2)
            .take(2)
            .map(|t| t.to_string())
            .collect();
        let resp = Response::json(200, tags_body("team/app", &slice));
        if page < 2 {
            resp.header(
                "Link",
                format!("</v2/team/app/tags/list?page={}>; rel=\"next\"", page + 1),
            )
        } else {
            resp
        }
    }))
}

fn repository(name: &str, host: &str, annotation: Option<(&str, &str)>) -> String {
    let annotations = annotation
        .map(|(k, v)| format!("  annotations:\n    tagline.dev/{k}: \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: {name}
{annotations}spec:
  image: {host}/team/app
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
      range: '>=1.0.0'
---
"
    )
}

#[test]
fn a_listing_cut_by_its_budget_fails_and_elects_nothing() {
    let registry = paged_registry();
    let host = format!("127.0.0.1:{}", registry.port);
    let config = ConfigDir::new();
    let mut objects = String::new();
    objects += &repository("pages", &host, Some(("scan-max-pages", "2")));
    objects += &repository("tags", &host, Some(("scan-max-tags", "5")));
    objects += &repository("bytes", &host, Some(("scan-max-bytes", "100")));
    objects += &repository("roomy", &host, Some(("scan-max-pages", "3")));
    objects += &repository("plain", &host, None);
    config.write("objects.yaml", &objects);
    let state = tempfile::tempdir().unwrap();
    let out = tagline()
        .args(["run", "--once", "--config"])
        .arg(config.path())
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .expect("run tagline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = |object: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(&format!("{object}: ")))
            .unwrap_or_else(|| panic!("no line for {object} in:\n{stderr}"))
            .to_string()
    };
    assert!(
        line("ImageRepository default/pages").contains("page budget of 2 pages exhausted"),
        "{stderr}"
    );
    assert!(
        line("ImageRepository default/tags").contains("tag budget of 5 tags exhausted"),
        "{stderr}"
    );
    assert!(
        line("ImageRepository default/bytes").contains("byte budget of 100 bytes exhausted"),
        "{stderr}"
    );
    for cut in ["pages", "tags", "bytes"] {
        let policy = line(&format!("ImagePolicy default/{cut}"));
        assert!(!policy.contains("1.5.0"), "{policy}");
        assert!(!policy.contains("1.3.0"), "{policy}");
    }
    for whole in ["roomy", "plain"] {
        assert!(
            line(&format!("ImageRepository default/{whole}")).contains("6 tags"),
            "{stderr}"
        );
        assert!(
            line(&format!("ImagePolicy default/{whole}")).contains("1.5.0"),
            "{stderr}"
        );
    }
}
