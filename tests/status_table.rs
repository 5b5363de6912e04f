//! Golden cases for `tagline status`'s table: every `tests/fixtures/status/<case>/` holds a
//! status document (`original`, as `/api/v1/status` serves it) and the table it renders
//! (`expected`). `TAGLINE_BLESS=1` rewrites the expected files.

use std::fs;
use std::path::Path;

use tagline::cli::status::render_table;
use tagline::status::Document;

#[test]
fn tables_match_their_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/status");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("original").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 2, "cases missing: {cases:?}");
    for case in cases {
        let text = fs::read_to_string(case.join("original")).unwrap();
        let document: Document =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let table = render_table(&document.images);
        let expected_path = case.join("expected");
        if std::env::var_os("TAGLINE_BLESS").is_some() {
            fs::write(&expected_path, &table).unwrap();
        }
        let expected = fs::read_to_string(&expected_path).unwrap();
        assert_eq!(table, expected, "{}", case.display());
    }
}
