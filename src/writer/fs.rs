//! The writer's file side: walks a checkout under `update.path`, computes new contents, and
//! writes changed files atomically. Never leaves the checkout.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::{apply_report, apply_text, Change, ChangeSet, ObjectId, Setters};

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
    /// Other text files to edit line by line (see [`crate::writer::apply_text`]): gitignore-style
    /// globs relative to `update.path` (`Dockerfile` and `*.tf` match at any depth, `/Dockerfile`
    /// only at `update.path` itself, `**/*.tf` any depth, `!pattern` excludes again). A YAML file
    /// (`considered_name`) keeps the YAML path even when a glob matches it. Empty (the default):
    /// no other file is read.
    pub text_files: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_file_size: MAX_FILE_SIZE,
            ignore: Vec::new(),
            text_files: Vec::new(),
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

/// The ignore matchers from the root down to a directory, deepest last (shared by threads).
#[derive(Clone, Default)]
struct Ignores {
    chain: Option<Arc<IgnoreNode>>,
}

struct IgnoreNode {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreNode>>,
}

impl Ignores {
    fn with(&self, matcher: Gitignore) -> Ignores {
        Ignores {
            chain: Some(Arc::new(IgnoreNode {
                matcher,
                parent: self.chain.clone(),
            })),
        }
    }

    /// The deepest decisive pattern wins, as in git.
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let mut node = self.chain.as_deref();
        while let Some(n) = node {
            match n.matcher.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
            node = n.parent.as_deref();
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

/// What every walking thread shares.
struct Ctx<'a> {
    root: PathBuf,
    start: PathBuf,
    setters: &'a Setters,
    options: &'a Options,
    /// Only list the files that pass screening; parse nothing.
    discover_only: bool,
    /// `Options::text_files`, compiled relative to `update.path`; None when empty.
    text_files: Option<Gitignore>,
}

/// How a file is edited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Yaml,
    Text,
}

impl Ctx<'_> {
    /// Whether a file is considered, and how: YAML by name, else text when a glob selects it.
    fn kind(&self, path: &Path, name: &str) -> Option<Kind> {
        if considered_name(name) {
            return Some(Kind::Yaml);
        }
        let globs = self.text_files.as_ref()?;
        if !path.starts_with(globs.path()) {
            return None;
        }
        match globs.matched_path_or_any_parents(path, false) {
            Match::Ignore(_) => Some(Kind::Text),
            _ => None,
        }
    }
}

/// Compiles the text-file globs relative to `base`.
fn text_globs(base: &Path, globs: &[String]) -> Option<Gitignore> {
    if globs.iter().all(|g| g.trim().is_empty()) {
        return None;
    }
    let mut b = GitignoreBuilder::new(base);
    for g in globs {
        let _ = b.add_line(None, g.trim());
    }
    b.build().ok()
}

/// What one walking thread found.
#[derive(Default)]
struct Found {
    files: Vec<FileUpdate>,
    changes: Vec<(String, Vec<(ObjectId, Change)>)>,
    diagnostics: Vec<Diagnostic>,
    discovered: Vec<String>,
}

impl Found {
    fn merge(&mut self, other: Found) {
        self.files.extend(other.files);
        self.changes.extend(other.changes);
        self.diagnostics.extend(other.diagnostics);
        self.discovered.extend(other.discovered);
    }
}

/// Lists the files under `root/update_path` that the writer would parse: considered names and
/// the text files `Options::text_files` selects, not ignored, not behind a symlink, within the
/// size cap, containing `"$imagepolicy"`.
/// Repository paths, sorted; the diagnostics of the walk beside them.
pub fn discover(
    root: &Path,
    update_path: &str,
    options: &Options,
) -> Result<(Vec<String>, Vec<Diagnostic>), WriterError> {
    let (update, mut found) = walk(root, update_path, &Setters::new(), options, true)?;
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
) -> Result<(Update, Vec<String>), WriterError> {
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
    let glob_base = if start.is_dir() {
        start.clone()
    } else {
        start.parent().unwrap_or(&root).to_path_buf()
    };
    let ctx = Ctx {
        root: root.clone(),
        start: start.clone(),
        setters,
        options,
        discover_only,
        text_files: text_globs(&glob_base, &options.text_files),
    };
    let mut found = Found::default();
    let mut ignores = Ignores::default();
    if !options.ignore.is_empty() {
        let mut b = GitignoreBuilder::new(&root);
        for line in &options.ignore {
            let _ = b.add_line(None, line);
        }
        if let Ok(g) = b.build() {
            ignores = ignores.with(g);
        }
    }
    // The ignore files of the directories from the root down to update.path.
    let mut dir = root.clone();
    for p in std::iter::once(None).chain(parts.iter().map(Some)) {
        if let Some(p) = p {
            dir.push(p);
            if ignores.ignored(&dir, dir.is_dir()) {
                found.diagnostics.push(Diagnostic {
                    path: rel(&root, &dir).unwrap_or_default(),
                    line: None,
                    message: "update.path is excluded by .sourceignore; nothing considered".into(),
                });
                return Ok((finish(&root, found), Vec::new()));
            }
        }
        if dir == start {
            break;
        }
        if dir.is_dir() && dir.starts_with(&root) {
            if let Some(g) = read_ignore(&dir, &mut found.diagnostics, &root) {
                ignores = ignores.with(g);
            }
        }
    }
    let meta = fs::symlink_metadata(&start).map_err(walk_err)?;
    if meta.is_dir() {
        fs::read_dir(&start).map_err(walk_err)?;
        found.merge(walk_parallel(&ctx, start.clone(), ignores));
    } else if meta.is_file() {
        let name = start
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(kind) = ctx.kind(&start, &name) {
            consider_file(&ctx, &mut found, &start, kind);
        }
    }
    let discovered = std::mem::take(&mut found.discovered);
    Ok((finish(&root, found), discovered))
}

/// Sorts what the threads found into an `Update`.
fn finish(root: &Path, mut found: Found) -> Update {
    found.files.sort_by(|a, b| a.path.cmp(&b.path));
    found
        .diagnostics
        .sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    let mut changes = ChangeSet::new();
    for (path, list) in found.changes {
        let objects = changes.entry(path).or_default();
        for (object, change) in list {
            objects.entry(object).or_default().push(change);
        }
    }
    Update {
        root: root.to_path_buf(),
        files: found.files,
        changes,
        diagnostics: found.diagnostics,
    }
}

/// Directories still to read, and how many threads are reading one.
struct Queue {
    jobs: Vec<(PathBuf, Ignores)>,
    active: usize,
}

/// Walks `start` with one thread per available core, each taking whole directories.
fn walk_parallel(ctx: &Ctx<'_>, start: PathBuf, ignores: Ignores) -> Found {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let queue = Mutex::new(Queue {
        jobs: vec![(start.clone(), ignores)],
        active: 0,
    });
    let ready = Condvar::new();
    let worker = || {
        let mut found = Found::default();
        loop {
            let job = {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = q.jobs.pop() {
                        q.active += 1;
                        break Some(job);
                    }
                    if q.active == 0 {
                        break None;
                    }
                    q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some((dir, ignores)) = job else {
                ready.notify_all();
                return found;
            };
            let top = dir == start;
            let subdirs = walk_dir(ctx, &mut found, &dir, ignores, top);
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            q.jobs.extend(subdirs);
            q.active -= 1;
            drop(q);
            ready.notify_all();
        }
    };
    if threads == 1 {
        return worker();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        let mut all = Found::default();
        for h in handles {
            match h.join() {
                Ok(f) => all.merge(f),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    })
}

fn diag(
    ctx: &Ctx<'_>,
    found: &mut Found,
    path: &Path,
    line: Option<usize>,
    message: impl Into<String>,
) {
    let shown = rel(&ctx.start, path)
        .or_else(|| rel(&ctx.root, path))
        .unwrap_or_else(|| path.display().to_string());
    found.diagnostics.push(Diagnostic {
        path: shown,
        line,
        message: message.into(),
    });
}

/// Reads one directory: considers its files, returns its subdirectories to walk.
fn walk_dir(
    ctx: &Ctx<'_>,
    found: &mut Found,
    dir: &Path,
    mut ignores: Ignores,
    top: bool,
) -> Vec<(PathBuf, Ignores)> {
    if let Some(g) = read_ignore(dir, &mut found.diagnostics, &ctx.root) {
        ignores = ignores.with(g);
    }
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            let what = if top { "update.path" } else { "directory" };
            diag(ctx, found, dir, None, format!("cannot read {what}: {e}"));
            return Vec::new();
        }
    };
    let mut subdirs = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            if name == ".git" || ignores.ignored(&path, true) {
                continue;
            }
            subdirs.push((path, ignores.clone()));
        } else if ft.is_file() {
            if let Some(kind) = ctx.kind(&path, &name) {
                if !ignores.ignored(&path, false) {
                    consider_file(ctx, found, &path, kind);
                }
            }
        } else if ft.is_symlink() {
            consider_link(ctx, found, &path, &name, &ignores);
        }
    }
    subdirs
}

/// Symlinks are never read through: one leading out of the checkout, or dangling, is
/// reported; one inside it is skipped (its target is considered at its own path).
fn consider_link(ctx: &Ctx<'_>, found: &mut Found, path: &Path, name: &str, ignores: &Ignores) {
    if ignores.ignored(path, false) {
        return;
    }
    match fs::canonicalize(path) {
        Err(_) => {
            if ctx.kind(path, name).is_some() {
                diag(ctx, found, path, None, "dangling symlink; skipped");
            }
        }
        Ok(target) => {
            let is_dir = target.is_dir();
            let wanted = ctx.kind(path, name).is_some();
            if !target.starts_with(&ctx.root) {
                if is_dir || wanted {
                    diag(
                        ctx,
                        found,
                        path,
                        None,
                        "symlink leads out of the checkout; refused",
                    );
                }
            } else if !is_dir && wanted && !target.starts_with(&ctx.start) {
                diag(
                    ctx,
                    found,
                    path,
                    None,
                    "symlink to a file outside update.path; not followed",
                );
            }
        }
    }
}

fn consider_file(ctx: &Ctx<'_>, found: &mut Found, path: &Path, kind: Kind) {
    let original = match read_regular(path, ctx.options.max_file_size) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            let cap = ctx.options.max_file_size;
            diag(
                ctx,
                found,
                path,
                None,
                format!("file is larger than {cap} bytes; not read"),
            );
            return;
        }
        Err(e) => {
            diag(ctx, found, path, None, format!("cannot read: {e}"));
            return;
        }
    };
    if memchr::memmem::find(&original, TOKEN).is_none() {
        return;
    }
    let (Some(repo_path), Some(rel_path)) = (rel(&ctx.root, path), rel(&ctx.start, path)) else {
        diag(ctx, found, path, None, "file name is not UTF-8; skipped");
        return;
    };
    if ctx.discover_only {
        found.discovered.push(repo_path);
        return;
    }
    let result = match kind {
        Kind::Yaml => apply_report(&original, ctx.setters),
        Kind::Text => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            apply_text(&name, &original, ctx.setters)
        }
    };
    match result {
        Err(problem) => diag(ctx, found, path, Some(problem.line), problem.message),
        Ok(report) => {
            for n in report.notes {
                diag(ctx, found, path, Some(n.line), n.message);
            }
            if let Some(updated) = report.applied.output {
                found
                    .changes
                    .push((rel_path.clone(), report.applied.changes));
                found.files.push(FileUpdate {
                    repo_path,
                    path: rel_path,
                    original,
                    updated,
                });
            }
        }
    }
}

/// Reads a regular file without following a symlink in its last component (`O_NOFOLLOW`);
/// `None` when it is larger than `cap`.
fn read_regular(path: &Path, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > cap {
        return Ok(None);
    }
    let mut buf = vec![0; meta.len() as usize];
    f.read_exact(&mut buf)?;
    Ok(Some(buf))
}

impl Update {
    /// Writes every changed file atomically (temp file in the same directory, then rename).
    /// All temporary files are prepared before the first rename; a file that changed since it
    /// was read, or became a symlink, stops the write before anything is replaced. Readers see
    /// the old or the new file, never a mix. Files are not fsynced: the work tree is a scratch
    /// copy whose truth is the remote (a crash means the next run starts again from it), and
    /// fsync per file made a 500-file update 8x slower than `sed -i`.
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
            let current = read_regular(&target, u64::MAX).map_err(werr)?;
            if current.as_deref() != Some(f.original.as_slice())
                || meta.len() != f.original.len() as u64
            {
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
            // Close it now (many files must not exhaust descriptors); the path still removes
            // the file when dropped unpersisted.
            prepared.push((tmp.into_temp_path(), target, f.repo_path.clone()));
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
