//! Golden tests for commit-message templates: every `tests/fixtures/templates/<case>/` holds a
//! `template.tmpl`, optional `data.json` (else `default-data.json`), and either `expected.txt`
//! (the exact text Go's text/template + Sprig rendered, see `oracle/oracle.go`) or
//! `go-error.txt` (Go's error: the same kind and position must be reported here).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tagline::git::template::{self, TemplateData, TemplateError};
use tagline::writer::{Change, ChangeSet, ObjectId};

struct Data {
    namespace: String,
    name: String,
    changes: ChangeSet,
    values: BTreeMap<String, String>,
}

fn load(path: &Path) -> Data {
    let text = fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut changes = ChangeSet::new();
    for (file, objects) in v["files"].as_object().unwrap() {
        let entry = changes.entry(file.clone()).or_default();
        for o in objects.as_array().unwrap() {
            let id = ObjectId {
                api_version: s(&o["object"], "apiVersion"),
                kind: s(&o["object"], "kind"),
                namespace: s(&o["object"], "namespace"),
                name: s(&o["object"], "name"),
            };
            let list = entry.entry(id).or_default();
            for c in o["changes"].as_array().unwrap() {
                list.push(Change {
                    old_value: s(c, "old"),
                    new_value: s(c, "new"),
                    setter: s(c, "setter"),
                });
            }
        }
    }
    let values = v["values"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Data {
        namespace: s(&v["automation"], "namespace"),
        name: s(&v["automation"], "name"),
        changes,
        values,
    }
}

/// `template: commit message:LINE[:COL]: ...` → (line, col).
fn go_position(err: &str) -> (usize, Option<usize>) {
    let rest = err.split("commit message:").nth(1).expect("Go position");
    let mut parts = rest.split(':');
    let line = parts.next().unwrap().trim().parse().unwrap();
    let col = parts.next().and_then(|c| c.trim().parse().ok());
    (line, col)
}

#[test]
fn templates_render_as_go_and_sprig_do() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("template.tmpl").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "fixtures missing: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let tmpl = fs::read_to_string(case.join("template.tmpl")).unwrap();
        let data_path = if case.join("data.json").exists() {
            case.join("data.json")
        } else {
            root.join("default-data.json")
        };
        let d = load(&data_path);
        let data = TemplateData {
            automation_namespace: &d.namespace,
            automation_name: &d.name,
            changes: &d.changes,
            values: &d.values,
        };
        let got = template::render(&tmpl, &data);
        if let Ok(expected) = fs::read_to_string(case.join("expected.txt")) {
            match got {
                Ok(text) if text == expected => {}
                Ok(text) => failures.push(format!(
                    "{name}: output differs\n--- expected\n{expected}\n--- got\n{text}\n"
                )),
                Err(e) => failures.push(format!("{name}: unexpected error {e}")),
            }
            continue;
        }
        let go_err = fs::read_to_string(case.join("go-error.txt"))
            .unwrap_or_else(|_| panic!("{name}: no expected.txt nor go-error.txt"));
        let (go_line, go_col) = go_position(&go_err);
        match (got, go_err.starts_with("PARSE")) {
            (Err(TemplateError::Parse { line, .. }), true) if line == go_line => {}
            // Go's column is a 0-based byte offset; ours is 1-based (ASCII fixtures).
            (Err(TemplateError::Execute { line, col, .. }), false)
                if line == go_line && Some(col - 1) == go_col => {}
            // Flux turns Go's "can't evaluate field Updated ..." into RemovedTemplateField.
            (Err(TemplateError::RemovedField { line, field, .. }), false)
                if line == go_line
                    && go_err.contains(match field.as_str() {
                        ".Updated" => "can't evaluate field Updated in type source.TemplateData",
                        _ => "can't evaluate field ImageResult in type update.Result",
                    }) => {}
            (other, _) => failures.push(format!("{name}: expected like {go_err:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The oracle's Go 1.19 cannot range over an integer; Go 1.22 and later (which Flux is built
/// with) can, and refuse two variables with this message instead.
fn newer_go_ranges_over_int(go: &str, ours: &str) -> bool {
    go.strip_prefix("range can't iterate over ")
        .filter(|n| n.parse::<i64>().is_ok())
        .is_some_and(|n| ours == format!("can't use {n} to iterate over more than one variable"))
}

/// What Go said: the message after the position and context.
fn go_message(err: &str) -> &str {
    let rest = err.split("commit message:").nth(1).unwrap_or(err);
    match rest.split_once(">: ") {
        Some((_, m)) if err.starts_with("EXECUTE") => m,
        _ => rest.split_once(": ").map(|x| x.1).unwrap_or(rest),
    }
}

/// Hand-written one-line templates: edge cases of the language, fmt and Sprig.
#[test]
fn one_line_templates_render_and_fail_as_go_and_sprig_do() {
    one_line_templates("lines");
}

/// Random one-line templates (`oracle/gen_random.py`), mostly combinations that fail.
#[test]
fn random_templates_render_and_fail_as_go_and_sprig_do() {
    one_line_templates("random");
}

/// Fixture templates with a character deleted, inserted or duplicated (`oracle/gen_mutants.py`):
/// the lexer and parser accept and reject what Go's do.
#[test]
fn mutated_templates_parse_and_fail_as_go_does() {
    one_line_templates("mutants");
}

/// Control structures, variables, define/template/block, trim markers around newlines
/// (`oracle/gen_control.py`).
#[test]
fn control_structures_render_as_go_does() {
    one_line_templates("control");
}

/// `printf` with random flags, widths, precisions and verbs over every kind of value
/// (`oracle/gen_printf.py`).
#[test]
fn printf_formats_as_go_does() {
    one_line_templates("printf");
}

fn one_line_templates(set: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let cases: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join(set).join("expected.json")).unwrap())
            .unwrap();
    let d = load(&root.join("default-data.json"));
    let data = TemplateData {
        automation_namespace: &d.namespace,
        automation_name: &d.name,
        changes: &d.changes,
        values: &d.values,
    };
    let cases = cases.as_array().unwrap();
    assert!(cases.len() > 100);
    let mut failures = Vec::new();
    let mut skipped = 0;
    for case in cases {
        let tmpl = case["template"].as_str().unwrap();
        let got = template::render(tmpl, &data);
        // Go 1.19 (the oracle) cannot range over an integer, newer Go (Flux's) can: what
        // follows the range is not comparable.
        if let Some(go) = case["error"].as_str() {
            if go_message(go)
                .strip_prefix("range can't iterate over ")
                .is_some_and(|n| n.parse::<i64>().is_ok())
                && !matches!(got, Err(TemplateError::Execute { ref message, .. }) if message.contains("iterate over more than one variable"))
            {
                skipped += 1;
                continue;
            }
        }
        match (case["output"].as_str(), case["error"].as_str(), got) {
            (Some(want), _, Ok(text)) if text == want => {}
            (None, None, Ok(text)) if text.is_empty() => {}
            (_, Some(go), Err(e)) => {
                let kind_ok = match &e {
                    TemplateError::Parse { .. } => go.starts_with("PARSE"),
                    TemplateError::Execute { .. } | TemplateError::RemovedField { .. } => {
                        go.starts_with("EXECUTE")
                    }
                };
                let ours = match &e {
                    TemplateError::Parse { message, .. } => message.clone(),
                    TemplateError::Execute { message, .. } => message.clone(),
                    // Flux recognises Go's error by these texts and reports RemovedTemplateField.
                    TemplateError::RemovedField { field, .. } => match field.as_str() {
                        ".Updated" => "can't evaluate field Updated in type source.TemplateData",
                        _ => "can't evaluate field ImageResult in type update.Result",
                    }
                    .to_string(),
                };
                let want = go_message(go);
                // Parse messages are Go's lexer/parser wording, which we match only in part:
                // the kind and line must agree. Execute messages must agree exactly.
                let message_ok = match &e {
                    TemplateError::Parse { line, .. } => go_position(go).0 == *line,
                    _ => want == ours || newer_go_ranges_over_int(want, &ours),
                };
                if !kind_ok || !message_ok {
                    failures.push(format!("{tmpl}\n    go:   {go}\n    ours: {e}"));
                }
            }
            (want, go, got) => failures.push(format!(
                "{tmpl}\n    go:   {:?}\n    ours: {got:?}",
                want.or(go)
            )),
        }
    }
    assert!(skipped * 50 < cases.len(), "{skipped} cases skipped");
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
