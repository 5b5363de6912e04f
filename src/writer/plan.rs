//! The reviewable form of an update: a summary line per change and a unified diff per file.

use std::fmt::Write as _;

use super::fs::Update;
use super::ObjectId;

fn object_label(o: &ObjectId, yaml: bool) -> String {
    if o == &ObjectId::default() {
        return if yaml { "(plain YAML)" } else { "(text file)" }.into();
    }
    let mut s = if o.kind.is_empty() {
        "?".to_string()
    } else {
        o.kind.clone()
    };
    if !o.namespace.is_empty() || !o.name.is_empty() {
        s.push(' ');
        if !o.namespace.is_empty() {
            s.push_str(&o.namespace);
            s.push('/');
        }
        s.push_str(&o.name);
    }
    s
}

/// Renders what `update` would write: for each file (in path order) one line per change,
/// `  <Kind> <namespace>/<name>: <old> -> <new> (<setter>)` (`(plain YAML)` or `(text file)`
/// for changes outside any object), then the file's unified diff
/// (`a/` and `b/` paths relative to the repository root). Empty when nothing changes.
pub fn render_plan(update: &Update) -> String {
    let mut files: Vec<_> = update.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = String::new();
    for f in files {
        let _ = writeln!(out, "{}:", f.path);
        let name = f.path.rsplit('/').next().unwrap_or_default();
        let yaml = super::fs::considered_name(name);
        if let Some(objects) = update.changes.get(&f.path) {
            for (object, changes) in objects {
                for c in changes {
                    let _ = writeln!(
                        out,
                        "  {}: {} -> {} ({})",
                        object_label(object, yaml),
                        c.old_value,
                        c.new_value,
                        c.setter
                    );
                }
            }
        }
        let old = String::from_utf8_lossy(&f.original);
        let new = String::from_utf8_lossy(&f.updated);
        let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
        let _ = write!(
            out,
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header(&format!("a/{}", f.repo_path), &format!("b/{}", f.repo_path))
        );
    }
    out
}
