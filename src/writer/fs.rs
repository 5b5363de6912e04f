//! The writer's file side: walks a checkout under `update.path`, computes new contents, and
//! writes changed files atomically. Never leaves the checkout.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::{apply_report, ChangeSet, Setters};

/// Files larger than this are reported, not read.
pub const MAX_FILE_SIZE: u64 = 4 << 20;

/// The ignore file read in every directory, gitignore syntax (as Flux's source-controller).
pub const SOURCE_IGNORE: &str = ".sourceignore";

/// The screening token: a file without it is never parsed.
const TOKEN: &[u8] = b"\"$imagepolicy\"";

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

/// How the walk behaves beyond the defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files above this size are reported and not read.
    pub max_file_size: u64,
    /// Extra ignore patterns, gitignore syntax, relative to the checkout root (for example the
    /// GitRepository's `spec.ignore`).
    pub ignore: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_file_size: MAX_FILE_SIZE,
            ignore: Vec::new(),
        }
    }
}

/// Computes the update of every marked file under `root/update_path`, writing nothing.
pub fn update(root: &Path, update_path: &str, setters: &Setters) -> Result<Update, WriterError> {
    update_with(root, update_path, setters, &Options::default())
}

/// Checks `update.path` lexically: relative, no `..`. Returns its normal components.
fn relative_components(update_path: &str) -> Result<Vec<String>, WriterError> {
    let p = Path::new(update_path);
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(WriterError::PathEscapes(update_path.to_string()))
            }
        }
    }
    Ok(parts)
}

/// `/`-joined path of `p` relative to `base` (which must be a prefix).
fn rel(base: &Path, p: &Path) -> Option<String> {
    let r = p.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = r.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// Whether a file name is one the writer considers.
pub fn considered_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization"
}

/// The stack of ignore matchers from the root down to the current directory.
struct Ignores {
    stack: Vec<Gitignore>,
}

impl Ignores {
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        for g in self.stack.iter().rev() {
            match g.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}

/// Reads `dir/.sourceignore` if it is a regular file (never through a link).
fn read_ignore(dir: &Path, diags: &mut Vec<Diagnostic>, root: &Path) -> Option<Gitignore> {
    let path = dir.join(SOURCE_IGNORE);
    let meta = fs::symlink_metadata(&path).ok()?;
    let shown = rel(root, &path).unwrap_or_default();
    if !meta.file_type().is_file() || meta.len() > MAX_FILE_SIZE {
        diags.push(Diagnostic {
            path: shown,
            line: None,
            message: "not a regular file of reasonable size; ignored".into(),
        });
        return None;
    }
    let text = fs::read_to_string(&path).ok()?;
    let mut b = GitignoreBuilder::new(dir);
    for line in text.lines() {
        let _ = b.add_line(Some(path.clone()), line);
    }
    b.build().ok()
}

struct Walker<'a> {
    root: PathBuf,
    start: PathBuf,
    setters: &'a Setters,
    options: &'a Options,
    out: Update,
    /// Some: only list the files that pass screening (repository paths), parse nothing.
    discovered: Option<Vec<String>>,
}

/// Lists the files under `root/update_path` that the writer would parse: considered names,
/// not ignored, not behind a symlink, within the size cap, containing `"$imagepolicy"`.
/// Repository paths, sorted; the diagnostics of the walk beside them.
pub fn discover(
    root: &Path,
    update_path: &str,
    options: &Options,
) -> Result<(Vec<String>, Vec<Diagnostic>), WriterError> {
    let (update, found) = walk(root, update_path, &Setters::new(), options, true)?;
    let mut found = found.unwrap_or_default();
    found.sort();
    Ok((found, update.diagnostics))
}

/// Computes the update with options.
pub fn update_with(
    root: &Path,
    update_path: &str,
    setters: &Setters,
    options: &Options,
) -> Result<Update, WriterError> {
    walk(root, update_path, setters, options, false).map(|(u, _)| u)
}

fn walk(
    root: &Path,
    update_path: &str,
    setters: &Setters,
    options: &Options,
    discover_only: bool,
) -> Result<(Update, Option<Vec<String>>), WriterError> {
    let parts = relative_components(update_path)?;
    let walk_err = |source| WriterError::Walk {
        path: update_path.to_string(),
        source,
    };
    let root = root.canonicalize().map_err(walk_err)?;
    let mut start = root.clone();
    for p in &parts {
        start.push(p);
    }
    let start = start.canonicalize().map_err(walk_err)?;
    if !start.starts_with(&root) {
        return Err(WriterError::PathEscapes(update_path.to_string()));
    }
    let mut w = Walker {
        root: root.clone(),
        start: start.clone(),
        setters,
        options,
        out: Update {
            root: root.clone(),
            ..Update::default()
        },
        discovered: discover_only.then(Vec::new),
    };
    let mut ignores = Ignores { stack: Vec::new() };
    if !options.ignore.is_empty() {
        let mut b = GitignoreBuilder::new(&root);
        for line in &options.ignore {
            let _ = b.add_line(None, line);
        }
        if let Ok(g) = b.build() {
            ignores.stack.push(g);
        }
    }
    // The ignore files of the directories from the root down to update.path.
    let mut dir = root.clone();
    let mut diags = Vec::new();
    for p in std::iter::once(None).chain(parts.iter().map(Some)) {
        if let Some(p) = p {
            dir.push(p);
            let is_dir = dir.is_dir();
            if ignores.ignored(&dir, is_dir) {
                w.out.diagnostics.push(Diagnostic {
                    path: rel(&root, &dir).unwrap_or_default(),
                    line: None,
                    message: "update.path is excluded by .sourceignore; nothing considered".into(),
                });
                return Ok((w.out, w.discovered));
            }
        }
        if dir.is_dir() && dir.starts_with(&root) {
            if let Some(g) = read_ignore(&dir, &mut diags, &root) {
                ignores.stack.push(g);
            }
        }
    }
    w.out.diagnostics.extend(diags);
    let meta = fs::symlink_metadata(&start).map_err(walk_err)?;
    if meta.is_dir() {
        w.walk_dir(&start, &mut ignores, true).map_err(walk_err)?;
    } else if meta.is_file() {
        w.consider_file(&start, &meta);
    }
    let mut out = w.out;
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out.diagnostics
        .sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    Ok((out, w.discovered))
}

impl Walker<'_> {
    fn diag(&mut self, path: &Path, line: Option<usize>, message: impl Into<String>) {
        let shown = rel(&self.start, path)
            .or_else(|| rel(&self.root, path))
            .unwrap_or_else(|| path.display().to_string());
        self.out.diagnostics.push(Diagnostic {
            path: shown,
            line,
            message: message.into(),
        });
    }

    fn walk_dir(&mut self, dir: &Path, ignores: &mut Ignores, top: bool) -> std::io::Result<()> {
        let pushed = if top {
            false
        } else {
            let mut d = Vec::new();
            let g = read_ignore(dir, &mut d, &self.root);
            self.out.diagnostics.extend(d);
            match g {
                Some(g) => {
                    ignores.stack.push(g);
                    true
                }
                None => false,
            }
        };
        let mut entries: Vec<fs::DirEntry> = match fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(Result::ok).collect(),
            Err(e) if top => return Err(e),
            Err(e) => {
                self.diag(dir, None, format!("cannot read directory: {e}"));
                Vec::new()
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                if name == ".git" || ignores.ignored(&path, true) {
                    continue;
                }
                self.walk_dir(&path, ignores, false)?;
            } else if ft.is_file() {
                if !considered_name(&name) || ignores.ignored(&path, false) {
                    continue;
                }
                if let Ok(meta) = fs::symlink_metadata(&path) {
                    self.consider_file(&path, &meta);
                }
            } else if ft.is_symlink() {
                self.consider_link(&path, &name, ignores);
            }
        }
        if pushed {
            ignores.stack.pop();
        }
        Ok(())
    }

    /// Symlinks are never read through: one leading out of the checkout, or dangling, is
    /// reported; one inside it is skipped (its target is considered at its own path).
    fn consider_link(&mut self, path: &Path, name: &str, ignores: &Ignores) {
        if ignores.ignored(path, false) {
            return;
        }
        match fs::canonicalize(path) {
            Err(_) => {
                if considered_name(name) {
                    self.diag(path, None, "dangling symlink; skipped");
                }
            }
            Ok(target) => {
                let is_dir = target.is_dir();
                if !target.starts_with(&self.root) {
                    if is_dir || considered_name(name) {
                        self.diag(path, None, "symlink leads out of the checkout; refused");
                    }
                } else if !is_dir && considered_name(name) && !target.starts_with(&self.start) {
                    self.diag(
                        path,
                        None,
                        "symlink to a file outside update.path; not followed",
                    );
                }
            }
        }
    }

    fn consider_file(&mut self, path: &Path, meta: &fs::Metadata) {
        if meta.len() > self.options.max_file_size {
            self.diag(
                path,
                None,
                format!(
                    "file is larger than {} bytes; not read",
                    self.options.max_file_size
                ),
            );
            return;
        }
        let (Some(repo_path), Some(rel_path)) = (rel(&self.root, path), rel(&self.start, path))
        else {
            self.diag(path, None, "file name is not UTF-8; skipped");
            return;
        };
        let original = match read_regular(path, meta) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.diag(path, None, format!("cannot read: {e}"));
                return;
            }
        };
        if memchr::memmem::find(&original, TOKEN).is_none() {
            return;
        }
        if let Some(found) = &mut self.discovered {
            found.push(repo_path);
            return;
        }
        match apply_report(&original, self.setters) {
            Err(problem) => self.diag(path, Some(problem.line), problem.message),
            Ok(report) => {
                for n in report.notes {
                    self.diag(path, Some(n.line), n.message);
                }
                if let Some(updated) = report.applied.output {
                    let objects = self.out.changes.entry(rel_path.clone()).or_default();
                    for (object, change) in report.applied.changes {
                        objects.entry(object).or_default().push(change);
                    }
                    self.out.files.push(FileUpdate {
                        repo_path,
                        path: rel_path,
                        original,
                        updated,
                    });
                }
            }
        }
    }
}

/// Reads a file that was a regular file when listed; fails if it has since been replaced
/// (by a symlink, for example).
fn read_regular(path: &Path, meta: &fs::Metadata) -> std::io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let now = f.metadata()?;
    if now.dev() != meta.dev() || now.ino() != meta.ino() || !now.is_file() {
        return Err(std::io::Error::other("file was replaced while being read"));
    }
    let mut buf = Vec::with_capacity(now.len() as usize);
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

impl Update {
    /// Writes every changed file atomically (temp file in the same directory, then rename).
    /// All temporary files are prepared before the first rename; a file that changed since it
    /// was read, or became a symlink, stops the write before anything is replaced.
    pub fn write(&self) -> Result<(), WriterError> {
        let mut prepared = Vec::with_capacity(self.files.len());
        for f in &self.files {
            let werr = |source| WriterError::Write {
                path: f.repo_path.clone(),
                source,
            };
            let target = self.checked_target(&f.repo_path).map_err(werr)?;
            let meta = fs::symlink_metadata(&target).map_err(werr)?;
            if !meta.is_file() {
                return Err(werr(std::io::Error::other("no longer a regular file")));
            }
            let current = read_regular(&target, &meta).map_err(werr)?;
            if current != f.original {
                return Err(werr(std::io::Error::other("changed since it was read")));
            }
            let dir = target
                .parent()
                .ok_or_else(|| werr(std::io::Error::other("no parent directory")))?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".tagline-")
                .tempfile_in(dir)
                .map_err(werr)?;
            tmp.write_all(&f.updated).map_err(werr)?;
            tmp.as_file()
                .set_permissions(meta.permissions())
                .map_err(werr)?;
            tmp.as_file().sync_all().map_err(werr)?;
            prepared.push((tmp, target, f.repo_path.clone()));
        }
        for (tmp, target, repo_path) in prepared {
            tmp.persist(&target).map_err(|e| WriterError::Write {
                path: repo_path,
                source: e.error,
            })?;
        }
        Ok(())
    }

    /// The path of a repository file, checked to stay inside the root without links.
    fn checked_target(&self, repo_path: &str) -> std::io::Result<PathBuf> {
        let parts = relative_components(repo_path)
            .map_err(|_| std::io::Error::other("path leaves the repository"))?;
        let mut p = self.root.clone();
        for (i, part) in parts.iter().enumerate() {
            p.push(part);
            let m = fs::symlink_metadata(&p)?;
            if m.file_type().is_symlink() {
                return Err(std::io::Error::other("path goes through a symlink"));
            }
            if i + 1 < parts.len() && !m.is_dir() {
                return Err(std::io::Error::other("not a directory"));
            }
        }
        Ok(p)
    }
}
