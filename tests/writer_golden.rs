//! Golden cases for the writer: every `tests/fixtures/<case>/` holds `original` and `expected`
//! bytes, optionally its own `setters.yaml` (else the shared `tests/fixtures/setters.yaml`),
//! `changes` (one line per change: `<kind>/<namespace>/<name>: <old> -> <new> (<setter>)`),
//! `notes` (one line per diagnostic: `<line>: <text the message contains>`) and `error`
//! (`<line>: <text>`, when the file must be refused and left alone).

mod writer_support;

use std::fs;
use std::path::Path;

use tagline::writer::{apply, apply_report, Setters};
use writer_support::{check_result, load_setters};

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
    // Applying again changes nothing.
    if let Some(out) = check_result(&name, dir, &original, &expected, result)? {
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
