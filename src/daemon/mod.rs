//! The long-running service behind `tagline run` without `--once`: a `Daemon` that loads the
//! config, reconciles on schedule, re-reads the config on request or when its files change
//! (keeping the last good one when an edit is broken), and publishes status for HTTP.
//!
//! IO stays thin: the caller owns the clock, the signals and the printing; `tick(now)` runs
//! one pass when one is due and returns its report.

pub mod gate;
pub mod hook;
pub mod http;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use crate::api::{self, Config, Kind, NamespacedName};
use crate::automation::{self, Options, Report, Selection};
use crate::store::{Store, StoreError};

pub use gate::{Gate, Schedules};
pub use status::Board;

/// How often the config folder's files are checked for changes.
pub const CONFIG_POLL: Duration = Duration::from_secs(1);

/// The interval used when the config has no object with one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Why the daemon could not do something.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config folder could not be loaded; each problem names its file (and its object,
    /// when known).
    #[error("loading the config folder {dir}: {}", joined(problems))]
    LoadConfig {
        dir: PathBuf,
        problems: Vec<api::Problem>,
    },
    /// The store could not be saved after a pass.
    #[error("saving the state after a pass: {0}")]
    SaveState(#[from] StoreError),
}

/// A snapshot of the config folder's files (path, size, modification time): cheap to take,
/// and different whenever an editor saves a file.
pub type Fingerprint = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

/// Takes the fingerprint of every file under `dir` (unreadable entries are skipped).
pub fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Fingerprint::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(path, (meta.len(), meta.modified().ok()));
            }
        }
    }
    out
}

fn joined(problems: &[api::Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn load(dir: &Path) -> Result<Config, DaemonError> {
    api::load_dir(dir).map_err(|e| DaemonError::LoadConfig {
        dir: dir.to_path_buf(),
        problems: e.problems,
    })
}

/// The first retry after a failed scan; each further failure doubles it, up to the
/// repository's interval.
pub const RETRY_FIRST: Duration = Duration::from_secs(10);

/// The shortest wait between two passes the schedule asks for (a webhook's trigger does
/// not wait).
pub const MIN_WAIT: Duration = Duration::from_secs(1);

/// What the service remembers of an automation between passes.
#[derive(Debug, Clone)]
struct AutomationRun {
    /// When it last ran.
    at: DateTime<Utc>,
    /// The latest references of its policies it ran with.
    setters: crate::writer::Setters,
}

/// A repository whose last scan failed: when to try again, and how many failures in a row.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    retry_at: DateTime<Utc>,
    failures: u32,
}

/// The service's state between passes.
pub struct Daemon {
    dir: PathBuf,
    config: Config,
    seen: Fingerprint,
    store: Store,
    board: Arc<Mutex<Board>>,
    next_due: Option<DateTime<Utc>>,
    gate: Gate,
    schedules_of: fn(&Config) -> Schedules,
    /// Everything is reconciled on the next pass (the first, and after a reload).
    everything: bool,
    /// Repositories to scan on the next pass even if fresh (webhooks).
    forced: BTreeSet<NamespacedName>,
    backoff: BTreeMap<NamespacedName, Backoff>,
    runs: BTreeMap<NamespacedName, AutomationRun>,
    /// When each policy was last evaluated (policies reflecting digests `Always` are
    /// evaluated again on their own interval).
    evaluated: BTreeMap<NamespacedName, DateTime<Utc>>,
    /// The options every pass starts from (its time and selection are the pass's own).
    base: Options,
    notifier: crate::notify::Notifier,
}

/// The schedules of a config whose automations carry none.
fn no_schedules(_: &Config) -> Schedules {
    Schedules::new()
}

fn at_secs(secs: u64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

impl Daemon {
    /// Loads the config folder; the first load must succeed.
    pub fn new(dir: &Path, store: Store) -> Result<Daemon, DaemonError> {
        let seen = fingerprint(dir);
        let config = load(dir)?;
        Ok(Daemon {
            dir: dir.to_path_buf(),
            config,
            seen,
            store,
            board: Arc::new(Mutex::new(Board::default())),
            next_due: None,
            gate: Gate::default(),
            schedules_of: no_schedules,
            everything: true,
            forced: BTreeSet::new(),
            backoff: BTreeMap::new(),
            runs: BTreeMap::new(),
            evaluated: BTreeMap::new(),
            base: Options::default(),
            notifier: crate::notify::Notifier::new(),
        })
    }

    /// Sets how each load derives the automations' schedules (commit windows, debounce)
    /// from the config, and applies it to the config in force.
    pub fn with_schedules(mut self, schedules_of: fn(&Config) -> Schedules) -> Daemon {
        self.schedules_of = schedules_of;
        self.gate.set_schedules(schedules_of(&self.config));
        self
    }

    /// Sets the options every pass starts from (registry manners, ...); each pass sets its
    /// own time and selection.
    pub fn with_options(mut self, base: Options) -> Daemon {
        self.base = base;
        self
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The status board the HTTP endpoints read.
    pub fn board(&self) -> Arc<Mutex<Board>> {
        Arc::clone(&self.board)
    }

    /// Whether the config folder's files changed since the last (attempted) load.
    pub fn config_changed(&self) -> bool {
        fingerprint(&self.dir) != self.seen
    }

    /// Reads the config folder again. On success the new config is in force and the next
    /// pass, due at once, reconciles everything; on failure the last good config stays in
    /// force and the error names the problems. Either way the current files count as seen,
    /// so a broken edit is reported once, not on every poll.
    pub fn reload(&mut self) -> Result<(), DaemonError> {
        self.seen = fingerprint(&self.dir);
        let config = load(&self.dir)?;
        self.gate.set_schedules((self.schedules_of)(&config));
        self.config = config;
        self.everything = true;
        self.next_due = None;
        Ok(())
    }

    /// Asks for an immediate scan of these ImageRepositories (a registry webhook named
    /// them), fresh or not; the automations reading them follow in the same pass when a
    /// policy's latest moves. Names the config does not hold are ignored, and returned.
    pub fn trigger(&mut self, repositories: &[NamespacedName]) -> Vec<NamespacedName> {
        let mut unknown = Vec::new();
        for id in repositories {
            if self.config.repositories.contains_key(id) {
                self.forced.insert(id.clone());
                self.backoff.remove(id);
                self.next_due = None;
            } else {
                unknown.push(id.clone());
            }
        }
        unknown
    }

    /// When the next pass is due (`None`: at once).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.next_due
    }

    /// Whether a pass is due at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_due.is_none_or(|t| t <= now)
    }

    /// The repositories due for a scan at `now`: stale (or never scanned), not backing off
    /// after a failure, or forced.
    fn repositories_due(&self, now: DateTime<Utc>) -> BTreeSet<NamespacedName> {
        self.config
            .repositories
            .values()
            .filter(|r| !r.suspend)
            .filter(|r| {
                self.forced.contains(&r.id)
                    || match self.backoff.get(&r.id) {
                        Some(b) => b.retry_at <= now,
                        None => automation::scan_due(r, &self.store)
                            .is_none_or(|due| at_secs(due) <= now),
                    }
            })
            .map(|r| r.id.clone())
            .collect()
    }

    /// The policies that look a digest up on their own interval (`digestReflectionPolicy:
    /// Always`), with when they are next due.
    fn policy_due_times(&self) -> impl Iterator<Item = (&NamespacedName, Option<DateTime<Utc>>)> {
        self.config
            .policies
            .values()
            .filter(|p| !p.suspend)
            .filter_map(|p| Some((&p.id, p.interval?)))
            .map(|(id, interval)| {
                let period = automation::period(Kind::ImagePolicy, id, interval);
                (id, self.evaluated.get(id).map(|t| after(*t, period)))
            })
    }

    /// Whether an automation is due at `now`: its interval elapsed since it last ran, or a
    /// policy it reads has a new latest reference since.
    fn automation_due(&self, id: &NamespacedName, now: DateTime<Utc>) -> bool {
        let Some(a) = self.config.automations.get(id) else {
            return false;
        };
        let Some(run) = self.runs.get(id) else {
            return true;
        };
        let period = automation::period(Kind::ImageUpdateAutomation, id, a.interval);
        after(run.at, period) <= now
            || automation::setters(&self.config, a, &self.store) != run.setters
    }

    /// Runs one pass if one is due at `now`: scans the repositories that are due, evaluates
    /// the policies that read them, runs the automations that are due and admitted by their
    /// schedules, saves the store, records the outcomes on the board and sets the next due
    /// time. Returns the report (only the objects reconciled in this pass), or `None` when
    /// nothing was due. A failed save is reported after the board is updated.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Option<Result<Report, DaemonError>> {
        if !self.due(now) {
            return None;
        }
        let started = Instant::now();
        let everything = std::mem::take(&mut self.everything);
        let repositories = self.repositories_due(now);
        let options = Options {
            now: Some(SystemTime::from(now)),
            selection: Selection {
                repositories: (!everything).then(|| repositories.clone()),
                force: std::mem::take(&mut self.forced),
                policies: (!everything).then(|| {
                    self.policy_due_times()
                        .filter(|(_, due)| due.is_none_or(|t| t <= now))
                        .map(|(id, _)| id.clone())
                        .collect()
                }),
            },
            ..self.base.clone()
        };
        let before = gate::latest_refs(&self.config, &self.store);
        let mut report = automation::refresh(&self.config, &mut self.store, &options).await;
        for o in report
            .outcomes
            .iter()
            .filter(|o| o.kind == Kind::ImagePolicy)
        {
            self.evaluated.insert(o.id.clone(), now);
        }
        for o in report
            .outcomes
            .iter()
            .filter(|o| o.kind == Kind::ImageRepository)
        {
            if o.failed() {
                let failures = self.backoff.get(&o.id).map_or(1, |b| b.failures + 1);
                let interval = self.config.repositories[&o.id].interval;
                let wait = RETRY_FIRST
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(interval);
                self.backoff.insert(
                    o.id.clone(),
                    Backoff {
                        retry_at: after(now, wait),
                        failures,
                    },
                );
            } else {
                self.backoff.remove(&o.id);
            }
        }

        // The automations due now, less those their commit window or debounce holds back.
        let mut due = self.config.clone();
        due.automations.retain(|_, a| !a.suspend || everything);
        let ids: Vec<_> = due.automations.keys().cloned().collect();
        for id in ids {
            if !everything && !self.automation_due(&id, now) {
                due.automations.remove(&id);
            }
        }
        let (admitted, held) = self.gate.admit(&due, now);
        let setters: BTreeMap<_, _> = admitted
            .automations
            .values()
            .map(|a| {
                (
                    a.id.clone(),
                    automation::setters(&self.config, a, &self.store),
                )
            })
            .collect();
        automation::run_automations(&admitted, &mut self.store, &options, &mut report).await;
        automation::record_status(&self.config, &mut self.store, &options, &report);
        for (id, setters) in setters {
            self.runs.insert(id, AutomationRun { at: now, setters });
        }
        let took = started.elapsed();
        let after_refs = gate::latest_refs(&self.config, &self.store);
        let ran: Vec<_> = admitted.automations.keys().cloned().collect();
        self.gate
            .record(&self.config, &before, &after_refs, &ran, now);
        report.outcomes.extend(held.iter().cloned());
        report
            .outcomes
            .sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        self.next_due = Some(self.next_wake(now, &held));
        if let Ok(mut board) = self.board.lock() {
            board.record(&report, now, took);
            board.set_document(crate::status::document(&self.config, &self.store));
        }
        // Alerts go out in the background: a slow Provider never holds the next pass.
        let deliveries = self
            .notifier
            .prepare_stored(&self.config, &report, now, &mut self.store);
        if !deliveries.is_empty() {
            tokio::spawn(async move {
                for e in crate::notify::deliver_all(deliveries).await {
                    let (kind, id) = e.object();
                    let (namespace, name) = (id.namespace.as_str(), id.name.as_str());
                    tracing::warn!(kind, namespace, name, error = %e, "notification not sent");
                }
            });
        }
        Some(match self.store.save() {
            Ok(()) => Ok(report),
            Err(e) => Err(DaemonError::SaveState(e)),
        })
    }

    /// The earliest time after `now` at which some object is due: a repository's scan goes
    /// stale or its retry comes, an automation's interval elapses, a held automation's
    /// window opens or its debounce fires.
    fn next_wake(&self, now: DateTime<Utc>, held: &[automation::Outcome]) -> DateTime<Utc> {
        let mut next = after(now, DEFAULT_INTERVAL.max(Duration::from_secs(3600)));
        for r in self.config.repositories.values().filter(|r| !r.suspend) {
            let t = match self.backoff.get(&r.id) {
                Some(b) => b.retry_at,
                None => match automation::scan_due(r, &self.store) {
                    Some(due) => at_secs(due),
                    None => after(now, r.interval),
                },
            };
            next = next.min(t);
        }
        for (_, due) in self.policy_due_times() {
            next = next.min(due.unwrap_or(now));
        }
        let held_ids: BTreeSet<_> = held.iter().map(|o| &o.id).collect();
        for a in self.config.automations.values() {
            if a.suspend || held_ids.contains(&a.id) {
                continue;
            }
            let t = match self.runs.get(&a.id) {
                Some(run) => after(
                    run.at,
                    automation::period(Kind::ImageUpdateAutomation, &a.id, a.interval),
                ),
                None => now,
            };
            next = next.min(t);
        }
        for o in held {
            if let Some(t) = self.gate.opens_at(&o.id, now) {
                next = next.min(t);
            }
        }
        if let Some(wake) = self.gate.next_wake(now) {
            next = next.min(wake);
        }
        // A floor, so that an object the pass could not settle never makes the loop spin.
        next.max(after(now, MIN_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  namespace: default
spec:
  image: 127.0.0.1:9/app
  interval: 5m
";

    #[test]
    fn a_broken_edit_keeps_the_last_good_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("repo.yaml");
        std::fs::write(&file, REPO).unwrap();
        let mut d = Daemon::new(dir.path(), Store::in_memory()).unwrap();
        assert_eq!(d.config().repositories.len(), 1);
        assert!(!d.config_changed());

        std::fs::write(&file, "kind: ImageRepository\nspec: [unclosed\n").unwrap();
        assert!(d.config_changed());
        let e = d.reload().unwrap_err().to_string();
        assert!(e.contains("repo.yaml"), "{e}");
        assert_eq!(d.config().repositories.len(), 1, "old config stays");
        assert!(!d.config_changed(), "a broken edit is reported once");

        std::fs::write(&file, REPO.replace("5m", "30s")).unwrap();
        std::fs::write(
            dir.path().join("two.yaml"),
            REPO.replace("name: app", "name: other"),
        )
        .unwrap();
        assert!(d.config_changed());
        d.reload().unwrap();
        assert_eq!(d.config().repositories.len(), 2);
        assert_eq!(
            d.config().repositories.values().map(|r| r.interval).min(),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn the_first_load_must_succeed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.yaml"), "kind: [").unwrap();
        let e = Daemon::new(dir.path(), Store::in_memory()).err().unwrap();
        assert!(e.to_string().contains("x.yaml"), "{e}");
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_suspended_config_waits_an_hour_between_passes() {
        let dir = tempfile::tempdir().unwrap();
        // Suspended: the pass reconciles without touching the network.
        std::fs::write(
            dir.path().join("repo.yaml"),
            REPO.replace("interval: 5m", "interval: 5m\n  suspend: true"),
        )
        .unwrap();
        let mut d = Daemon::new(dir.path(), Store::in_memory()).unwrap();
        let t0 = at("2026-01-01T00:01:00Z");
        assert!(!d.board().lock().unwrap().ready());
        let report = d.tick(t0).await.unwrap().unwrap();
        assert_eq!(
            report.outcomes.len(),
            1,
            "the suspended repository is reported once"
        );
        assert_eq!(d.next_due(), Some(at("2026-01-01T01:01:00Z")));
        assert!(d.tick(at("2026-01-01T01:00:59Z")).await.is_none());
        let report = d.tick(at("2026-01-01T01:01:00Z")).await.unwrap().unwrap();
        assert!(report.outcomes.is_empty(), "{:?}", report.outcomes);
        let board = d.board();
        let board = board.lock().unwrap();
        assert!(board.ready());
        assert_eq!(board.passes(), 2);
    }

    #[tokio::test]
    async fn a_failing_scan_backs_off_and_a_trigger_scans_at_once() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens on port 9: every scan fails (within its one-second timeout).
        std::fs::write(
            dir.path().join("repo.yaml"),
            REPO.replace("interval: 5m", "interval: 2m\n  timeout: 1s"),
        )
        .unwrap();
        let mut d = Daemon::new(dir.path(), Store::in_memory()).unwrap();
        let mut t = at("2026-01-01T00:00:00Z");
        let mut waits = Vec::new();
        for _ in 0..5 {
            let report = d.tick(t).await.unwrap().unwrap();
            assert_eq!(report.outcomes.len(), 1);
            assert!(report.outcomes[0].failed(), "{}", report.outcomes[0]);
            let next = d.next_due().unwrap();
            waits.push((next - t).num_seconds());
            t = next;
        }
        // 10 s, doubling, never beyond the interval.
        assert_eq!(waits, [10, 20, 40, 80, 120]);

        let half = t - chrono::TimeDelta::seconds(60);
        assert!(d.tick(half).await.is_none(), "not due yet");
        let unknown = NamespacedName::new("default", "nope");
        let left = d.trigger(&[NamespacedName::new("default", "app"), unknown.clone()]);
        assert_eq!(left, [unknown]);
        assert!(d.due(half));
        let report = d.tick(half).await.unwrap().unwrap();
        assert_eq!(
            report.outcomes.len(),
            1,
            "the triggered repository is scanned"
        );
        assert_eq!(
            (d.next_due().unwrap() - half).num_seconds(),
            10,
            "a trigger starts the backoff again"
        );
    }

    /// `tagline status`'s NEXT SCAN is when the service really scans: the interval less the
    /// repository's jitter after the stored scan, not the plain interval.
    #[tokio::test]
    async fn next_scan_in_the_status_is_when_the_service_scans() {
        let dir = tempfile::tempdir().unwrap();
        let policy = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
  namespace: default
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: '>=1.0.0'
";
        std::fs::write(
            dir.path().join("objects.yaml"),
            format!("{}---\n{policy}", REPO.replace("5m", "1h")),
        )
        .unwrap();
        let config = api::load_dir(dir.path()).unwrap();
        let repo = config.repositories.values().next().unwrap();
        let t0 = at("2026-01-01T00:00:00Z");
        let mut store = Store::in_memory();
        store.set_scan(
            "default/app",
            vec!["1.0.0".into()],
            crate::store::ScanRecord {
                time: t0.timestamp() as u64,
                fingerprint: automation::fingerprint(repo),
                rate_limit: None,
            },
        );
        let mut d = Daemon::new(dir.path(), store).unwrap();
        // Fresh: nothing is scanned (nothing listens on port 9); the next pass is the scan.
        let report = d.tick(t0).await.unwrap().unwrap();
        assert!(!report.failed(), "{:?}", report.outcomes);
        let due = d.next_due().unwrap();
        assert!(due < t0 + chrono::TimeDelta::hours(1), "jittered: {due}");
        assert!(
            due >= t0 + chrono::TimeDelta::minutes(57),
            "at most 5%: {due}"
        );
        assert!(d.tick(due - chrono::TimeDelta::seconds(1)).await.is_none());
        let rows = crate::status::images(d.config(), d.store());
        assert_eq!(
            rows[0].next_scan.as_deref(),
            Some(
                due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    .as_str()
            )
        );
    }

    #[tokio::test]
    async fn a_policy_reflecting_digests_always_is_evaluated_on_its_own_interval() {
        let dir = tempfile::tempdir().unwrap();
        let policy = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
  namespace: default
spec:
  imageRepositoryRef:
    name: app
  digestReflectionPolicy: Always
  interval: 10m
  policy:
    semver:
      range: '>=1.0.0'
";
        std::fs::write(
            dir.path().join("objects.yaml"),
            format!(
                "{}---\n{policy}",
                REPO.replace("interval: 5m", "interval: 5m\n  suspend: true")
            ),
        )
        .unwrap();
        let mut d = Daemon::new(dir.path(), Store::in_memory()).unwrap();
        let t0 = at("2026-01-01T00:00:00Z");
        let report = d.tick(t0).await.unwrap().unwrap();
        assert_eq!(report.outcomes.len(), 2, "{:?}", report.outcomes);
        let next = d.next_due().unwrap();
        let wait = (next - t0).num_seconds();
        assert!(
            (570..=600).contains(&wait),
            "due after its 10m less jitter: {wait}s"
        );
        let report = d.tick(next).await.unwrap().unwrap();
        let kinds: Vec<_> = report.outcomes.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [Kind::ImagePolicy], "only the policy is due");
        assert_eq!(d.next_due(), Some(next + (next - t0)));
    }
}
