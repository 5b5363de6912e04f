//! Golden cases for the writer: every `tests/fixtures/<case>/` holds `original` and `expected`
//! bytes, optionally its own `setters.yaml` (else the shared `tests/fixtures/setters.yaml`),
//! `changes` (one line per change: `<kind>/<namespace>/<name>: <old> -> <new> (<setter>)`),
//! `notes` (one line per diagnostic: `<line>: <text the message contains>`) and `error`
//! (`<line>: <text>`, when the file must be refused and left alone).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tagline::image::ImageRef;
use tagline::writer::{apply, apply_report, Setters};

fn load_setters(path: &Path) -> Setters {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let map: BTreeMap<String, ImageRef> =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    map
}

fn read_opt(dir: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dir.join(name)).ok()
}

fn check_case(dir: &Path, shared: &Setters) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let original = fs::read(dir.join("original")).map_err(|e| format!("{name}: original: {e}"))?;
    let expected = fs::read(dir.join("expected")).map_err(|e| format!("{name}: expected: {e}"))?;
    let setters = if dir.join("setters.yaml").exists() {
        load_setters(&dir.join("setters.yaml"))
    } else {
        shared.clone()
    };
    let result = apply_report(&original, &setters);
    if let Some(error) = read_opt(dir, "error") {
        let (line, text) = error
            .trim()
            .split_once(": ")
            .expect("error: <line>: <text>");
        return match result {
            Err(p) if p.line.to_string() == line && p.message.contains(text) => {
                if expected != original {
                    return Err(format!("{name}: an error case must expect the original"));
                }
                Ok(())
            }
            other => Err(format!("{name}: expected error '{error}', got {other:?}")),
        };
    }
    let report = result.map_err(|p| format!("{name}: unexpected problem: {p}"))?;
    let output = report.applied.output.clone();
    match (&output, expected == original) {
        (None, true) => {}
        (None, false) => return Err(format!("{name}: no output, but expected changes")),
        (Some(_), true) => {
            return Err(format!(
                "{name}: file would be written though nothing should change"
            ))
        }
        (Some(out), false) if out != &expected => {
            return Err(format!(
                "{name}: output differs\n--- expected\n{}\n--- actual\n{}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(out)
            ))
        }
        _ => {}
    }
    if let Some(want) = read_opt(dir, "changes") {
        let got: Vec<String> = report
            .applied
            .changes
            .iter()
            .map(|(o, c)| {
                format!(
                    "{}/{}/{}: {} -> {} ({})",
                    o.kind, o.namespace, o.name, c.old_value, c.new_value, c.setter
                )
            })
            .collect();
        let want: Vec<&str> = want.lines().filter(|l| !l.is_empty()).collect();
        if got != want {
            return Err(format!("{name}: changes\n want {want:#?}\n got {got:#?}"));
        }
    }
    let want_notes: Vec<String> = read_opt(dir, "notes")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let got_notes: Vec<String> = report
        .notes
        .iter()
        .map(|n| format!("{}: {}", n.line, n.message))
        .collect();
    let notes_ok = want_notes.len() == got_notes.len()
        && want_notes.iter().zip(&got_notes).all(|(w, g)| {
            let (line, text) = w.split_once(": ").expect("notes: <line>: <text>");
            g.starts_with(&format!("{line}: ")) && g.contains(text)
        });
    if !notes_ok {
        return Err(format!(
            "{name}: notes\n want {want_notes:#?}\n got {got_notes:#?}"
        ));
    }
    // Applying again changes nothing.
    if let Some(out) = output {
        let again = apply(&out, &setters).map_err(|p| format!("{name}: second apply: {p}"))?;
        if again.output.is_some() {
            return Err(format!("{name}: a second apply changed the file again"));
        }
    }
    Ok(())
}

#[test]
fn golden_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let shared = load_setters(&root.join("setters.yaml"));
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("original").exists())
        .collect();
    cases.sort();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(c, &shared).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    assert!(cases.len() >= 60, "only {} golden cases", cases.len());
}
