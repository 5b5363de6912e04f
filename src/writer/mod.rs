//! The writer: finds `$imagepolicy` markers in YAML and rewrites only the marked scalars' bytes.
//! Pure here; `fs` walks a checkout and writes files.
//!
//! CONTRACT (used by `automation` and `cli`; the writer owner may add, not change):
//! - `Setters`: policy name `"<ns>:<name>"` → the policy's latest `ImageRef`, only for the
//!   policies that apply to this automation (its namespace, its selector).
//! - `apply(text, &setters) -> Result<Applied, Problem>`: new bytes (None when nothing changed)
//!   and the changes, per YAML document.
//! - `fs::update(root, update_path, &setters) -> Result<Update, WriterError>`: walks the tree and
//!   computes every file's new content without writing; `Update::write()` writes them atomically.
//! - `ChangeSet`: file (relative to `update.path`) → object → changes, in a stable order.
//!
//! Added by the writer owner:
//! - `apply_report(text, &setters) -> Result<Report, Problem>`: `apply` plus the diagnostics
//!   (`Report::notes`, 1-based lines) about markers that changed nothing and why.
//! - `render_plan(&Update) -> String`: a summary line per change and a unified diff per file.
//! - `fs::update_with(root, path, &setters, &Options)` (size cap, extra ignore patterns such as
//!   the GitRepository's `spec.ignore`), `fs::discover(root, path, &Options)` (the screened
//!   files only, nothing parsed), `marker::parse` (a comment as Flux reads it).
//! - `apply_text(file_name, text, &setters) -> Result<Report, Problem>`: other text files
//!   (Dockerfile, Terraform, jsonnet, `.env`, ...) edited line by line, the rule in `text`;
//!   `fs::Options::text_files` (globs, off when empty) chooses the files it applies to.
//!
//! How: `doc` reads the file with saphyr-parser into scalars with byte spans; a marker is the
//! first comment outside every scalar on a line (or the whole-line comment above a sequence
//! item); `edit` splices new scalar text and re-reads the result, which must give the same
//! events with only the marked values changed, or the file is left alone. Files the parser
//! rejects go to `template`, which edits a marked line only when its value span is unambiguous.

mod doc;
mod edit;
pub mod fs;
pub mod marker;
mod plan;
mod scalar;
mod template;
mod text;

pub use plan::render_plan;

use std::collections::BTreeMap;

use crate::image::ImageRef;

/// Policy name `"<namespace>:<name>"` → its latest reference.
pub type Setters = BTreeMap<String, ImageRef>;

/// The Kubernetes object a change happened in; all empty for plain YAML.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One marked value that changed: Flux's `Change`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    pub old_value: String,
    pub new_value: String,
    /// The marker's setter, e.g. `flux-system:podinfo:tag`.
    pub setter: String,
}

/// file (relative to `update.path`, `/`-separated) → object → changes, in a stable order.
pub type ChangeSet = BTreeMap<String, BTreeMap<ObjectId, Vec<Change>>>;

/// The result of applying setters to one file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The new bytes, or None when no value changed (the file must not be written).
    pub output: Option<Vec<u8>>,
    pub changes: Vec<(ObjectId, Change)>,
}

/// Why a file could not be edited; it is reported and left alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// The result of [`apply_report`]: the edit and the diagnostics about markers not applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub applied: Applied,
    /// Markers that changed nothing and why (unknown policy, another namespace, a marker on a
    /// non-scalar, a file edited line by line because it is not YAML), with 1-based lines.
    pub notes: Vec<Problem>,
}

/// Rewrites the marked scalars of one YAML file.
pub fn apply(text: &[u8], setters: &Setters) -> Result<Applied, Problem> {
    apply_report(text, setters).map(|r| r.applied)
}

/// Rewrites the marked scalars of one YAML file, and says which markers were not applied.
/// `Err` means the file must be left alone (not UTF-8, not YAML and not safely editable line by
/// line, or an edit that would change more than the marked values).
pub fn apply_report(text: &[u8], setters: &Setters) -> Result<Report, Problem> {
    edit::apply(text, setters)
}

/// Rewrites the marked values of one non-YAML text file, line by line; `file_name` (the last
/// path component) chooses the comment syntax. The rule: a marker comment after code applies
/// to that line, a marker alone on its line to the next line; the value is the one quoted
/// string that is not a key (`"k": "v"`, `k = "v"`), or, where the language has bare words
/// (Dockerfile, shell, `.env`), the last token without `NAME=` (a Dockerfile `FROM` line skips
/// flags and `AS <stage>`). `Err` (file left alone) when a known policy's value is ambiguous.
/// Plain JSON has no comments: only JSONC-style `//` and `/* */` markers are read in `.json`.
pub fn apply_text(file_name: &str, text: &[u8], setters: &Setters) -> Result<Report, Problem> {
    text::apply(file_name, text, setters)
}
