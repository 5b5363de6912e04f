//! Commit-message templates: Flux's `spec.git.commit.messageTemplate`, a Go `text/template`
//! with Sprig's hermetic functions, rendered over the change set exactly as Flux renders it.
//!
//! The data is Flux's `TemplateData`: `.AutomationObject` (prints `namespace/name`),
//! `.Changed.FileChanges` (file → object → changes), `.Changed.Objects` (object → changes,
//! merged across files), `.Changed.Changes` (de-duplicated changes) and `.Values`. Maps are
//! visited in Go's sorted order, so the output is deterministic. `.Updated` (removed in Flux
//! 1.0) is an error of its own kind, [`TemplateError::RemovedField`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use tagline::git::template::{self, TemplateData};
//! use tagline::writer::{Change, ChangeSet, ObjectId};
//!
//! // Parse once, when the ImageUpdateAutomation is loaded...
//! let t = template::parse(
//!     "{{ .Values.cluster }}: {{ range .Changed.Changes }}{{ .NewValue }} {{ end }}",
//! )?;
//! // ...render per commit.
//! let mut changes = ChangeSet::new();
//! changes.entry("deploy.yaml".into()).or_default().insert(
//!     ObjectId::default(),
//!     vec![Change {
//!         old_value: "app:1.0.0".into(),
//!         new_value: "app:1.0.1".into(),
//!         setter: "flux-system:app".into(),
//!     }],
//! );
//! let values = BTreeMap::from([("cluster".to_string(), "prod".to_string())]);
//! let data = TemplateData {
//!     automation_namespace: "flux-system",
//!     automation_name: "apps",
//!     changes: &changes,
//!     values: &values,
//! };
//! assert_eq!(t.render(&data)?, "prod: app:1.0.1 ");
//! # Ok::<(), template::TemplateError>(())
//! ```
//!
//! Output is checked byte for byte against Go's `text/template` + Sprig (see
//! `tests/fixtures/templates/`). Where tagline differs, on purpose:
//! - order: `.Changed.Changes` visits files sorted, then objects in Go's map order (APIVersion,
//!   Kind, Name, Namespace); Flux's order is random. Sprig's `keys` and `values` are sorted.
//! - functions of Sprig's hermetic map that depend on time, randomness, crypto, semver or URL
//!   parsing, or mutate maps (`ago`, `shuffle`, `randInt`, `set`, `merge`, `semverCompare`,
//!   `genPrivateKey`, ...) are refused at parse time ("not supported by tagline"); the float
//!   functions (`addf`, `divf`, ...) compute in 128-bit decimals and fall back to floats past
//!   that;
//! - a render stops with an error past 4 MiB of output, 1,000,000 steps, 200 nested
//!   `template` calls or a function result over 4 MiB or 2^20 items, and parentheses or control structures nested deeper than 100 levels
//!   are refused at parse time (Go has no such limits);
//! - positions are 1-based line:column in characters, at the start of the expression (Go
//!   counts bytes from 0 and points at the last field of a chain); regular expressions use
//!   Rust's `regex` (RE2 syntax like Go's; error texts differ).

mod exec;
mod funcs;
mod gofmt;
mod parse;
mod value;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::writer::{Change, ChangeSet, ObjectId};
use value::{Field, Struct, Value};

/// The commit message Flux uses when no template is set.
pub const DEFAULT_MESSAGE: &str = "Update from image update automation";

/// Where Flux documents the template data (quoted in removed-field errors, as Flux does).
const DOCS_URL: &str =
    "https://fluxcd.io/flux/components/image/imageupdateautomations/#message-template";

/// What a template is rendered over.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    pub automation_namespace: &'a str,
    pub automation_name: &'a str,
    pub changes: &'a ChangeSet,
    /// `spec.git.commit.messageTemplateValues`.
    pub values: &'a BTreeMap<String, String>,
}

/// Why a template could not be parsed or rendered. Positions are 1-based `line:col` in the
/// template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is not valid Go template syntax (or calls an unknown function).
    #[error("commit message template: parse error at {line}:{col}: {message}")]
    Parse {
        line: usize,
        col: usize,
        message: String,
    },
    /// Rendering failed, e.g. a missing field, a type mismatch, a failing function.
    #[error("commit message template: execute error at {line}:{col}: executing at <{context}>: {message}")]
    Execute {
        line: usize,
        col: usize,
        /// The part of the template being evaluated.
        context: String,
        message: String,
    },
    /// The template uses a field Flux removed (`.Updated`, `.Changed.ImageResult`); Flux
    /// marks the automation Stalled with reason `RemovedTemplateField`.
    #[error(
        "commit message template: at {line}:{col}: {}",
        removed_field_message(field)
    )]
    RemovedField {
        line: usize,
        col: usize,
        /// `.Updated` or `.Changed.ImageResult`.
        field: String,
    },
}

impl TemplateError {
    /// Flux's condition reason for this error: `RemovedTemplateField` for a removed field
    /// (Flux marks the automation Stalled), `GitOperationFailed` otherwise (Flux retries).
    pub fn reason(&self) -> &'static str {
        match self {
            TemplateError::RemovedField { .. } => "RemovedTemplateField",
            _ => "GitOperationFailed",
        }
    }

    /// Whether trying again can succeed without a new template: an execute error depends on
    /// the changes (e.g. `index .Changed.Changes 2` with fewer changes); a parse error or a
    /// removed field needs the template fixed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TemplateError::Execute { .. })
    }
}

/// Flux's text for a removed field.
fn removed_field_message(field: &str) -> String {
    match field {
        ".Updated" => format!("template uses removed '.Updated' field. Please use '.Changed' instead. See: {DOCS_URL}"),
        ".Changed.ImageResult" => format!(
            "template uses removed '.Changed.ImageResult' field. Please use '.Changed.FileChanges' or '.Changed.Objects' instead. See: {DOCS_URL}"
        ),
        other => format!("template uses removed '{other}' field. See: {DOCS_URL}"),
    }
}

/// A parsed template, checked once (at load time) and rendered per commit. Two templates are
/// equal when their text is.
#[derive(Clone)]
pub struct Template {
    source: String,
    tree: parse::Tree,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

/// Parses a template; unknown functions are parse errors, as in Go. An empty template renders
/// empty text: Flux uses [`DEFAULT_MESSAGE`] when `messageTemplate` is empty or unset, so the
/// caller substitutes it before parsing.
pub fn parse(template: &str) -> Result<Template, TemplateError> {
    match parse::parse(template) {
        Ok(tree) => Ok(Template {
            source: template.to_string(),
            tree,
        }),
        Err(e) => {
            let (line, col) = line_col(template, e.pos);
            Err(TemplateError::Parse {
                line,
                col,
                message: e.message,
            })
        }
    }
}

/// Parses and renders in one step.
pub fn render(template: &str, data: &TemplateData) -> Result<String, TemplateError> {
    parse(template)?.render(data)
}

impl Template {
    /// The template text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template over the data.
    pub fn render(&self, data: &TemplateData) -> Result<String, TemplateError> {
        let mut ex = exec::Exec::new(&self.tree, template_data(data));
        match ex.run() {
            Ok(()) => Ok(ex.out),
            Err(exec::ExecError::Failed {
                pos,
                context,
                message,
            }) => {
                let (line, col) = line_col(&self.source, pos);
                Err(TemplateError::Execute {
                    line,
                    col,
                    context,
                    message,
                })
            }
            Err(exec::ExecError::Removed { pos, field }) => {
                let (line, col) = line_col(&self.source, pos);
                Err(TemplateError::RemovedField {
                    line,
                    col,
                    field: field.to_string(),
                })
            }
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

// ---------------------------------------------------------------------------------------------
// The data, shaped as Flux's Go types so that fields, printing and ordering match.

fn field(name: &'static str, value: Value) -> Field {
    Field {
        name,
        value,
        embedded: false,
        method: false,
    }
}

fn strukt(type_name: &'static str, fields: Vec<Field>, stringer: Option<String>) -> Value {
    Value::Struct(Rc::new(Struct {
        type_name,
        fields,
        stringer,
    }))
}

/// Flux's `update.ObjectIdentifier{yaml.ResourceIdentifier{TypeMeta{APIVersion, Kind},
/// NameMeta{Name, Namespace}}}`: `%v` prints `{{{apps/v1 Deployment} {name ns}}}`.
fn object_id(o: &ObjectId) -> Value {
    let type_meta = strukt(
        "yaml.TypeMeta",
        vec![
            field("APIVersion", Value::str(o.api_version.as_str())),
            field("Kind", Value::str(o.kind.as_str())),
        ],
        None,
    );
    let name_meta = strukt(
        "yaml.NameMeta",
        vec![
            field("Name", Value::str(o.name.as_str())),
            field("Namespace", Value::str(o.namespace.as_str())),
        ],
        None,
    );
    let rid = strukt(
        "yaml.ResourceIdentifier",
        vec![
            Field {
                name: "TypeMeta",
                value: type_meta,
                embedded: true,
                method: false,
            },
            Field {
                name: "NameMeta",
                value: name_meta,
                embedded: true,
                method: false,
            },
        ],
        None,
    );
    strukt(
        "update.ObjectIdentifier",
        vec![Field {
            name: "ResourceIdentifier",
            value: rid,
            embedded: true,
            method: false,
        }],
        None,
    )
}

fn change(c: &Change) -> Value {
    strukt(
        "update.Change",
        vec![
            field("OldValue", Value::str(c.old_value.as_str())),
            field("NewValue", Value::str(c.new_value.as_str())),
            field("Setter", Value::str(c.setter.as_str())),
        ],
        None,
    )
}

fn changes(list: &[Change]) -> Value {
    Value::list("[]update.Change", list.iter().map(change).collect())
}

/// An object identifier in Go's `fmtsort` order: APIVersion, Kind, Name, Namespace.
type GoKey<'a> = (&'a str, &'a str, &'a str, &'a str);

fn go_key(o: &ObjectId) -> GoKey<'_> {
    (&o.api_version, &o.kind, &o.name, &o.namespace)
}

fn go_order(a: &ObjectId, b: &ObjectId) -> std::cmp::Ordering {
    go_key(a).cmp(&go_key(b))
}

fn object_changes(objects: &[(&ObjectId, &[Change])]) -> Value {
    Value::map(
        "update.ObjectChanges",
        objects
            .iter()
            .map(|(o, cs)| (object_id(o), changes(cs)))
            .collect(),
        Value::list("[]update.Change", Vec::new()),
    )
}

/// Builds Flux's `TemplateData` value.
fn template_data(d: &TemplateData) -> Value {
    // FileChanges: file → ObjectChanges.
    let mut file_entries = Vec::new();
    // Objects(): merged across files, in file order, keyed in Go's order; Changes():
    // de-duplicated, in file then object order.
    let mut merged: BTreeMap<GoKey, (&ObjectId, Vec<Change>)> = BTreeMap::new();
    let mut all: Vec<Change> = Vec::new();
    let mut seen: BTreeSet<&Change> = BTreeSet::new();
    for (file, objs) in d.changes {
        let mut ordered: Vec<(&ObjectId, &[Change])> =
            objs.iter().map(|(o, cs)| (o, cs.as_slice())).collect();
        ordered.sort_by(|a, b| go_order(a.0, b.0));
        for &(o, cs) in &ordered {
            merged
                .entry(go_key(o))
                .or_insert_with(|| (o, Vec::new()))
                .1
                .extend(cs.iter().cloned());
            for c in cs {
                if seen.insert(c) {
                    all.push(c.clone());
                }
            }
        }
        file_entries.push((Value::str(file.as_str()), object_changes(&ordered)));
    }
    let merged: Vec<(&ObjectId, &[Change])> =
        merged.values().map(|(o, cs)| (*o, cs.as_slice())).collect();
    let file_changes = Value::map(
        "map[string]update.ObjectChanges",
        file_entries,
        Value::map("update.ObjectChanges", Vec::new(), Value::Nil),
    );
    let result = strukt(
        "update.Result",
        vec![
            field("FileChanges", file_changes),
            Field {
                name: "Changes",
                value: changes(&all),
                embedded: false,
                method: true,
            },
            Field {
                name: "Objects",
                value: object_changes(&merged),
                embedded: false,
                method: true,
            },
        ],
        None,
    );
    let automation = strukt(
        "types.NamespacedName",
        vec![
            field("Namespace", Value::str(d.automation_namespace)),
            field("Name", Value::str(d.automation_name)),
            Field {
                name: "String",
                value: Value::str(format!("{}/{}", d.automation_namespace, d.automation_name)),
                embedded: false,
                method: true,
            },
        ],
        Some(format!("{}/{}", d.automation_namespace, d.automation_name)),
    );
    let values = Value::map(
        "map[string]string",
        d.values
            .iter()
            .map(|(k, v)| (Value::str(k.as_str()), Value::str(v.as_str())))
            .collect(),
        Value::str(""),
    );
    strukt(
        "source.TemplateData",
        vec![
            field("AutomationObject", automation),
            field("Changed", result),
            field("Values", values),
        ],
        None,
    )
}
