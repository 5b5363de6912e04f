//! The writer's file side: walks a checkout under `update.path`, computes new contents, and
//! writes changed files atomically. Never leaves the checkout.

use std::path::{Path, PathBuf};

use super::{ChangeSet, Setters};

/// One file the update would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUpdate {
    /// Path relative to the checkout root, `/`-separated (for git).
    pub repo_path: String,
    /// Path relative to `update.path`, `/`-separated (for the change set).
    pub path: String,
    pub original: Vec<u8>,
    pub updated: Vec<u8>,
}

/// A diagnostic about a file or marker that was not applied (file and line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Everything one walk found: the files to change, the change set, and the diagnostics.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub root: PathBuf,
    pub files: Vec<FileUpdate>,
    pub changes: ChangeSet,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("update.path '{0}' leaves the repository")]
    PathEscapes(String),
    #[error("update.path '{path}': {source}")]
    Walk {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Computes the update of every marked file under `root/update_path`, writing nothing.
pub fn update(_root: &Path, _update_path: &str, _setters: &Setters) -> Result<Update, WriterError> {
    todo!("writer owner")
}

impl Update {
    /// Writes every changed file atomically (temp file in the same directory, then rename).
    pub fn write(&self) -> Result<(), WriterError> {
        todo!("writer owner")
    }
}
