//! Embedded state that survives restarts: each repository's last good tag list and each
//! policy's latest reference, and what Flux's status fields need (previous references, the
//! exclusion list a scan used, automation runs and pushes, each object's last outcome). One JSON document in the state directory, replaced atomically
//! (write to a temp file in the same directory, fsync, rename), so a crash leaves either the old
//! or the new state, never a torn one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::image::ImageRef;

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// A save writes `state.json.<random>.tmp` first (locked while it is written) and renames it
/// over the state file; one left by a killed save is removed when the store is next opened.
const TEMP_PREFIX: &str = "state.json.";
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is one of the temporary files a save writes.
fn is_temp_name(name: &str) -> bool {
    name.len() > TEMP_PREFIX.len() + TEMP_SUFFIX.len()
        && name.starts_with(TEMP_PREFIX)
        && name.ends_with(TEMP_SUFFIX)
}

/// Removes the temporary files of saves that were killed before their rename: files in
/// `dir` with a save's temp name that no live save holds locked (a save in another process
/// sharing the directory, e.g. `tagline status` next to the service, keeps its own). Best
/// effort: a file that cannot be checked or removed stays.
fn remove_stale_temps(dir: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) || !entry.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        let path = entry.path();
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        // SAFETY: flock on a descriptor this function owns; released when `file` closes.
        let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// `namespace/name` of an ImageRepository → its last complete tag list.
    #[serde(default)]
    tags: BTreeMap<String, TagList>,
    /// `namespace/name` of an ImagePolicy → its latest reference.
    #[serde(default)]
    latest: BTreeMap<String, ImageRef>,
    /// `namespace/name` of an ImageRepository → when and with what configuration it was last
    /// scanned successfully.
    #[serde(default)]
    scans: BTreeMap<String, ScanRecord>,
    /// `namespace/name` of an ImageUpdateAutomation → what its last successful run saw.
    #[serde(default)]
    automations: BTreeMap<String, AutomationRecord>,
    /// `namespace/name` of an ImagePolicy → the latest reference before the current one
    /// (Flux's `observedPreviousRef`).
    #[serde(default)]
    previous: BTreeMap<String, ImageRef>,
    /// `namespace/name` of an ImageRepository → the exclusion list its last successful scan
    /// used (Flux's `observedExclusionList`).
    #[serde(default)]
    exclusions: BTreeMap<String, Vec<String>>,
    /// `namespace/name` of an ImageUpdateAutomation → its runs and pushes.
    #[serde(default)]
    runs: BTreeMap<String, RunRecord>,
    /// `<Kind>/<namespace>/<name>` → the object's last outcome.
    #[serde(default)]
    outcomes: BTreeMap<String, OutcomeRecord>,
    /// `<Kind>/<namespace>/<name>` of the objects whose last notification event was a
    /// failure: their next success is sent as a recovery, also after a restart.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    notify_failing: BTreeSet<String>,
}

/// An automation's runs: Flux's `lastAutomationRunTime`, `lastPushCommit`, `lastPushTime`,
/// `observedPolicies`, and what the last successful run left at the markers in Git.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When the last run started (seconds since the Unix epoch), whatever its result.
    #[serde(default)]
    pub time: u64,
    /// The last pushed commit (the full SHA where the run reported it, else its short form).
    #[serde(default)]
    pub push_commit: Option<String>,
    /// When the last push happened (seconds since the Unix epoch).
    #[serde(default)]
    pub push_time: Option<u64>,
    /// Policy `ns:name` → the reference the last successful run applied: the value the
    /// policy's markers hold in Git after it.
    #[serde(default)]
    pub policies: BTreeMap<String, ImageRef>,
}

/// An object's last outcome, as the pipeline reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// `ok`, `skipped` or `failed`.
    pub result: String,
    pub message: String,
    /// Flux's Ready reason (`Succeeded`, `ReadOperationFailed`, ...); none in state written
    /// before reasons were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Flux's Ready message for a success, when it is not the outcome's own message (a
    /// policy's `Latest image tag for ...`, an automation's `repository up-to-date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_message: Option<String>,
    /// When (seconds since the Unix epoch).
    pub time: u64,
    /// When the result (ok / failed / skipped) last changed: Flux's `lastTransitionTime`.
    #[serde(default)]
    pub since: u64,
}

/// What an automation's last successful run saw (Flux's `observedSourceRevision` and
/// `observedPolicies`): when neither the branch nor any policy moved since, there is nothing
/// to do and no clone is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationRecord {
    /// The automation's configuration it ran with (no secrets).
    pub fingerprint: String,
    /// The branch's commit after the run.
    pub revision: String,
    /// Policy `ns:name` → the latest reference applied.
    pub policies: BTreeMap<String, ImageRef>,
}

/// The last successful scan of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// What the scan depended on (image, exclusions, Secret names; never Secret contents): a
    /// changed configuration makes the record stale at once.
    pub fingerprint: String,
    /// The registry's rate-limit headers on the scan's last response that carried them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Quota>,
}

/// A registry's request quota as its rate-limit headers told it (`RateLimit-Limit`,
/// `RateLimit-Remaining`, or Docker Hub's and the `X-RateLimit-*` spellings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}

/// A tag list held compactly: every tag's bytes in one buffer, and where each one ends (a
/// tag list as `Vec<String>` costs some 56 bytes per tag in allocations, this one about 10
/// for a tag like `1.2.3`). In the state file, a JSON array of strings, as before.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct TagList {
    bytes: String,
    ends: Vec<u32>,
}

impl TagList {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&e| e as usize));
        starts
            .zip(self.ends.iter())
            .map(|(start, &end)| &self.bytes[start..end as usize])
    }

    fn push(&mut self, tag: &str) {
        self.bytes.push_str(tag);
        let end = u32::try_from(self.bytes.len()).expect("a tag list under 4 GiB");
        self.ends.push(end);
    }

    fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl From<Vec<String>> for TagList {
    fn from(tags: Vec<String>) -> TagList {
        let mut list = TagList {
            bytes: String::with_capacity(tags.iter().map(String::len).sum()),
            ends: Vec::with_capacity(tags.len()),
        };
        for t in &tags {
            list.push(t);
        }
        list
    }
}

impl Serialize for TagList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for TagList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TagList, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TagList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of tags")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TagList, A::Error> {
                let mut list = TagList::default();
                while let Some(tag) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    list.push(&tag);
                }
                list.bytes.shrink_to_fit();
                list.ends.shrink_to_fit();
                Ok(list)
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

/// The state, in memory, with the file it is saved to (none: nothing persists).
#[derive(Debug, Default)]
pub struct Store {
    path: Option<PathBuf>,
    state: State,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("saving state to {path}: {source}")]
    Save {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Store {
    /// A store that keeps nothing across runs.
    pub fn in_memory() -> Store {
        Store::default()
    }

    /// Opens (creating if needed) the state in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        remove_stale_temps(dir);
        let path = dir.join(STATE_FILE);
        // Read through a buffer rather than whole: the file holds every tag list.
        let state = match std::fs::File::open(&path) {
            Ok(file) => serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
                if e.is_io() {
                    StoreError::Open {
                        path: path.clone(),
                        source: e.into(),
                    }
                } else {
                    StoreError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(source) => return Err(StoreError::Open { path, source }),
        };
        Ok(Store {
            path: Some(path),
            state,
        })
    }

    /// A repository's last complete tag list, in the order it was recorded (a copy: the store
    /// keeps it compactly).
    pub fn tags(&self, repository: &str) -> Option<Vec<String>> {
        self.state.tags.get(repository).map(TagList::to_vec)
    }

    /// How many tags the repository's last complete list holds, if it has one.
    pub fn tag_count(&self, repository: &str) -> Option<usize> {
        self.state.tags.get(repository).map(TagList::len)
    }

    /// Records a complete tag list (never call this with a failed or truncated scan).
    pub fn set_tags(&mut self, repository: &str, tags: Vec<String>) {
        self.state.tags.insert(repository.to_string(), tags.into());
    }

    pub fn scan(&self, repository: &str) -> Option<&ScanRecord> {
        self.state.scans.get(repository)
    }

    /// Records a complete scan: its tags and when it happened.
    pub fn set_scan(&mut self, repository: &str, tags: Vec<String>, record: ScanRecord) {
        self.state.tags.insert(repository.to_string(), tags.into());
        self.state.scans.insert(repository.to_string(), record);
    }

    /// Updates the quota of `repository`'s last scan (a failed scan's news: its list, time
    /// and fingerprint stay). Nothing without a last scan.
    pub fn set_quota(&mut self, repository: &str, quota: Quota) {
        if let Some(record) = self.state.scans.get_mut(repository) {
            record.rate_limit = Some(quota);
        }
    }

    pub fn automation(&self, automation: &str) -> Option<&AutomationRecord> {
        self.state.automations.get(automation)
    }

    pub fn set_automation(&mut self, automation: &str, record: AutomationRecord) {
        self.state
            .automations
            .insert(automation.to_string(), record);
    }

    pub fn latest(&self, policy: &str) -> Option<&ImageRef> {
        self.state.latest.get(policy)
    }

    /// Records a policy's latest reference; the one it replaces, if different, becomes the
    /// previous reference (Flux's `observedPreviousRef`).
    pub fn set_latest(&mut self, policy: &str, latest: ImageRef) {
        if let Some(old) = self.state.latest.insert(policy.to_string(), latest.clone()) {
            if old != latest {
                self.state.previous.insert(policy.to_string(), old);
            }
        }
    }

    /// The reference a policy elected before its current one.
    pub fn previous(&self, policy: &str) -> Option<&ImageRef> {
        self.state.previous.get(policy)
    }

    /// The exclusion list a repository's last successful scan used.
    pub fn exclusion(&self, repository: &str) -> Option<&[String]> {
        self.state.exclusions.get(repository).map(Vec::as_slice)
    }

    pub fn set_exclusion(&mut self, repository: &str, patterns: Vec<String>) {
        self.state
            .exclusions
            .insert(repository.to_string(), patterns);
    }

    /// An automation's runs and pushes.
    pub fn run(&self, automation: &str) -> Option<&RunRecord> {
        self.state.runs.get(automation)
    }

    pub fn set_run(&mut self, automation: &str, record: RunRecord) {
        self.state.runs.insert(automation.to_string(), record);
    }

    /// An object's last outcome, by `<Kind>/<namespace>/<name>`.
    pub fn outcome(&self, object: &str) -> Option<&OutcomeRecord> {
        self.state.outcomes.get(object)
    }

    /// Records an object's outcome, keeping when its result last changed.
    pub fn set_outcome(&mut self, object: &str, mut record: OutcomeRecord) {
        record.since = match self.state.outcomes.get(object) {
            Some(old) if old.result == record.result => old.since,
            _ => record.time,
        };
        self.state.outcomes.insert(object.to_string(), record);
    }

    /// The objects (`<Kind>/<namespace>/<name>`) whose last notification event was a
    /// failure.
    pub fn notify_failing(&self) -> &BTreeSet<String> {
        &self.state.notify_failing
    }

    pub fn set_notify_failing(&mut self, objects: BTreeSet<String>) {
        self.state.notify_failing = objects;
    }

    /// Writes the state atomically; a no-op for an in-memory store.
    pub fn save(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let err = |source| StoreError::Save {
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(dir)
            .map_err(err)?;
        // Locked while it is written, so that opening the store elsewhere leaves it alone. A
        // file system without locks only loses that protection, not the save.
        use std::os::fd::AsRawFd;
        // SAFETY: flock on the temp file's own descriptor; released when it closes.
        let _ = unsafe { libc::flock(tmp.as_file().as_raw_fd(), libc::LOCK_EX) };
        // Streamed through a small buffer: the document (every tag list) is never in memory
        // as a whole.
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        serde_json::to_writer_pretty(&mut out, &self.state).map_err(|e| err(e.into()))?;
        out.flush().map_err(err)?;
        drop(out);
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert!(s.tags("default/app").is_none());
        s.set_tags("default/app", vec!["1.0.0".into()]);
        let r = ImageRef {
            name: "reg/app".into(),
            tag: "1.0.0".into(),
            digest: None,
        };
        s.set_latest("default/app", r.clone());
        s.save().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.tags("default/app").unwrap(), ["1.0.0".to_string()]);
        assert_eq!(s.latest("default/app"), Some(&r));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn tag_lists_keep_their_order_and_empty_tags_and_read_back_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let tags: Vec<String> = ["2.0.0", "", "1.10.0", "v1", "1.10.0"]
            .map(String::from)
            .to_vec();
        s.set_tags("default/app", tags.clone());
        s.set_tags("default/none", Vec::new());
        assert_eq!(s.tags("default/app").unwrap(), tags);
        assert_eq!(s.tag_count("default/app"), Some(5));
        assert_eq!(s.tags("default/none").unwrap(), Vec::<String>::new());
        assert_eq!(s.tag_count("default/other"), None);
        s.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc["tags"]["default/app"],
            serde_json::json!(["2.0.0", "", "1.10.0", "v1", "1.10.0"])
        );
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.tags("default/app").unwrap(), tags);
        assert_eq!(s.tag_count("default/none"), Some(0));
    }

    #[test]
    fn a_state_file_without_the_status_fields_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STATE_FILE),
            br#"{"tags":{"default/app":["1.0.0"]},"latest":{},"scans":{"default/app":{"time":7,"fingerprint":"f"}},"automations":{}}"#,
        )
        .unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.scan("default/app").unwrap().time, 7);
        assert!(s.exclusion("default/app").is_none());
        assert!(s.run("default/fleet").is_none());
        assert!(s.outcome("ImagePolicy/default/app").is_none());
    }

    #[test]
    fn a_different_latest_becomes_the_previous_one() {
        let mut s = Store::in_memory();
        let r = |tag: &str| ImageRef {
            name: "reg/app".into(),
            tag: tag.into(),
            digest: None,
        };
        s.set_latest("default/app", r("1.0.0"));
        assert!(s.previous("default/app").is_none());
        s.set_latest("default/app", r("1.0.0"));
        assert!(s.previous("default/app").is_none(), "same ref: no previous");
        s.set_latest("default/app", r("1.1.0"));
        assert_eq!(s.previous("default/app"), Some(&r("1.0.0")));
        s.set_latest("default/app", r("1.1.0"));
        assert_eq!(s.previous("default/app"), Some(&r("1.0.0")), "kept");
    }

    #[test]
    fn an_outcome_keeps_its_transition_time_while_the_result_stays() {
        let mut s = Store::in_memory();
        let rec = |result: &str, time| OutcomeRecord {
            result: result.into(),
            message: String::new(),
            reason: None,
            ready_message: None,
            time,
            since: 0,
        };
        s.set_outcome("ImagePolicy/default/app", rec("ok", 10));
        s.set_outcome("ImagePolicy/default/app", rec("ok", 20));
        assert_eq!(s.outcome("ImagePolicy/default/app").unwrap().since, 10);
        s.set_outcome("ImagePolicy/default/app", rec("failed", 30));
        assert_eq!(s.outcome("ImagePolicy/default/app").unwrap().since, 30);
    }

    /// A save killed before its rename leaves its temp file; the next open removes it, and
    /// only it: other files, and a temp a live save still holds, stay.
    #[test]
    fn opening_removes_the_temp_files_of_killed_saves_only() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.set_tags("default/app", vec!["1.0.0".into()]);
        s.save().unwrap();
        let stale = dir.path().join("state.json.Ab3xYz.tmp");
        std::fs::write(&stale, b"{\"tags\":").unwrap();
        let live = dir.path().join("state.json.Live01.tmp");
        std::fs::write(&live, b"").unwrap();
        let holder = std::fs::File::open(&live).unwrap();
        // SAFETY: flock on a descriptor the test owns.
        assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
        let foreign = [".tmpQw12Er", "notes.tmp", "state.json.tmp", "state.json"];
        for name in &foreign[..3] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("state.json.dir.tmp")).unwrap();

        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.tags("default/app").unwrap(), ["1.0.0".to_string()]);
        assert!(!stale.exists(), "the killed save's temp is gone");
        assert!(live.exists(), "a save in progress keeps its temp");
        for name in foreign {
            assert!(dir.path().join(name).exists(), "{name} is not ours");
        }
        assert!(dir.path().join("state.json.dir.tmp").is_dir());
        drop(holder);
        Store::open(dir.path()).unwrap();
        assert!(!live.exists(), "removed once nothing holds it");
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(STATE_FILE), "{err}");
    }
}
