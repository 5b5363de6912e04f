//! Each object's status as Flux reports it, and tagline's per-image view, computed by pure
//! functions from the config, the store and the last outcomes; `record` is how a pass leaves
//! in the store what those functions read.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::api::status::{
    Condition, ImagePolicyStatus, ImageRefStatus, ImageRepositoryStatus,
    ImageUpdateAutomationStatus, ObjectStatus, ScanResult, StatusItem, StatusMeta,
};
use crate::api::{
    Config, GitRef, ImagePolicy, ImageRepository, ImageUpdateAutomation, Kind, NamespacedName,
};
use crate::automation::{Outcome, Reason, Report, Status};
use crate::image::ImageRef;
use crate::policy::Version;
use crate::store::{OutcomeRecord, Store};

/// The API group and version of the image automation kinds.
pub const API_VERSION: &str = "image.toolkit.fluxcd.io/v1";

/// How many tags `lastScanResult.latestTags` holds.
pub const LATEST_TAGS: usize = 10;

/// `/api/v1/status` and `tagline status -o json`: every object with its Flux status, and one
/// row per image for humans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The service only: whether a pass completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The service only: how many passes completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<u64>,
    /// The service only: when the last completed pass started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pass: Option<String>,
    /// `{apiVersion, kind, metadata: {name, namespace}, status}` per object.
    pub items: Vec<serde_json::Value>,
    pub images: Vec<ImageRow>,
}

/// One image, as `tagline status` shows it: one per ImagePolicy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRow {
    /// The ImagePolicy, `namespace/name`.
    pub policy: String,
    /// The ImageRepository's `spec.image` as written.
    pub image: String,
    /// The value the policy's markers hold in Git after the last successful automation run
    /// (`tag` or `tag@digest`).
    pub in_git: Option<String>,
    /// The tag the policy allows (`latestRef`).
    pub latest: Option<String>,
    /// The highest semantic version among all scanned tags (else the first of Flux's
    /// `latestTags`), whatever the policy allows.
    pub newest: Option<String>,
    /// RFC 3339.
    pub last_scan: Option<String>,
    /// RFC 3339: when the service scans the repository again (its interval less its fixed
    /// per-object jitter, as `automation::period`); none while suspended or before a first
    /// scan.
    pub next_scan: Option<String>,
    /// The registry's quota after the last successful scan, from its rate-limit headers
    /// (`RateLimit-Remaining` and `-Limit`, Docker Hub's, `X-RateLimit-*`); none when the
    /// registry sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::store::Quota>,
    /// The first failure among the repository, the policy and the automations applying it.
    pub last_error: Option<String>,
}

/// RFC 3339 (UTC, seconds) of seconds since the Unix epoch.
pub fn rfc3339(secs: u64) -> String {
    DateTime::<Utc>::from_timestamp(secs as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn outcome_key(kind: Kind, id: &NamespacedName) -> String {
    format!("{kind}/{}/{}", id.namespace, id.name)
}

fn ref_text(r: &ImageRef) -> String {
    match &r.digest {
        Some(d) => format!("{}@{d}", r.tag),
        None => r.tag.clone(),
    }
}

/// The policies an automation applies (its namespace, its selector) with their latest
/// references: the setters its run used.
pub fn applied_policies(
    config: &Config,
    automation: &ImageUpdateAutomation,
    store: &Store,
) -> BTreeMap<String, ImageRef> {
    config
        .policies
        .values()
        .filter(|p| p.id.namespace == automation.id.namespace)
        .filter(|p| automation.selector.matches(&p.labels))
        .filter_map(|p| {
            store
                .latest(&p.id.to_string())
                .map(|r| (format!("{}:{}", p.id.namespace, p.id.name), r.clone()))
        })
        .collect()
}

/// Flux's Ready message for a successful outcome, where it is not the outcome's own line:
/// a policy's `Latest image tag for ...` (with its previous reference when it changed in
/// this pass), an automation's `repository up-to-date` (or its push, when it pushed).
fn ready_message(report: &Report, o: &Outcome, store: &Store) -> Option<String> {
    let Status::Ok(text) = &o.status else {
        return None;
    };
    match o.kind {
        Kind::ImagePolicy => {
            let latest = store.latest(&o.id.to_string())?;
            let previous = report
                .latest_changes
                .get(&o.id)
                .and_then(|(_, previous)| previous.as_ref());
            Some(crate::notify::event::latest_message(latest, previous))
        }
        Kind::ImageUpdateAutomation => Some(match &o.push {
            Some(_) => text.clone(),
            None => "repository up-to-date".into(),
        }),
        _ => None,
    }
}

/// Leaves in `store` what a pass at `now` (seconds since the epoch) did: each reconciled
/// object's outcome (suspended ones keep theirs, as Flux's do), and for each automation that
/// ran, its run time, what its successful run applied, and its push.
pub fn record(config: &Config, store: &mut Store, report: &Report, now: u64) {
    for o in &report.outcomes {
        let (result, message) = match &o.status {
            Status::Ok(m) => ("ok", m),
            Status::Failed(m) => ("failed", m),
            Status::Skipped(_) => continue,
        };
        store.set_outcome(
            &outcome_key(o.kind, &o.id),
            OutcomeRecord {
                result: result.into(),
                message: message.clone(),
                reason: Some(o.reason.as_str().into()),
                ready_message: ready_message(report, o, store),
                time: now,
                since: now,
            },
        );
        if o.kind != Kind::ImageUpdateAutomation {
            continue;
        }
        let Some(automation) = config.automations.get(&o.id) else {
            continue;
        };
        let key = o.id.to_string();
        let mut run = store.run(&key).cloned().unwrap_or_default();
        run.time = now;
        if let Status::Ok(_) = &o.status {
            run.policies = applied_policies(config, automation, store);
            if let Some(push) = &o.push {
                run.push_commit = Some(push.commit.clone());
                run.push_time = Some(now);
            }
        }
        store.set_run(&key, run);
    }
}

/// The Ready condition from an object's last outcome: its recorded reason (state written
/// before reasons were kept: `Succeeded`, or the kind's usual failure reason).
fn ready(
    kind: Kind,
    outcome: Option<&OutcomeRecord>,
    message: impl Fn(&OutcomeRecord) -> String,
) -> Vec<Condition> {
    outcome
        .map(|o| {
            let ok = o.result == "ok";
            let reason = o.reason.clone().unwrap_or_else(|| {
                if ok {
                    Reason::Succeeded
                } else {
                    Reason::failure_of(kind)
                }
                .as_str()
                .into()
            });
            Condition {
                type_: "Ready".into(),
                status: if ok { "True" } else { "False" }.into(),
                last_transition_time: rfc3339(o.since),
                reason,
                message: message(o),
            }
        })
        .into_iter()
        .collect()
}

/// `sha256:<hex>` of the newline-joined tags (Flux's FluxStorage revision).
pub fn revision(tags: &[String]) -> String {
    let digest = Sha256::digest(tags.join("\n").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Flux's `latestTags`: the first ten tags in descending byte-wise order.
pub fn latest_tags(tags: &[String]) -> Vec<String> {
    let mut sorted: Vec<&String> = tags.iter().collect();
    sorted.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    sorted.into_iter().take(LATEST_TAGS).cloned().collect()
}

/// An ImageRepository's status.
pub fn repository(repo: &ImageRepository, store: &Store) -> ImageRepositoryStatus {
    let key = repo.id.to_string();
    let tags = store.tags(&key);
    let tags = tags.as_deref();
    let scan = store.scan(&key);
    let last_scan_result = tags.map(|tags| ScanResult {
        revision: Some(revision(tags)),
        tag_count: tags.len(),
        scan_time: scan.map(|s| rfc3339(s.time)),
        latest_tags: latest_tags(tags),
    });
    let outcome = store.outcome(&outcome_key(Kind::ImageRepository, &repo.id));
    let conditions = ready(Kind::ImageRepository, outcome, |o| {
        match (o.result.as_str(), tags) {
            ("ok", Some(tags)) => format!(
                "successful scan: found {} tags with checksum {}",
                tags.len(),
                revision(tags)
            ),
            _ => o.message.clone(),
        }
    });
    ImageRepositoryStatus {
        conditions,
        canonical_image_name: Some(repo.image.canonical()),
        last_scan_result,
        observed_exclusion_list: store
            .exclusion(&key)
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
    }
}

/// An ImagePolicy's status.
pub fn policy(policy: &ImagePolicy, store: &Store) -> ImagePolicyStatus {
    let key = policy.id.to_string();
    let latest = store.latest(&key);
    let previous = store.previous(&key);
    let outcome = store.outcome(&outcome_key(Kind::ImagePolicy, &policy.id));
    let conditions = ready(Kind::ImagePolicy, outcome, |o| {
        match (o.result.as_str(), &o.ready_message, latest) {
            ("ok", Some(m), _) => m.clone(),
            ("ok", None, Some(l)) => crate::notify::event::latest_message(l, None),
            _ => o.message.clone(),
        }
    });
    ImagePolicyStatus {
        conditions,
        latest_ref: latest.map(ImageRefStatus::from),
        observed_previous_ref: previous.map(ImageRefStatus::from),
    }
}

/// The branch an automation checks out (`git.checkout.ref`, else the GitRepository's
/// `spec.ref`, else `master`), when it is a branch.
fn checkout_branch(config: &Config, automation: &ImageUpdateAutomation) -> Option<String> {
    let reference = automation.checkout.clone().or_else(|| {
        config
            .git_repositories
            .get(&automation.source)
            .and_then(|s| s.reference.clone())
    });
    match reference {
        None => Some("master".into()),
        Some(GitRef::Branch(b)) => Some(b),
        Some(_) => None,
    }
}

/// An ImageUpdateAutomation's status.
pub fn automation(
    config: &Config,
    automation: &ImageUpdateAutomation,
    store: &Store,
) -> ImageUpdateAutomationStatus {
    let key = automation.id.to_string();
    let run = store.run(&key);
    let outcome = store.outcome(&outcome_key(Kind::ImageUpdateAutomation, &automation.id));
    let conditions = ready(Kind::ImageUpdateAutomation, outcome, |o| {
        match (o.result.as_str(), &o.ready_message) {
            ("ok", Some(m)) => m.clone(),
            ("ok", None) => "repository up-to-date".into(),
            _ => o.message.clone(),
        }
    });
    let observed_source_revision =
        store
            .automation(&key)
            .map(|r| match checkout_branch(config, automation) {
                Some(b) => format!("{b}@sha1:{}", r.revision),
                None => format!("sha1:{}", r.revision),
            });
    ImageUpdateAutomationStatus {
        conditions,
        last_automation_run_time: run.map(|r| rfc3339(r.time)),
        last_push_commit: run.and_then(|r| r.push_commit.clone()),
        last_push_time: run.and_then(|r| r.push_time).map(rfc3339),
        observed_policies: run
            .map(|r| {
                r.policies
                    .iter()
                    .map(|(k, v)| {
                        let name = k.split_once(':').map_or(k.as_str(), |(_, n)| n);
                        (name.to_string(), ImageRefStatus::from(v))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        observed_source_revision,
    }
}

fn item(kind: Kind, id: &NamespacedName, status: ObjectStatus) -> serde_json::Value {
    serde_json::to_value(StatusItem {
        api_version: API_VERSION.into(),
        kind: kind.to_string(),
        metadata: StatusMeta {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
        },
        status,
    })
    .expect("status serialises")
}

/// The newest tag by semantic version (any tag that parses as one), else Flux's first
/// `latestTags` entry.
pub fn newest(tags: &[String]) -> Option<String> {
    tags.iter()
        .filter_map(|t| Version::parse(t).map(|v| (v, t)))
        .max_by(|(a, ta), (b, tb)| a.precedence(b).then_with(|| ta.cmp(tb)))
        .map(|(_, t)| t.clone())
        .or_else(|| latest_tags(tags).into_iter().next())
}

/// One row per ImagePolicy.
pub fn images(config: &Config, store: &Store) -> Vec<ImageRow> {
    let failure = |kind: Kind, id: &NamespacedName| {
        store
            .outcome(&outcome_key(kind, id))
            .filter(|o| o.result == "failed")
            .map(|o| format!("{kind} {id}: {}", o.message))
    };
    config
        .policies
        .values()
        .map(|p| {
            let repo = config.repositories.get(&p.repository);
            let repo_key = p.repository.to_string();
            let scan = store.scan(&repo_key);
            let setter = format!("{}:{}", p.id.namespace, p.id.name);
            let in_git = config
                .automations
                .keys()
                .filter_map(|a| store.run(&a.to_string()))
                .filter_map(|r| r.policies.get(&setter).map(|v| (r.time, v)))
                .max_by_key(|(t, _)| *t)
                .map(|(_, v)| ref_text(v));
            let automations = config
                .automations
                .values()
                .filter(|a| a.id.namespace == p.id.namespace && a.selector.matches(&p.labels));
            let last_error = failure(Kind::ImageRepository, &p.repository)
                .or_else(|| failure(Kind::ImagePolicy, &p.id))
                .or_else(|| {
                    automations
                        .filter_map(|a| failure(Kind::ImageUpdateAutomation, &a.id))
                        .next()
                });
            ImageRow {
                policy: p.id.to_string(),
                image: repo.map(|r| r.image.original.clone()).unwrap_or_default(),
                in_git,
                latest: store.latest(&p.id.to_string()).map(ref_text),
                newest: store.tags(&repo_key).as_deref().and_then(newest),
                last_scan: scan.map(|s| rfc3339(s.time)),
                // When the service scans again: the interval less the repository's fixed
                // jitter after the last scan; a scan whose configuration changed since is
                // due at once (shown as its own time, already past).
                next_scan: match (repo, scan) {
                    (Some(r), Some(s)) if !r.suspend => Some(rfc3339(
                        crate::automation::scan_due(r, store).unwrap_or(s.time),
                    )),
                    _ => None,
                },
                rate_limit: scan.and_then(|s| s.rate_limit),
                last_error,
            }
        })
        .collect()
}

/// Every object's Flux status (repositories, policies, automations, each by
/// namespace/name) and the image rows.
pub fn document(config: &Config, store: &Store) -> Document {
    let mut items = Vec::new();
    for r in config.repositories.values() {
        items.push(item(
            Kind::ImageRepository,
            &r.id,
            ObjectStatus::ImageRepository(repository(r, store)),
        ));
    }
    for p in config.policies.values() {
        items.push(item(
            Kind::ImagePolicy,
            &p.id,
            ObjectStatus::ImagePolicy(policy(p, store)),
        ));
    }
    for a in config.automations.values() {
        items.push(item(
            Kind::ImageUpdateAutomation,
            &a.id,
            ObjectStatus::ImageUpdateAutomation(automation(config, a, store)),
        ));
    }
    Document {
        items,
        images: images(config, store),
        ..Document::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::{Failure, Push};
    use crate::store::{AutomationRecord, ScanRecord};

    const OBJECTS: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: apps}
spec:
  image: reg.example:5000/team/app
  interval: 5m
  exclusionList: ['^sha-']
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: app, namespace: apps}
spec:
  imageRepositoryRef: {name: app}
  policy: {semver: {range: '^1.0.0'}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: apps}
spec:
  url: http://127.0.0.1:9/fleet.git
  interval: 1m
  ref: {branch: main}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: fleet, namespace: apps}
spec:
  interval: 5m
  sourceRef: {kind: GitRepository, name: fleet}
  git:
    commit:
      author: {email: bot@example.com}
";

    fn config() -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("objects.yaml"), OBJECTS).unwrap();
        crate::api::load_dir(dir.path()).unwrap()
    }

    fn id(name: &str) -> NamespacedName {
        NamespacedName::new("apps", name)
    }

    fn r(tag: &str) -> ImageRef {
        ImageRef {
            name: "reg.example:5000/team/app".into(),
            tag: tag.into(),
            digest: None,
        }
    }

    fn report(outcomes: Vec<(Kind, &str, Status)>) -> Report {
        Report {
            outcomes: outcomes
                .into_iter()
                .map(|(kind, name, status)| Outcome::new(kind, &id(name), status))
                .collect(),
            ..Report::default()
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn latest_tags_are_the_first_ten_in_descending_byte_order() {
        let list: Vec<String> = (0..12)
            .map(|i| format!("1.{i}.0"))
            .chain(["latest".into()])
            .collect();
        let got = latest_tags(&list);
        assert_eq!(got.len(), LATEST_TAGS);
        assert_eq!(got[0], "latest", "'l' sorts above digits byte-wise");
        assert_eq!(got[1], "1.9.0", "byte-wise, not by version: 1.9.0 > 1.11.0");
        assert_eq!(got[2], "1.8.0");
        assert!(!got.contains(&"1.10.0".to_string()));
    }

    #[test]
    fn newest_is_the_highest_version_else_the_first_latest_tag() {
        assert_eq!(
            newest(&tags(&["1.9.0", "1.10.0", "latest", "1.2.0-rc.1"])).as_deref(),
            Some("1.10.0")
        );
        assert_eq!(newest(&tags(&["main", "dev"])).as_deref(), Some("main"));
        assert_eq!(newest(&[]), None);
    }

    #[test]
    fn revision_is_sha256_of_the_newline_joined_tags() {
        // printf '1.0.0\n1.1.0' | sha256sum
        assert_eq!(
            revision(&tags(&["1.0.0", "1.1.0"])),
            format!("sha256:{:x}", Sha256::digest(b"1.0.0\n1.1.0"))
        );
        assert_ne!(
            revision(&tags(&["1.0.0", "1.1.0"])),
            revision(&tags(&["1.1.0", "1.0.0"]))
        );
    }

    fn push(commit: &str, branch: &str) -> Push {
        Push {
            branch: branch.into(),
            commit: commit.into(),
            message: "Update from image update automation".into(),
            refspec: None,
        }
    }

    /// In review-branch mode (push branch ≠ checkout branch) there is no short-circuit
    /// record, so the full SHA can only come from the outcome's push: it used to fall back
    /// to the 7 hex digits of the outcome line.
    #[test]
    fn last_push_commit_is_the_full_sha_without_a_short_circuit_record() {
        let c = config();
        let mut store = Store::in_memory();
        let full = "0123456789abcdef0123456789abcdef01234567";
        let mut r = report(vec![(
            Kind::ImageUpdateAutomation,
            "fleet",
            Status::Ok("pushed commit 0123456 to review: a -> b".into()),
        )]);
        r.outcomes[0].push = Some(push(full, "review"));
        assert!(store.automation("apps/fleet").is_none());
        record(&c, &mut store, &r, 7);
        let a = automation(&c, &c.automations[&id("fleet")], &store);
        assert_eq!(a.last_push_commit.as_deref(), Some(full));
        assert_eq!(a.last_push_time, Some(rfc3339(7)));
        assert_eq!(
            a.conditions[0].message,
            "pushed commit 0123456 to review: a -> b"
        );

        // A success that pushed nothing keeps the last push and reads as up to date, even
        // when its line looks like a push.
        let r = report(vec![(
            Kind::ImageUpdateAutomation,
            "fleet",
            Status::Ok("pushed commit fffffff to main: nothing really".into()),
        )]);
        record(&c, &mut store, &r, 9);
        let a = automation(&c, &c.automations[&id("fleet")], &store);
        assert_eq!(a.last_push_commit.as_deref(), Some(full));
        assert_eq!(a.last_push_time, Some(rfc3339(7)));
        assert_eq!(a.conditions[0].message, "repository up-to-date");
    }

    #[test]
    fn nothing_known_yet_gives_the_canonical_name_and_no_conditions() {
        let c = config();
        let store = Store::in_memory();
        let s = repository(&c.repositories[&id("app")], &store);
        assert_eq!(
            s.canonical_image_name.as_deref(),
            Some("reg.example:5000/team/app")
        );
        assert!(s.last_scan_result.is_none());
        assert!(s.conditions.is_empty());
        let p = policy(&c.policies[&id("app")], &store);
        assert!(p.latest_ref.is_none() && p.conditions.is_empty());
        let rows = images(&c, &store);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].policy, "apps/app");
        assert_eq!(rows[0].latest, None);
        assert_eq!(rows[0].next_scan, None);
    }

    #[test]
    fn a_good_pass_then_a_failed_one_as_flux_reports_them() {
        let c = config();
        let mut store = Store::in_memory();
        let t0 = 1_767_225_600; // 2026-01-01T00:00:00Z
        store.set_scan(
            "apps/app",
            tags(&["1.0.0", "1.1.0", "2.0.0", "sha-abc"]),
            ScanRecord {
                time: t0,
                fingerprint: crate::automation::fingerprint(&c.repositories[&id("app")]),
                rate_limit: None,
            },
        );
        store.set_exclusion("apps/app", vec!["^sha-".into()]);
        store.set_latest("apps/app", r("1.0.0"));
        store.set_latest("apps/app", r("1.1.0"));
        let full = "1a2b3c4d5e6f708192a3b4c5d6e7f80910111213";
        store.set_automation(
            "apps/fleet",
            AutomationRecord {
                fingerprint: "x".into(),
                revision: full.into(),
                policies: BTreeMap::new(),
            },
        );
        let mut pass = report(vec![
            (
                Kind::ImageRepository,
                "app",
                Status::Ok("scanned 4 tags".into()),
            ),
            (Kind::ImagePolicy, "app", Status::Ok("latest is x".into())),
            (
                Kind::ImageUpdateAutomation,
                "fleet",
                Status::Ok("pushed commit 1a2b3c4 to main: a -> b".into()),
            ),
        ]);
        pass.latest_changes
            .insert(id("app"), (r("1.1.0"), Some(r("1.0.0"))));
        pass.outcomes[2].push = Some(push(full, "main"));
        record(&c, &mut store, &pass, t0);

        let s = repository(&c.repositories[&id("app")], &store);
        let scan = s.last_scan_result.as_ref().unwrap();
        assert_eq!(scan.tag_count, 4);
        assert_eq!(scan.scan_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            scan.latest_tags,
            tags(&["sha-abc", "2.0.0", "1.1.0", "1.0.0"])
        );
        assert_eq!(s.observed_exclusion_list, vec!["^sha-".to_string()]);
        assert_eq!(s.conditions[0].type_, "Ready");
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.conditions[0].reason, "Succeeded");
        assert!(s.conditions[0]
            .message
            .starts_with("successful scan: found 4 tags with checksum sha256:"));

        let p = policy(&c.policies[&id("app")], &store);
        assert_eq!(p.latest_ref.as_ref().unwrap().tag, "1.1.0");
        assert_eq!(p.observed_previous_ref.as_ref().unwrap().tag, "1.0.0");
        assert_eq!(
            p.conditions[0].message,
            "Latest image tag for reg.example:5000/team/app resolved to 1.1.0 (previously reg.example:5000/team/app:1.0.0)"
        );

        let a = automation(&c, &c.automations[&id("fleet")], &store);
        assert_eq!(
            a.last_push_commit.as_deref(),
            Some(full),
            "the full SHA of the push"
        );
        assert_eq!(a.last_push_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            a.last_automation_run_time.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(a.observed_policies["app"].tag, "1.1.0");
        assert_eq!(
            a.observed_source_revision.as_deref(),
            Some(format!("main@sha1:{full}").as_str())
        );
        assert_eq!(
            a.conditions[0].message,
            "pushed commit 1a2b3c4 to main: a -> b"
        );

        // JSON names are Flux's.
        let doc = serde_json::to_value(document(&c, &store)).unwrap();
        let kinds: Vec<_> = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"]
        );
        assert_eq!(doc["items"][0]["apiVersion"], API_VERSION);
        assert_eq!(doc["items"][0]["status"]["lastScanResult"]["tagCount"], 4);
        assert_eq!(
            doc["items"][0]["status"]["canonicalImageName"],
            "reg.example:5000/team/app"
        );
        assert_eq!(
            doc["items"][0]["status"]["observedExclusionList"][0],
            "^sha-"
        );
        assert_eq!(doc["items"][1]["status"]["latestRef"]["tag"], "1.1.0");
        assert_eq!(
            doc["items"][1]["status"]["observedPreviousRef"]["tag"],
            "1.0.0"
        );
        assert_eq!(doc["items"][2]["status"]["lastPushCommit"], full);
        assert!(doc["items"][2]["status"]["observedPolicies"]["app"].is_object());
        assert_eq!(
            doc["items"][2]["status"]["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );

        // A later pass: the scan fails, the policy keeps its latest, the push is refused.
        let t1 = t0 + 600;
        record(
            &c,
            &mut store,
            &report(vec![
                (
                    Kind::ImageRepository,
                    "app",
                    Status::Failed("listing tags: 503".into()),
                ),
                (Kind::ImagePolicy, "app", Status::Ok("latest is x".into())),
                (
                    Kind::ImageUpdateAutomation,
                    "fleet",
                    Status::Failed("push to main: rejected".into()),
                ),
            ]),
            t1,
        );
        let s = repository(&c.repositories[&id("app")], &store);
        assert_eq!(s.conditions[0].status, "False");
        assert_eq!(s.conditions[0].reason, "ReadOperationFailed");
        assert_eq!(s.conditions[0].last_transition_time, rfc3339(t1));
        assert_eq!(
            s.last_scan_result.unwrap().tag_count,
            4,
            "the last good list stays"
        );
        let p = policy(&c.policies[&id("app")], &store);
        assert_eq!(
            p.conditions[0].last_transition_time,
            rfc3339(t0),
            "still True since t0"
        );
        assert!(!p.conditions[0].message.contains("previously"));
        let a = automation(&c, &c.automations[&id("fleet")], &store);
        assert_eq!(a.conditions[0].reason, "GitOperationFailed");
        assert_eq!(a.last_automation_run_time, Some(rfc3339(t1)));
        assert_eq!(
            a.last_push_time,
            Some(rfc3339(t0)),
            "a failed run pushes nothing"
        );

        let row = &images(&c, &store)[0];
        assert_eq!(row.in_git.as_deref(), Some("1.1.0"));
        assert_eq!(row.latest.as_deref(), Some("1.1.0"));
        assert_eq!(row.newest.as_deref(), Some("2.0.0"));
        assert_eq!(row.last_scan, Some(rfc3339(t0)));
        // 5m less the repository's fixed jitter (at most 5%), as the service schedules it.
        let next = row
            .next_scan
            .as_deref()
            .map(|t| DateTime::parse_from_rfc3339(t).unwrap().timestamp() as u64 - t0);
        assert!(matches!(next, Some(285..=299)), "{next:?}");
        assert_eq!(
            next,
            Some(
                crate::automation::period(
                    Kind::ImageRepository,
                    &id("app"),
                    std::time::Duration::from_secs(300)
                )
                .as_secs()
            )
        );

        // A configuration changed since the scan: it is due at once.
        let mut stale = store.scan("apps/app").unwrap().clone();
        stale.fingerprint = "before the edit".into();
        store.set_scan("apps/app", tags(&["1.0.0"]), stale);
        assert_eq!(images(&c, &store)[0].next_scan, Some(rfc3339(t0)));
        assert_eq!(
            row.last_error.as_deref(),
            Some("ImageRepository apps/app: listing tags: 503")
        );
    }

    #[test]
    fn failure_reasons_follow_fluxs_names() {
        let c = config();
        let mut store = Store::in_memory();
        // The reasons come with the outcomes, whatever their text says.
        let failed = |kind, name: &str, reason| {
            Outcome::failure(kind, &id(name), Failure::new(reason, "it broke"))
        };
        let pass = Report {
            outcomes: vec![
                failed(Kind::ImageRepository, "app", Reason::AuthenticationFailed),
                failed(Kind::ImagePolicy, "app", Reason::DependencyNotReady),
                failed(
                    Kind::ImageUpdateAutomation,
                    "fleet",
                    Reason::SourceManagerFailed,
                ),
            ],
            ..Report::default()
        };
        record(&c, &mut store, &pass, 5);
        assert_eq!(
            repository(&c.repositories[&id("app")], &store).conditions[0].reason,
            "AuthenticationFailed"
        );
        assert_eq!(
            policy(&c.policies[&id("app")], &store).conditions[0].reason,
            "DependencyNotReady"
        );
        let a = automation(&c, &c.automations[&id("fleet")], &store);
        assert_eq!(a.conditions[0].reason, "SourceManagerFailed");
        assert_eq!(a.conditions[0].message, "it broke");
        assert!(
            a.observed_policies.is_empty(),
            "a failed run observes nothing"
        );

        // State written before reasons were kept: each kind's usual failure reason.
        let mut old = store
            .outcome("ImageUpdateAutomation/apps/fleet")
            .unwrap()
            .clone();
        old.reason = None;
        store.set_outcome("ImageUpdateAutomation/apps/fleet", old);
        let a = automation(&c, &c.automations[&id("fleet")], &store);
        assert_eq!(a.conditions[0].reason, "GitOperationFailed");
    }

    #[test]
    fn a_suspended_object_keeps_its_last_outcome() {
        let c = config();
        let mut store = Store::in_memory();
        record(
            &c,
            &mut store,
            &report(vec![(
                Kind::ImagePolicy,
                "app",
                Status::Failed("no tag matched".into()),
            )]),
            5,
        );
        record(
            &c,
            &mut store,
            &report(vec![(
                Kind::ImagePolicy,
                "app",
                Status::Skipped("suspended".into()),
            )]),
            9,
        );
        let p = policy(&c.policies[&id("app")], &store);
        assert_eq!(p.conditions[0].reason, "Failure");
        assert_eq!(p.conditions[0].message, "no tag matched");
    }
}
