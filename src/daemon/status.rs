//! What the service has done, for `/readyz`, `/metrics` and `/api/v1/status`: the last
//! outcome of every object, every object's Flux status, counters, and reconcile-duration
//! histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::api::Kind;
use crate::automation::{Report, Status};

/// Upper bounds of the duration histogram buckets, in seconds (Prometheus' defaults, which
/// Flux's controllers use too).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One object's last outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectStatus {
    /// `ok`, `skipped` or `failed`.
    pub result: &'static str,
    pub message: String,
    /// Flux's Ready reason (`Succeeded`, `GitOperationFailed`, ...); none for a skipped
    /// object (Flux leaves its conditions as they were).
    pub reason: Option<&'static str>,
    pub warnings: Vec<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

type Key = (Kind, String, String); // kind, namespace, name

/// The status board: written after each pass, read by HTTP handlers.
#[derive(Debug, Default)]
pub struct Board {
    objects: BTreeMap<Key, ObjectStatus>,
    reconciles: BTreeMap<(Kind, &'static str), u64>,
    /// Failures by kind and Flux reason.
    failures: BTreeMap<(Kind, &'static str), u64>,
    durations: BTreeMap<Key, Histogram>,
    passes: u64,
    last_pass: Option<DateTime<Utc>>,
    last_pass_seconds: f64,
    /// Scans run, by (namespace, name, result).
    scans: BTreeMap<(String, String, &'static str), u64>,
    /// Tags the store holds, by (namespace, name).
    repository_tags: BTreeMap<(String, String), usize>,
    /// Registry requests, by (host, status).
    registry_requests: BTreeMap<(String, String), u64>,
    /// The last `RateLimit-Remaining` each host sent.
    rate_limit_remaining: BTreeMap<String, u64>,
    /// Pushes, by (namespace, name) of the automation.
    pushes: BTreeMap<(String, String), u64>,
    /// Failed scans, by (namespace, name, the failed step).
    scan_failures: BTreeMap<(String, String, String), u64>,
    /// Every object's Flux status and the image rows, as of the last pass.
    document: crate::status::Document,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Board {
    /// Records a completed pass that started at `at` and took `took`; each object's
    /// `gotk_reconcile_duration_seconds` observation is its own reconcile time.
    pub fn record(&mut self, report: &Report, at: DateTime<Utc>, took: Duration) {
        for o in &report.outcomes {
            let secs = o.took.as_secs_f64();
            let (result, message) = match &o.status {
                Status::Ok(m) => ("ok", m),
                Status::Skipped(m) => ("skipped", m),
                Status::Failed(m) => ("failed", m),
            };
            let key = (o.kind, o.id.namespace.clone(), o.id.name.clone());
            *self.reconciles.entry((o.kind, result)).or_default() += 1;
            if o.failed() {
                *self
                    .failures
                    .entry((o.kind, o.reason.as_str()))
                    .or_default() += 1;
            }
            self.durations.entry(key.clone()).or_default().observe(secs);
            self.objects.insert(
                key,
                ObjectStatus {
                    result,
                    message: message.clone(),
                    reason: (result != "skipped").then(|| o.reason.as_str()),
                    warnings: o.warnings.clone(),
                    at,
                },
            );
        }
        for (id, scan) in &report.scans {
            let result = if scan.is_ok() { "ok" } else { "failed" };
            let key = (id.namespace.clone(), id.name.clone(), result);
            *self.scans.entry(key).or_default() += 1;
            if let Err(reason) = scan {
                let key = (id.namespace.clone(), id.name.clone(), reason.to_string());
                *self.scan_failures.entry(key).or_default() += 1;
            }
        }
        for (id, n) in &report.repository_tags {
            let key = (id.namespace.clone(), id.name.clone());
            self.repository_tags.insert(key, *n);
        }
        for (key, n) in &report.registry_requests {
            *self.registry_requests.entry(key.clone()).or_default() += n;
        }
        for (host, r) in &report.rate_limits {
            if let Some(remaining) = r.remaining {
                self.rate_limit_remaining.insert(host.clone(), remaining);
            }
        }
        for id in report.pushes.keys() {
            let key = (id.namespace.clone(), id.name.clone());
            *self.pushes.entry(key).or_default() += 1;
        }
        self.passes += 1;
        self.last_pass = Some(at);
        self.last_pass_seconds = took.as_secs_f64();
    }

    /// Replaces the Flux statuses `/api/v1/status` serves (see `crate::status::document`).
    pub fn set_document(&mut self, document: crate::status::Document) {
        self.document = document;
    }

    /// Ready once a pass has completed.
    pub fn ready(&self) -> bool {
        self.passes > 0
    }

    /// How many passes completed.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// An object's last outcome.
    pub fn object(&self, kind: Kind, namespace: &str, name: &str) -> Option<&ObjectStatus> {
        self.objects
            .get(&(kind, namespace.to_string(), name.to_string()))
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP gotk_reconcile_duration_seconds The duration in seconds of a GitOps Toolkit resource reconciliation.\n");
        out.push_str("# TYPE gotk_reconcile_duration_seconds histogram\n");
        for ((kind, ns, name), h) in &self.durations {
            let labels = format!(
                "kind=\"{kind}\",name=\"{}\",namespace=\"{}\"",
                escape(name),
                escape(ns)
            );
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "gotk_reconcile_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "gotk_reconcile_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "gotk_reconcile_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "gotk_reconcile_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP tagline_reconciles_total Reconciliations by kind and result.\n");
        out.push_str("# TYPE tagline_reconciles_total counter\n");
        for ((kind, result), n) in &self.reconciles {
            let _ = writeln!(
                out,
                "tagline_reconciles_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP tagline_failures_total Failed reconciliations by kind and Flux's Ready reason.\n",
        );
        out.push_str("# TYPE tagline_failures_total counter\n");
        for ((kind, reason), n) in &self.failures {
            let _ = writeln!(
                out,
                "tagline_failures_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP tagline_passes_total Completed passes over every object.\n");
        out.push_str("# TYPE tagline_passes_total counter\n");
        let _ = writeln!(out, "tagline_passes_total {}", self.passes);
        out.push_str("# HELP tagline_last_pass_timestamp_seconds When the last completed pass started (Unix time).\n");
        out.push_str("# TYPE tagline_last_pass_timestamp_seconds gauge\n");
        let last = self
            .last_pass
            .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
        let _ = writeln!(out, "tagline_last_pass_timestamp_seconds {last}");
        out.push_str(
            "# HELP tagline_last_pass_duration_seconds How long the last completed pass took.\n",
        );
        out.push_str("# TYPE tagline_last_pass_duration_seconds gauge\n");
        let _ = writeln!(
            out,
            "tagline_last_pass_duration_seconds {}",
            self.last_pass_seconds
        );
        self.tagline_metrics(&mut out);
        out
    }

    /// tagline's own series: scans, tags, registry requests, rate limits, pushes, failures.
    fn tagline_metrics(&self, out: &mut String) {
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            out,
            "tagline_scans_total",
            "counter",
            "Registry scans by ImageRepository and result (ok, failed).",
        );
        for ((ns, name, result), n) in &self.scans {
            let _ = writeln!(
                out,
                "tagline_scans_total{{namespace=\"{}\",name=\"{}\",result=\"{result}\"}} {n}",
                escape(ns),
                escape(name)
            );
        }
        head(
            out,
            "tagline_repository_tags",
            "gauge",
            "Tags the last good scan of an ImageRepository listed (after exclusion).",
        );
        for ((ns, name), n) in &self.repository_tags {
            let _ = writeln!(
                out,
                "tagline_repository_tags{{namespace=\"{}\",name=\"{}\"}} {n}",
                escape(ns),
                escape(name)
            );
        }
        head(
            out,
            "tagline_registry_requests_total",
            "counter",
            "HTTP requests sent to registries, by host and status code (error: no response).",
        );
        for ((host, status), n) in &self.registry_requests {
            let _ = writeln!(
                out,
                "tagline_registry_requests_total{{host=\"{}\",status=\"{}\"}} {n}",
                escape(host),
                escape(status)
            );
        }
        head(
            out,
            "tagline_registry_rate_limit_remaining",
            "gauge",
            "The last RateLimit-Remaining a registry host sent.",
        );
        for (host, n) in &self.rate_limit_remaining {
            let _ = writeln!(
                out,
                "tagline_registry_rate_limit_remaining{{host=\"{}\"}} {n}",
                escape(host)
            );
        }
        head(
            out,
            "tagline_pushes_total",
            "counter",
            "Commits pushed by ImageUpdateAutomation (one commit per push).",
        );
        for ((ns, name), n) in &self.pushes {
            let _ = writeln!(
                out,
                "tagline_pushes_total{{namespace=\"{}\",name=\"{}\"}} {n}",
                escape(ns),
                escape(name)
            );
        }
        head(
            out,
            "tagline_scan_failures_total",
            "counter",
            "Failed registry scans by ImageRepository and the step that failed.",
        );
        for ((ns, name, reason), n) in &self.scan_failures {
            let _ = writeln!(
                out,
                "tagline_scan_failures_total{{namespace=\"{}\",name=\"{}\",reason=\"{}\"}} {n}",
                escape(ns),
                escape(name),
                escape(reason)
            );
        }
    }

    /// `/api/v1/status`: every object's Flux status (`items`), the image rows (`images`),
    /// and every object's last outcome line (`objects`).
    pub fn status_json(&self) -> serde_json::Value {
        let objects: Vec<_> = self
            .objects
            .iter()
            .map(|((kind, ns, name), s)| {
                json!({
                    "kind": kind.to_string(),
                    "namespace": ns,
                    "name": name,
                    "result": s.result,
                    "message": s.message,
                    "reason": s.reason,
                    "warnings": s.warnings,
                    "lastReconciled": s.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                })
            })
            .collect();
        let document = crate::status::Document {
            ready: Some(self.ready()),
            passes: Some(self.passes),
            last_pass: self
                .last_pass
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            ..self.document.clone()
        };
        let mut value = serde_json::to_value(document).expect("status serialises");
        value["objects"] = serde_json::Value::Array(objects);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NamespacedName;
    use crate::automation::Outcome;

    fn outcome(kind: Kind, name: &str, status: Status) -> Outcome {
        Outcome {
            took: Duration::from_millis(300),
            ..Outcome::new(kind, &NamespacedName::new("default", name), status)
        }
    }

    #[test]
    fn counters_histograms_and_status_follow_the_passes() {
        let mut b = Board::default();
        assert!(!b.ready());
        let report = Report {
            outcomes: vec![
                outcome(Kind::ImageRepository, "app", Status::Ok("12 tags".into())),
                outcome(
                    Kind::ImageUpdateAutomation,
                    "fleet",
                    Status::Failed("push: \"denied\"".into()),
                )
                .with_reason(crate::automation::Reason::SourceManagerFailed),
            ],
            ..Report::default()
        };
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        b.record(&report, t, Duration::from_millis(900));
        // The second pass: each object took 2 ms, the pass itself longer.
        let quick = Report {
            outcomes: report
                .outcomes
                .iter()
                .map(|o| Outcome {
                    took: Duration::from_millis(2),
                    ..o.clone()
                })
                .collect(),
            ..Report::default()
        };
        b.record(
            &quick,
            t + chrono::TimeDelta::seconds(60),
            Duration::from_millis(40),
        );
        assert!(b.ready());
        let m = b.metrics();
        let labels = "kind=\"ImageRepository\",name=\"app\",namespace=\"default\"";
        for want in [
            format!("gotk_reconcile_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1"),
            format!("gotk_reconcile_duration_seconds_bucket{{{labels},le=\"0.25\"}} 1"),
            format!("gotk_reconcile_duration_seconds_bucket{{{labels},le=\"0.5\"}} 2"),
            format!("gotk_reconcile_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"),
            format!("gotk_reconcile_duration_seconds_count{{{labels}}} 2"),
            "tagline_reconciles_total{kind=\"ImageRepository\",result=\"ok\"} 2".to_string(),
            "tagline_reconciles_total{kind=\"ImageUpdateAutomation\",result=\"failed\"} 2"
                .to_string(),
            "tagline_failures_total{kind=\"ImageUpdateAutomation\",reason=\"SourceManagerFailed\"} 2".to_string(),
            "tagline_passes_total 2".to_string(),
            "tagline_last_pass_timestamp_seconds 1767225660".to_string(),
            "tagline_last_pass_duration_seconds 0.04".to_string(),
        ] {
            assert!(m.lines().any(|l| l == want), "missing {want:?} in\n{m}");
        }
        let s = b.status_json();
        assert_eq!(s["passes"], 2);
        assert_eq!(s["objects"][1]["kind"], "ImageUpdateAutomation");
        assert_eq!(s["objects"][1]["result"], "failed");
        assert_eq!(s["objects"][1]["message"], "push: \"denied\"");
        assert_eq!(s["objects"][1]["reason"], "SourceManagerFailed");
        assert_eq!(s["objects"][0]["reason"], "Succeeded");
        let mut held = Board::default();
        held.record(
            &Report {
                outcomes: vec![outcome(
                    Kind::ImageUpdateAutomation,
                    "fleet",
                    Status::Skipped("outside its commit window".into()),
                )],
                ..Report::default()
            },
            t,
            Duration::ZERO,
        );
        assert!(held.status_json()["objects"][0]["reason"].is_null());
        assert!(
            !m.contains("tagline_failures_total{kind=\"ImageRepository\""),
            "{m}"
        );
        assert_eq!(s["objects"][1]["lastReconciled"], "2026-01-01T00:01:00Z");
    }

    #[test]
    fn status_json_serves_the_flux_document_with_the_pass_counters() {
        let mut b = Board::default();
        b.set_document(crate::status::Document {
            items: vec![
                json!({"kind": "ImagePolicy", "status": {"latestRef": {"name": "a", "tag": "1"}}}),
            ],
            images: vec![crate::status::ImageRow {
                policy: "default/app".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let s = b.status_json();
        assert_eq!(s["ready"], false);
        assert_eq!(s["passes"], 0);
        assert_eq!(s["items"][0]["status"]["latestRef"]["tag"], "1");
        assert_eq!(s["images"][0]["policy"], "default/app");
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        b.record(&Report::default(), t, Duration::from_millis(1));
        let s = b.status_json();
        assert_eq!(s["ready"], true);
        assert_eq!(s["lastPass"], "2026-01-01T00:00:00Z");
        assert_eq!(
            s["items"].as_array().unwrap().len(),
            1,
            "kept across passes"
        );
    }

    #[test]
    fn tagline_series_follow_scans_requests_pushes_and_failures() {
        let mut b = Board::default();
        let app = NamespacedName::new("default", "app");
        let gone = NamespacedName::new("default", "gone");
        let mut report = Report {
            outcomes: vec![
                outcome(
                    Kind::ImageRepository,
                    "app",
                    Status::Ok("scanned 3 tags".into()),
                ),
                outcome(
                    Kind::ImageRepository,
                    "gone",
                    Status::Failed("not found".into()),
                ),
                outcome(
                    Kind::ImageUpdateAutomation,
                    "fleet",
                    Status::Failed("push".into()),
                ),
            ],
            ..Report::default()
        };
        report.scans.insert(app.clone(), Ok(3));
        report.scans.insert(gone.clone(), Err("NotFound"));
        report.repository_tags.insert(app.clone(), 3);
        report
            .registry_requests
            .insert(("127.0.0.1:5000".into(), "200".into()), 2);
        report
            .registry_requests
            .insert(("127.0.0.1:5000".into(), "error".into()), 1);
        report.rate_limits.insert(
            "127.0.0.1:5000".into(),
            crate::scanner::RateLimit {
                limit: Some(100),
                remaining: Some(97),
            },
        );
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        b.record(&report, t, Duration::from_millis(1));
        b.record(&report, t, Duration::from_millis(1));
        let m = b.metrics();
        for want in [
            "# TYPE tagline_scans_total counter",
            "tagline_scans_total{namespace=\"default\",name=\"app\",result=\"ok\"} 2",
            "tagline_scans_total{namespace=\"default\",name=\"gone\",result=\"failed\"} 2",
            "# TYPE tagline_repository_tags gauge",
            "tagline_repository_tags{namespace=\"default\",name=\"app\"} 3",
            "tagline_registry_requests_total{host=\"127.0.0.1:5000\",status=\"200\"} 4",
            "tagline_registry_requests_total{host=\"127.0.0.1:5000\",status=\"error\"} 2",
            "tagline_registry_rate_limit_remaining{host=\"127.0.0.1:5000\"} 97",
            "tagline_scan_failures_total{namespace=\"default\",name=\"gone\",reason=\"NotFound\"} 2",
            "# TYPE tagline_pushes_total counter",
        ] {
            assert!(m.lines().any(|l| l == want), "missing {want:?} in\n{m}");
        }
        assert!(!m.contains("tagline_repository_tags{namespace=\"default\",name=\"gone\"}"));
        // Failed reconciliations by Flux's reason: the two failed objects, twice each.
        let failures: u64 = m
            .lines()
            .filter(|l| l.starts_with("tagline_failures_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(failures, 4, "{m}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
