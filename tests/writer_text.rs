//! Other text files (Dockerfile, Terraform, jsonnet, `.env`): golden cases in
//! `tests/fixtures/text/<case>/` (`name` is the file name that chooses the comment syntax, then
//! `original`, `expected`, optional `changes`, `notes`, `error` as in `writer_golden`), and the
//! `Options::text_files` globs on real trees.

mod writer_support;

use std::fs;
use std::path::Path;

use tagline::image::ImageRef;
use tagline::writer::fs::{update, update_with, Options};
use tagline::writer::{apply_text, render_plan, Setters};
use writer_support::{check_result, load_setters};

fn check_case(dir: &Path, setters: &Setters) -> Result<(), String> {
    let case = dir.file_name().unwrap().to_string_lossy().to_string();
    let name = fs::read_to_string(dir.join("name")).map_err(|e| format!("{case}: name: {e}"))?;
    let original = fs::read(dir.join("original")).map_err(|e| format!("{case}: {e}"))?;
    let expected = fs::read(dir.join("expected")).map_err(|e| format!("{case}: {e}"))?;
    let result = apply_text(name.trim(), &original, setters);
    let changes = result
        .as_ref()
        .map(|r| r.applied.changes.clone())
        .unwrap_or_default();
    if let Some(out) = check_result(&case, dir, &original, &expected, result)? {
        only_values_changed(&original, &out, &changes).map_err(|e| format!("{case}: {e}"))?;
        let again = apply_text(name.trim(), &out, setters)
            .map_err(|p| format!("{case}: second apply: {p}"))?;
        if again.applied.output.is_some() {
            return Err(format!("{case}: a second apply changed the file again"));
        }
    }
    Ok(())
}

/// Every changed line differs from the original in one span: an old value replaced by its new
/// value, as the change list says; line breaks and every other byte are kept.
fn only_values_changed(
    original: &[u8],
    out: &[u8],
    changes: &[(tagline::writer::ObjectId, tagline::writer::Change)],
) -> Result<(), String> {
    let split =
        |b: &[u8]| -> Vec<Vec<u8>> { b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect() };
    let (a, b) = (split(original), split(out));
    if a.len() != b.len() {
        return Err("the number of lines changed".into());
    }
    let mut edited = 0;
    for (x, y) in a.iter().zip(&b).filter(|(x, y)| x != y) {
        // Some change's old value sits in `x` where its new value sits in `y`, and the bytes
        // before and after it are the same.
        let ok = changes.iter().any(|(_, c)| {
            let (old, new) = (c.old_value.as_bytes(), c.new_value.as_bytes());
            (0..=x.len().saturating_sub(old.len())).any(|p| {
                x[p..].starts_with(old)
                    && y.len() >= p + new.len()
                    && y[..p] == x[..p]
                    && &y[p..p + new.len()] == new
                    && y[p + new.len()..] == x[p + old.len()..]
            })
        });
        if !ok {
            return Err(format!(
                "a line changed outside a value: {:?} -> {:?}",
                String::from_utf8_lossy(x),
                String::from_utf8_lossy(y)
            ));
        }
        edited += 1;
    }
    if edited != changes.len() {
        return Err(format!(
            "{edited} lines edited for {} changes",
            changes.len()
        ));
    }
    Ok(())
}

#[test]
fn golden_text_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let setters = load_setters(&root.join("setters.yaml"));
    let mut cases: Vec<_> = fs::read_dir(root.join("text"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("original").exists())
        .collect();
    cases.sort();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(c, &setters).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    assert!(cases.len() >= 10, "only {} text cases", cases.len());
}

fn setters() -> Setters {
    let mut s = Setters::new();
    s.insert(
        "flux-system:app".into(),
        ImageRef {
            name: "reg/team/app".into(),
            tag: "1.1.0".into(),
            digest: None,
        },
    );
    s
}

const DOCKERFILE: &str = "FROM reg/team/app:1.0.0 # {\"$imagepolicy\": \"flux-system:app\"}\n";
const TF: &str = "image = \"reg/team/app:1.0.0\" # {\"$imagepolicy\": \"flux-system:app\"}\n";
const YAML: &str = "image: reg/team/app:1.0.0 # {\"$imagepolicy\": \"flux-system:app\"}\n";

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("apps/Dockerfile", DOCKERFILE),
        ("apps/sub/Dockerfile", DOCKERFILE),
        ("apps/infra/main.tf", TF),
        ("apps/infra/skip.tf", TF),
        ("apps/deploy.yaml", YAML),
        ("apps/notes.txt", DOCKERFILE),
        ("Dockerfile", DOCKERFILE),
    ];
    for (p, text) in files {
        let p = dir.path().join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

fn paths(up: &tagline::writer::fs::Update) -> Vec<&str> {
    up.files.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn text_files_are_off_by_default() {
    let dir = tree();
    assert!(Options::default().text_files.is_empty());
    let up = update(dir.path(), "apps", &setters()).unwrap();
    assert_eq!(paths(&up), ["deploy.yaml"]);
    assert!(up.diagnostics.is_empty(), "{:?}", up.diagnostics);
}

#[test]
fn only_files_matching_the_globs_are_touched() {
    let dir = tree();
    let options = Options {
        text_files: vec!["/Dockerfile".into(), "**/*.tf".into(), "!skip.tf".into()],
        ..Options::default()
    };
    let up = update_with(dir.path(), "apps", &setters(), &options).unwrap();
    assert_eq!(paths(&up), ["Dockerfile", "deploy.yaml", "infra/main.tf"]);
    let changes = &up.changes["infra/main.tf"][&Default::default()];
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].old_value.as_str(), changes[0].new_value.as_str()),
        ("reg/team/app:1.0.0", "reg/team/app:1.1.0")
    );
    assert_eq!(changes[0].setter, "flux-system:app");
    up.write().unwrap();
    let read = |p: &str| fs::read_to_string(dir.path().join(p)).unwrap();
    assert_eq!(
        read("apps/Dockerfile"),
        DOCKERFILE.replace("1.0.0", "1.1.0")
    );
    assert_eq!(read("apps/infra/main.tf"), TF.replace("1.0.0", "1.1.0"));
    for untouched in [
        "apps/sub/Dockerfile",
        "apps/infra/skip.tf",
        "apps/notes.txt",
        "Dockerfile",
    ] {
        assert!(read(untouched).contains("1.0.0"), "{untouched} was changed");
    }
    // A glob without a slash matches at any depth; a glob matching YAML keeps the YAML path.
    let options = Options {
        text_files: vec!["Dockerfile".into(), "*.yaml".into()],
        ..Options::default()
    };
    let up = update_with(dir.path(), "apps", &setters(), &options).unwrap();
    assert_eq!(paths(&up), ["sub/Dockerfile"]);
    // A directory pattern selects every file under it (main.tf was written above; skip.tf,
    // excluded before, is selected now).
    let options = Options {
        text_files: vec!["infra/".into()],
        ..Options::default()
    };
    let up = update_with(dir.path(), "apps", &setters(), &options).unwrap();
    assert_eq!(paths(&up), ["infra/skip.tf"]);
}

#[test]
fn an_ambiguous_text_file_is_left_alone_with_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{DOCKERFILE}ENV A=1 B=2 # {{\"$imagepolicy\": \"flux-system:app:tag\"}}\n");
    fs::write(dir.path().join("Dockerfile"), &text).unwrap();
    let options = Options {
        text_files: vec!["Dockerfile".into()],
        ..Options::default()
    };
    let up = update_with(dir.path(), ".", &setters(), &options).unwrap();
    assert!(up.files.is_empty());
    assert!(up.changes.is_empty());
    assert_eq!(up.diagnostics.len(), 1, "{:?}", up.diagnostics);
    assert_eq!(up.diagnostics[0].path, "Dockerfile");
    assert_eq!(up.diagnostics[0].line, Some(2));
    assert!(up.diagnostics[0].message.contains("ambiguous"));
}

#[test]
fn a_single_text_file_as_update_path_and_its_plan() {
    let dir = tree();
    let globs = |g: &str| Options {
        text_files: vec![g.into()],
        ..Options::default()
    };
    let up = update_with(dir.path(), "apps/infra/main.tf", &setters(), &globs("*.tf")).unwrap();
    // (`path` is relative to `update.path`, here the file itself.)
    assert_eq!(up.files.len(), 1);
    assert_eq!(up.files[0].repo_path, "apps/infra/main.tf");
    let plan = render_plan(&up);
    assert!(
        plan.contains("  (text file): reg/team/app:1.0.0 -> reg/team/app:1.1.0 (flux-system:app)"),
        "{plan}"
    );
    assert!(plan.contains("+image = \"reg/team/app:1.1.0\""), "{plan}");
    // Not selected by the globs: nothing, not even a diagnostic.
    let up = update_with(
        dir.path(),
        "apps/infra/main.tf",
        &setters(),
        &globs("*.json"),
    )
    .unwrap();
    assert!(up.files.is_empty() && up.diagnostics.is_empty());
}
