//! The scan metrics on the wire: a running `tagline run` scans, on real docker-registries with
//! Basic auth, an ImageRepository that succeeds, one whose repository does not exist (404),
//! one whose credentials are refused (401) and one whose Secret is missing; `/metrics` read
//! over HTTP gives each one's scans and failures, the failures by Flux reason, and the
//! registry requests by host and status, as many as each registry's access log shows; the
//! failed ones count again when their backoff retries them.

mod common;

use std::collections::BTreeMap;

use common::*;

fn image_repository(name: &str, image: &str, secret: &str) -> String {
    format!(
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: {name}
spec:
  image: {image}
  interval: 1h
  insecure: true
  secretRef:
    name: {secret}
"
    )
}

/// The samples of `family` (e.g. `tagline_scans_total{`), with their values.
fn family(metrics: &BTreeMap<String, f64>, prefix: &str) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn expect(rows: &[(&str, f64)]) -> BTreeMap<String, f64> {
    rows.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn scan_failures_and_successes_reach_metrics_with_their_reasons_and_request_statuses() {
    let options = RegistryOptions {
        htpasswd: Some(("reguser", "regpass")),
        ..RegistryOptions::default()
    };
    // Two hosts, so that each one's requests do not depend on which scan goes first: `a`
    // serves `ok` and `missing`, `b` only `refused`.
    let a = Registry::start_owned_with_access_log(options);
    let b = Registry::start_owned_with_access_log(options);
    a.push_tags("team/ok", &["1.0.0", "1.1.0"]);
    b.push_tags("team/refused", &["1.0.0"]);
    let (ha, hb) = (a.host().to_string(), b.host().to_string());

    let config = ConfigDir::new();
    config.write("regcred.yaml", &a.pull_secret_yaml("regcred"));
    let wrong =
        format!(r#"{{"auths":{{"{hb}":{{"username":"reguser","password":"not-the-password"}}}}}}"#);
    config.write(
        "wrongcred.yaml",
        &secret(
            "wrongcred",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", &wrong)],
        ),
    );
    config.write(
        "objects.yaml",
        &[
            image_repository("ok", &format!("{ha}/team/ok"), "regcred"),
            image_repository("missing", &format!("{ha}/team/missing"), "regcred"),
            image_repository("refused", &format!("{hb}/team/refused"), "wrongcred"),
            image_repository("nosecret", &format!("{ha}/team/ok"), "absent"),
        ]
        .concat(),
    );

    let (before_a, before_b) = (a.requests().len(), b.requests().len());
    let mut svc = Service::start(&config);
    svc.wait_for("the first pass", |s| {
        s.get("/readyz").is_some_and(|(c, _)| c == 200)
    });
    let m = svc.metrics();
    // What each registry served tagline: its access log's request lines since the start.
    let seen_a: Vec<String> = a.requests()[before_a..].to_vec();
    let seen_b: Vec<String> = b.requests()[before_b..].to_vec();

    // Each repository scanned once; the three failures by the step that failed.
    let scans = |ok: f64, failed: f64| {
        expect(&[
            (
                "tagline_scans_total{namespace=\"default\",name=\"missing\",result=\"failed\"}",
                failed,
            ),
            (
                "tagline_scans_total{namespace=\"default\",name=\"nosecret\",result=\"failed\"}",
                failed,
            ),
            (
                "tagline_scans_total{namespace=\"default\",name=\"ok\",result=\"ok\"}",
                ok,
            ),
            (
                "tagline_scans_total{namespace=\"default\",name=\"refused\",result=\"failed\"}",
                failed,
            ),
        ])
    };
    let scan_failures = |n: f64| {
        expect(&[
            (
                "tagline_scan_failures_total{namespace=\"default\",name=\"missing\",reason=\"NotFound\"}",
                n,
            ),
            (
                "tagline_scan_failures_total{namespace=\"default\",name=\"nosecret\",reason=\"Options\"}",
                n,
            ),
            (
                "tagline_scan_failures_total{namespace=\"default\",name=\"refused\",reason=\"Auth\"}",
                n,
            ),
        ])
    };
    // Flux's Ready reasons: a scan that failed is ReadOperationFailed, one whose Secret
    // could not be read never started (AuthenticationFailed).
    let failures = |n: f64| {
        expect(&[
            (
                "tagline_failures_total{kind=\"ImageRepository\",reason=\"AuthenticationFailed\"}",
                n,
            ),
            (
                "tagline_failures_total{kind=\"ImageRepository\",reason=\"ReadOperationFailed\"}",
                2.0 * n,
            ),
        ])
    };
    let requests = |rows: &[(&str, &str, f64)]| {
        let rows: Vec<(String, f64)> = rows
            .iter()
            .map(|(host, status, n)| {
                (
                    format!(
                        "tagline_registry_requests_total{{host=\"{host}\",status=\"{status}\"}}"
                    ),
                    *n,
                )
            })
            .collect();
        rows.into_iter().collect::<BTreeMap<_, _>>()
    };
    let from = |m: &BTreeMap<String, f64>, host: &str| {
        family(
            m,
            &format!("tagline_registry_requests_total{{host=\"{host}\","),
        )
        .values()
        .sum::<f64>()
    };

    assert_eq!(
        family(&m, "tagline_scans_total{"),
        scans(1.0, 1.0),
        "{m:#?}"
    );
    assert_eq!(
        family(&m, "tagline_scan_failures_total{"),
        scan_failures(1.0),
        "{m:#?}"
    );
    assert_eq!(
        family(&m, "tagline_failures_total{"),
        failures(1.0),
        "{m:#?}"
    );
    assert_eq!(
        family(&m, "tagline_repository_tags{"),
        expect(&[(
            "tagline_repository_tags{namespace=\"default\",name=\"ok\"}",
            2.0
        )]),
        "{m:#?}"
    );

    // The requests by host and status. On `a`, one anonymous request learns the host's
    // Basic challenge (401), then with the credentials the tag list (200) and the unknown
    // repository (404). On `b`, the anonymous request (401), then the wrong credentials
    // refused (401). As many as each registry logged, and each repository was asked.
    assert_eq!(
        family(&m, "tagline_registry_requests_total{"),
        requests(&[
            (&ha, "200", 1.0),
            (&ha, "401", 1.0),
            (&ha, "404", 1.0),
            (&hb, "401", 2.0)
        ]),
        "{seen_a:#?}\n{seen_b:#?}\n{}",
        svc.log()
    );
    assert_eq!(from(&m, &ha), seen_a.len() as f64, "{seen_a:#?}");
    assert_eq!(from(&m, &hb), seen_b.len() as f64, "{seen_b:#?}");
    for (seen, repo) in [
        (&seen_a, "team/ok"),
        (&seen_a, "team/missing"),
        (&seen_b, "team/refused"),
    ] {
        assert!(
            seen.iter()
                .any(|r| r.contains(&format!("/v2/{repo}/tags/list"))),
            "{repo}: {seen:#?}"
        );
    }

    // The failed ones are retried after the first backoff (10 s), the good one not before its
    // hour: the failures count twice, the success once. The hosts' challenges are known by
    // now: `missing` is one request (404), `refused` sends its credentials, is refused,
    // answers the challenge again and is refused again (two 401s).
    svc.wait_for("the retry of the failed scans", |s| {
        let m = s.metrics();
        family(&m, "tagline_scans_total{") == scans(1.0, 2.0)
    });
    let m = svc.metrics();
    assert_eq!(
        family(&m, "tagline_scan_failures_total{"),
        scan_failures(2.0),
        "{m:#?}"
    );
    assert_eq!(
        family(&m, "tagline_failures_total{"),
        failures(2.0),
        "{m:#?}"
    );
    let (seen_a, seen_b) = (&a.requests()[before_a..], &b.requests()[before_b..]);
    assert_eq!(
        family(&m, "tagline_registry_requests_total{"),
        requests(&[
            (&ha, "200", 1.0),
            (&ha, "401", 1.0),
            (&ha, "404", 2.0),
            (&hb, "401", 4.0)
        ]),
        "{seen_a:#?}\n{seen_b:#?}\n{}",
        svc.log()
    );
    assert_eq!(from(&m, &ha), seen_a.len() as f64, "{seen_a:#?}");
    assert_eq!(from(&m, &hb), seen_b.len() as f64, "{seen_b:#?}");
}
