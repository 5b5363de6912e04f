//! The writer's file side on real directory trees: which files are considered, atomic writes,
//! the change set, and the checkout boundary (symlinks, `update.path` escapes, size cap).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tagline::image::ImageRef;
use tagline::writer::fs::{update, WriterError};
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
