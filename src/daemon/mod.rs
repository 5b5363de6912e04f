//! The long-running service behind `tagline run` without `--once`: a `Daemon` that loads the
//! config, reconciles on schedule, re-reads the config on request or when its files change
//! (keeping the last good one when an edit is broken), and publishes status for HTTP.
//!
//! IO stays thin: the caller owns the clock, the signals and the printing; `tick(now)` runs
//! one pass when one is due and returns its report.

pub mod gate;
pub mod http;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use crate::api::{self, Config};
use crate::automation::{self, Options, Report};
use crate::schedule::Interval;
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
    /// The config folder could not be loaded; each problem names its file.
    #[error("loading the config folder {dir}: {problems}")]
    LoadConfig { dir: PathBuf, problems: String },
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

fn load(dir: &Path) -> Result<Config, DaemonError> {
    api::load_dir(dir).map_err(|e| DaemonError::LoadConfig {
        dir: dir.to_path_buf(),
        problems: e
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// The shortest interval among the objects that have one: one pass serves them all.
pub fn pass_interval(config: &Config) -> Duration {
    config
        .repositories
        .values()
        .map(|r| r.interval)
        .chain(config.automations.values().map(|a| a.interval))
        .min()
        .unwrap_or(DEFAULT_INTERVAL)
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
}

/// The schedules of a config whose automations carry none.
fn no_schedules(_: &Config) -> Schedules {
    Schedules::new()
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
        })
    }

    /// Sets how each load derives the automations' schedules (commit windows, debounce)
    /// from the config, and applies it to the config in force.
    pub fn with_schedules(mut self, schedules_of: fn(&Config) -> Schedules) -> Daemon {
        self.schedules_of = schedules_of;
        self.gate.set_schedules(schedules_of(&self.config));
        self
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
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
    /// pass is due at once; on failure the last good config stays in force and the error
    /// names the problems. Either way the current files count as seen, so a broken edit is
    /// reported once, not on every poll.
    pub fn reload(&mut self) -> Result<(), DaemonError> {
        self.seen = fingerprint(&self.dir);
        let config = load(&self.dir)?;
        self.gate.set_schedules((self.schedules_of)(&config));
        self.config = config;
        self.next_due = None;
        Ok(())
    }

    /// When the next pass is due (`None`: at once).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.next_due
    }

    /// Whether a pass is due at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_due.is_none_or(|t| t <= now)
    }

    /// Runs one pass if one is due at `now`: reconciles every object, saves the store,
    /// records the outcomes on the board and sets the next due time. Returns the report, or
    /// `None` when nothing was due. A failed save is reported after the board is updated.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Option<Result<Report, DaemonError>> {
        if !self.due(now) {
            return None;
        }
        let started = Instant::now();
        let options = Options {
            now: Some(SystemTime::from(now)),
            ..Options::default()
        };
        let before = gate::latest_refs(&self.config, &self.store);
        let (admitted, held) = self.gate.admit(&self.config, now);
        let mut report = automation::reconcile(&admitted, &mut self.store, &options).await;
        let took = started.elapsed();
        let after = gate::latest_refs(&self.config, &self.store);
        let ran: Vec<_> = admitted.automations.keys().cloned().collect();
        self.gate.record(&self.config, &before, &after, &ran, now);
        report.outcomes.extend(held);
        report
            .outcomes
            .sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        let interval = Interval::new(pass_interval(&self.config), "pass", 0.0);
        let next = interval.next_after(now);
        self.next_due = Some(match self.gate.next_wake(now) {
            Some(wake) => next.min(wake),
            None => next,
        });
        if let Ok(mut board) = self.board.lock() {
            board.record(&report, now, took);
            board.set_document(crate::status::document(&self.config, &self.store));
        }
        Some(match self.store.save() {
            Ok(()) => Ok(report),
            Err(e) => Err(DaemonError::SaveState(e)),
        })
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
        assert_eq!(pass_interval(d.config()), Duration::from_secs(30));
    }

    #[test]
    fn the_first_load_must_succeed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.yaml"), "kind: [").unwrap();
        let e = Daemon::new(dir.path(), Store::in_memory()).err().unwrap();
        assert!(e.to_string().contains("x.yaml"), "{e}");
    }

    #[tokio::test]
    async fn passes_run_when_due_and_fill_the_board() {
        let dir = tempfile::tempdir().unwrap();
        // Suspended: the pass reconciles without touching the network.
        std::fs::write(
            dir.path().join("repo.yaml"),
            REPO.replace("interval: 5m", "interval: 5m\n  suspend: true"),
        )
        .unwrap();
        let mut d = Daemon::new(dir.path(), Store::in_memory()).unwrap();
        let t0: DateTime<Utc> = "2026-01-01T00:01:00Z".parse().unwrap();
        assert!(!d.board().lock().unwrap().ready());
        let report = d.tick(t0).await.unwrap().unwrap();
        assert_eq!(report.outcomes.len(), 1);
        assert_eq!(d.next_due(), Some("2026-01-01T00:05:00Z".parse().unwrap()));
        assert!(d
            .tick("2026-01-01T00:04:59Z".parse().unwrap())
            .await
            .is_none());
        assert!(d
            .tick("2026-01-01T00:05:00Z".parse().unwrap())
            .await
            .is_some());
        let board = d.board();
        let board = board.lock().unwrap();
        assert!(board.ready());
        assert_eq!(board.passes(), 2);
    }
}
