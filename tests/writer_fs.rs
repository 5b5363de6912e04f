//! The writer's file side on real directory trees: which files are considered, atomic writes,
//! the change set, and the checkout boundary (symlinks, `update.path` escapes, size cap).

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use tagline::image::ImageRef;
use tagline::writer::fs::{update, update_with, Options, WriterError};
use tagline::writer::{render_plan, ObjectId, Setters};

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

const DEPLOY: &str = "---\n# app\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: reg/team/app:1.0.0 # {\"$imagepolicy\": \"flux-system:app\"}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app\n";

const TAG_ONLY: &str = "image:\n  repository: reg/team/app # {\"$imagepolicy\": \"flux-system:app:name\"}\n  tag: 1.0.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\n";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

#[test]
fn updates_marked_files_and_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "apps/deploy.yaml", DEPLOY);
    write(root, "apps/values.yml", TAG_ONLY);
    write(
        root,
        "apps/Kustomization",
        "images:\n  - name: app\n    newTag: 1.0.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\n",
    );
    write(root, "apps/notes.txt", TAG_ONLY);
    write(root, "apps/kustomization", TAG_ONLY);
    write(root, "apps/unmarked.yaml", "image: reg/team/app:1.0.0\n");
    write(root, ".git/config.yaml", TAG_ONLY);
    fs::set_permissions(
        root.join("apps/deploy.yaml"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let unmarked_before = fs::metadata(root.join("apps/unmarked.yaml")).unwrap();

    let up = update(root, "./apps", &setters()).unwrap();
    let paths: Vec<&str> = up.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["Kustomization", "deploy.yaml", "values.yml"]);
    assert_eq!(up.files[1].repo_path, "apps/deploy.yaml");
    assert!(up.diagnostics.is_empty(), "{:?}", up.diagnostics);
    // Nothing is written before write().
    assert_eq!(
        fs::read_to_string(root.join("apps/deploy.yaml")).unwrap(),
        DEPLOY
    );

    let object = ObjectId {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: "shop".into(),
        name: "app".into(),
    };
    let changes = &up.changes["deploy.yaml"][&object];
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].old_value, "reg/team/app:1.0.0");
    assert_eq!(changes[0].new_value, "reg/team/app:1.1.0");
    assert_eq!(changes[0].setter, "flux-system:app");

    up.write().unwrap();
    assert_eq!(
        fs::read_to_string(root.join("apps/deploy.yaml")).unwrap(),
        DEPLOY.replace("app:1.0.0", "app:1.1.0")
    );
    assert_eq!(
        fs::read_to_string(root.join("apps/values.yml")).unwrap(),
        TAG_ONLY.replace("tag: 1.0.0", "tag: 1.1.0")
    );
    let mode = fs::metadata(root.join("apps/deploy.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // Files not considered or without a change are untouched (same inode, same mtime).
    let unmarked_after = fs::metadata(root.join("apps/unmarked.yaml")).unwrap();
    assert_eq!(unmarked_before.ino(), unmarked_after.ino());
    assert_eq!(unmarked_before.mtime_nsec(), unmarked_after.mtime_nsec());
    assert_eq!(
        fs::read_to_string(root.join("apps/notes.txt")).unwrap(),
        TAG_ONLY
    );
    assert_eq!(
        fs::read_to_string(root.join("apps/kustomization")).unwrap(),
        TAG_ONLY
    );
    assert_eq!(
        fs::read_to_string(root.join(".git/config.yaml")).unwrap(),
        TAG_ONLY
    );
    // No temp file left behind.
    let left: Vec<_> = fs::read_dir(root.join("apps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tagline"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Second run: nothing to do.
    let again = update(root, "apps", &setters()).unwrap();
    assert!(again.files.is_empty());
    assert!(again.changes.is_empty());
}

#[test]
fn update_path_limits_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "yes/deploy.yaml", DEPLOY);
    write(dir.path(), "no/deploy.yaml", DEPLOY);
    let up = update(dir.path(), "yes", &setters()).unwrap();
    assert_eq!(up.files.len(), 1);
    assert_eq!(up.files[0].repo_path, "yes/deploy.yaml");
    assert_eq!(up.files[0].path, "deploy.yaml");
}

#[test]
fn a_write_refuses_a_file_changed_since_it_was_read() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deploy.yaml", DEPLOY);
    let up = update(dir.path(), ".", &setters()).unwrap();
    write(dir.path(), "deploy.yaml", "changed: meanwhile\n");
    assert!(matches!(up.write(), Err(WriterError::Write { .. })));
    assert_eq!(
        fs::read_to_string(dir.path().join("deploy.yaml")).unwrap(),
        "changed: meanwhile\n"
    );
}

#[test]
fn plan_renders_a_diff_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "apps/deploy.yaml", DEPLOY);
    let up = update(dir.path(), "apps", &setters()).unwrap();
    let plan = render_plan(&up);
    assert!(plan.contains("deploy.yaml:\n  Deployment shop/app: reg/team/app:1.0.0 -> reg/team/app:1.1.0 (flux-system:app)\n"), "{plan}");
    assert!(
        plan.contains("--- a/apps/deploy.yaml\n+++ b/apps/deploy.yaml\n"),
        "{plan}"
    );
    assert!(plan.contains("\n-          image: reg/team/app:1.0.0 # {\"$imagepolicy\": \"flux-system:app\"}\n+          image: reg/team/app:1.1.0 # {\"$imagepolicy\": \"flux-system:app\"}\n"), "{plan}");
}

fn messages(up: &tagline::writer::fs::Update) -> Vec<String> {
    up.diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

#[test]
fn symlink_to_a_file_outside_the_checkout_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("secret.yaml");
    fs::write(&target, DEPLOY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "apps/deploy.yaml", DEPLOY);
    symlink(&target, dir.path().join("apps/link.yaml")).unwrap();
    let up = update(dir.path(), "apps", &setters()).unwrap();
    let paths: Vec<&str> = up.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["deploy.yaml"]);
    assert_eq!(
        messages(&up),
        ["link.yaml: symlink leads out of the checkout; refused"]
    );
    up.write().unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), DEPLOY);
}

#[test]
fn symlink_to_a_directory_outside_the_checkout_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("deploy.yaml"), DEPLOY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("apps")).unwrap();
    symlink(outside.path(), dir.path().join("apps/ext")).unwrap();
    let up = update(dir.path(), "apps", &setters()).unwrap();
    assert!(up.files.is_empty());
    assert_eq!(
        messages(&up),
        ["ext: symlink leads out of the checkout; refused"]
    );
    // update.path itself through the link is an escape.
    assert!(matches!(
        update(dir.path(), "apps/ext", &setters()),
        Err(WriterError::PathEscapes(_))
    ));
    assert_eq!(
        fs::read_to_string(outside.path().join("deploy.yaml")).unwrap(),
        DEPLOY
    );
}

#[test]
fn dangling_symlink_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deploy.yaml", DEPLOY);
    symlink(
        dir.path().join("gone.yaml"),
        dir.path().join("dangling.yaml"),
    )
    .unwrap();
    let up = update(dir.path(), "", &setters()).unwrap();
    assert_eq!(up.files.len(), 1);
    assert_eq!(messages(&up), ["dangling.yaml: dangling symlink; skipped"]);
}

#[test]
fn symlink_inside_the_checkout_is_not_read_through() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "real/deploy.yaml", DEPLOY);
    fs::create_dir(dir.path().join("apps")).unwrap();
    symlink(
        dir.path().join("real/deploy.yaml"),
        dir.path().join("apps/link.yaml"),
    )
    .unwrap();
    symlink(dir.path().join("real"), dir.path().join("apps/dirlink")).unwrap();
    let up = update(dir.path(), "apps", &setters()).unwrap();
    assert!(up.files.is_empty());
    assert_eq!(
        messages(&up),
        ["link.yaml: symlink to a file outside update.path; not followed"]
    );
    // Walked from the root, the real file is updated once, at its own path.
    let up = update(dir.path(), ".", &setters()).unwrap();
    let paths: Vec<&str> = up.files.iter().map(|f| f.repo_path.as_str()).collect();
    assert_eq!(paths, ["real/deploy.yaml"]);
    assert!(up.diagnostics.is_empty(), "{:?}", up.diagnostics);
}

#[test]
fn update_path_cannot_escape() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("repo");
    write(&root, "deploy.yaml", DEPLOY);
    write(parent.path(), "sibling/deploy.yaml", DEPLOY);
    for bad in ["..", "../sibling", "a/../../sibling", "/etc", "./../repo"] {
        assert!(
            matches!(
                update(&root, bad, &setters()),
                Err(WriterError::PathEscapes(_))
            ),
            "{bad}"
        );
    }
    symlink(parent.path().join("sibling"), root.join("out")).unwrap();
    assert!(matches!(
        update(&root, "out", &setters()),
        Err(WriterError::PathEscapes(_))
    ));
    assert!(matches!(
        update(&root, "missing", &setters()),
        Err(WriterError::Walk { .. })
    ));
    assert_eq!(
        fs::read_to_string(parent.path().join("sibling/deploy.yaml")).unwrap(),
        DEPLOY
    );
}

#[test]
fn a_file_above_the_size_cap_is_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "big.yaml",
        &format!("{DEPLOY}# {}\n", "x".repeat(2000)),
    );
    write(dir.path(), "small.yaml", DEPLOY);
    let options = Options {
        max_file_size: 1024,
        ..Options::default()
    };
    let up = update_with(dir.path(), ".", &setters(), &options).unwrap();
    let paths: Vec<&str> = up.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["small.yaml"]);
    assert_eq!(
        messages(&up),
        ["big.yaml: file is larger than 1024 bytes; not read"]
    );
}

#[test]
fn sourceignore_and_extra_patterns_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".sourceignore",
        "# comment\nignored/\n*.skip.yaml\n",
    );
    write(
        dir.path(),
        "apps/.sourceignore",
        "local.yaml\n!keep.skip.yaml\n",
    );
    for p in [
        "ignored/deploy.yaml",
        "apps/a.skip.yaml",
        "apps/keep.skip.yaml",
        "apps/local.yaml",
        "apps/deploy.yaml",
        "other/local.yaml",
        "extra/deploy.yaml",
    ] {
        write(dir.path(), p, DEPLOY);
    }
    let options = Options {
        ignore: vec!["/extra/".into()],
        ..Options::default()
    };
    let up = update_with(dir.path(), ".", &setters(), &options).unwrap();
    let paths: Vec<&str> = up.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "apps/deploy.yaml",
            "apps/keep.skip.yaml",
            "other/local.yaml"
        ]
    );
    // The root's .sourceignore applies when update.path is below it.
    let up = update(dir.path(), "ignored", &setters()).unwrap();
    assert!(up.files.is_empty());
    let up = update(dir.path(), "apps", &setters()).unwrap();
    let paths: Vec<&str> = up.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["deploy.yaml", "keep.skip.yaml"]);
}

#[test]
fn unparsable_and_unknown_markers_are_diagnostics_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "other.yaml",
        "image: a:1 # {\"$imagepolicy\": \"elsewhere:app\"}\n",
    );
    write(
        dir.path(),
        "broken.yaml",
        "a: [\nimage: \"{{ x }}\" # {\"$imagepolicy\": \"flux-system:app\"}\n",
    );
    write(
        dir.path(),
        "nonscalar.yaml",
        "image: # {\"$imagepolicy\": \"flux-system:app\"}\n  a: b\n",
    );
    let up = update(dir.path(), ".", &setters()).unwrap();
    assert!(up.files.is_empty());
    let got: Vec<(String, Option<usize>)> = up
        .diagnostics
        .iter()
        .map(|d| (d.path.clone(), d.line))
        .collect();
    assert_eq!(
        got,
        [
            ("broken.yaml".to_string(), Some(2)),
            ("nonscalar.yaml".to_string(), Some(1)),
            ("other.yaml".to_string(), Some(1)),
        ]
    );
    assert!(up.diagnostics[0].message.contains("ambiguous"));
    assert!(up.diagnostics[1]
        .message
        .contains("not on the line of a scalar"));
    assert!(up.diagnostics[2].message.contains("elsewhere"));
}

#[test]
fn a_refused_write_replaces_no_file_at_all() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", DEPLOY);
    write(dir.path(), "b.yaml", DEPLOY);
    let up = update(dir.path(), ".", &setters()).unwrap();
    assert_eq!(up.files.len(), 2);
    // b.yaml changes after the walk: a.yaml, prepared first, must not be replaced either.
    write(dir.path(), "b.yaml", &DEPLOY.replace("# app", "# edited"));
    assert!(matches!(up.write(), Err(WriterError::Write { ref path, .. }) if path == "b.yaml"));
    assert_eq!(
        fs::read_to_string(dir.path().join("a.yaml")).unwrap(),
        DEPLOY
    );
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "temp files left: {names:?}");
}

#[test]
fn discover_lists_only_screened_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a/deploy.yaml", DEPLOY);
    write(root, "a/b/values.yml", TAG_ONLY);
    write(root, "a/plain.yaml", "image: x:1\n");
    write(root, "a/readme.md", TAG_ONLY);
    write(root, ".git/x.yaml", TAG_ONLY);
    write(root, "Kustomization", TAG_ONLY);
    let (found, diags) = tagline::writer::fs::discover(root, ".", &Options::default()).unwrap();
    assert_eq!(found, ["Kustomization", "a/b/values.yml", "a/deploy.yaml"]);
    assert!(diags.is_empty());
}
