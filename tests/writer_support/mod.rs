//! What the writer's golden runners share: reading a case's optional files and checking a
//! `Report` (or the refusal) against `expected`, `changes`, `notes` and `error`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tagline::image::ImageRef;
use tagline::writer::{Problem, Report, Setters};

pub fn load_setters(path: &Path) -> Setters {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let map: BTreeMap<String, ImageRef> =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    map
}

pub fn read_opt(dir: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dir.join(name)).ok()
}

/// Checks one case's result. `Ok(None)`: the expected refusal, or no output where none was
/// expected; `Ok(Some(output))`: the expected new bytes (the caller applies them again).
pub fn check_result(
    case: &str,
    dir: &Path,
    original: &[u8],
    expected: &[u8],
    result: Result<Report, Problem>,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(error) = read_opt(dir, "error") {
        let (line, text) = error
            .trim()
            .split_once(": ")
            .expect("error: <line>: <text>");
        return match result {
            Err(p) if p.line.to_string() == line && p.message.contains(text) => {
                if expected != original {
                    return Err(format!("{case}: an error case must expect the original"));
                }
                Ok(None)
            }
            other => Err(format!("{case}: expected error '{error}', got {other:?}")),
        };
    }
    let report = result.map_err(|p| format!("{case}: unexpected problem: {p}"))?;
    let output = report.applied.output.clone();
    match (&output, expected == original) {
        (None, true) => {}
        (None, false) => return Err(format!("{case}: no output, but expected changes")),
        (Some(_), true) => {
            return Err(format!(
                "{case}: file would be written though nothing should change"
            ))
        }
        (Some(out), false) if out != expected => {
            return Err(format!(
                "{case}: output differs\n--- expected\n{}\n--- actual\n{}",
                String::from_utf8_lossy(expected),
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
            return Err(format!("{case}: changes\n want {want:#?}\n got {got:#?}"));
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
            "{case}: notes\n want {want_notes:#?}\n got {got_notes:#?}"
        ));
    }
    Ok(output)
}
