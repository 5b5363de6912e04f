//! Git write-back end to end: review branches, push options seen by the server's hook, and
//! signed commits checked by `git verify-commit`, with the real registry and git http-backend.

mod common;
mod e2e_support;

use std::process::Command;

use common::*;
use e2e_support::*;

fn plain() -> Setup {
    setup(
        Registry::start(RegistryOptions::default()),
        GitServer::start(GitOptions::default()),
    )
}

fn configure(s: &Setup, extra: &Extra) {
    s.config.write(
        "objects.yaml",
        &objects_with(s.registry, s.git, &s.image, &s.fleet, "^1.0.0", extra),
    );
}

#[test]
fn review_branch_is_created_kept_and_rebuilt_when_the_checkout_branch_moves() {
    let s = plain();
    configure(
        &s,
        &Extra {
            git: "    push:\n      branch: tagline/updates\n".into(),
            ..Default::default()
        },
    );

    let first = run_once(&s.config);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        s.git.head(&s.fleet, "main").as_deref(),
        Some(s.initial_head.as_str()),
        "main untouched"
    );
    let review = s.git.log(&s.fleet, "tagline/updates");
    assert_eq!(review.len(), 2, "one commit on top of main: {review:#?}");
    assert_eq!(review[0].parents, vec![s.initial_head.clone()]);
    assert!(s
        .git
        .file(&s.fleet, "tagline/updates", "deploy/app.yaml")
        .contains(":1.2.0 #"));

    // Nothing changed: the branch is not pushed again.
    let second = run_once(&s.config);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        s.git.head(&s.fleet, "tagline/updates").as_deref(),
        Some(review[0].sha.as_str())
    );
    assert!(
        line(&second, "ImageUpdateAutomation default/fleet")
            .contains("already holds these changes"),
        "{}",
        second.stderr
    );

    // Someone pushes to main: the review branch is rebuilt on the new tip, still one commit.
    s.git.commit(
        &s.fleet,
        "main",
        &[("README.md", "hello\n")],
        "docs: readme",
    );
    let new_main = s.git.head(&s.fleet, "main").unwrap();
    assert_ne!(new_main, s.initial_head);
    let third = run_once(&s.config);
    assert_eq!(third.code, 0, "{}", third.stderr);
    let review = s.git.log(&s.fleet, "tagline/updates");
    assert_eq!(
        review[0].parents,
        vec![new_main.clone()],
        "rebuilt on the new tip"
    );
    assert_eq!(
        s.git.file(&s.fleet, "tagline/updates", "README.md"),
        "hello\n"
    );
    assert_eq!(
        s.git.head(&s.fleet, "main").as_deref(),
        Some(new_main.as_str()),
        "main untouched"
    );
}

#[test]
fn push_options_reach_the_server() {
    let s = plain();
    let record = s.git.git_dir(&s.fleet).join("push-options.log");
    s.git.set_hook(
        &s.fleet,
        "pre-receive",
        &format!(
            "#!/bin/sh\ni=0\nwhile [ $i -lt ${{GIT_PUSH_OPTION_COUNT:-0}} ]; do\n  eval echo \\$GIT_PUSH_OPTION_$i >> {}\n  i=$((i+1))\ndone\ncat >/dev/null\nexit 0\n",
            record.display()
        ),
    );
    git()
        .arg("--git-dir")
        .arg(s.git.git_dir(&s.fleet))
        .args(["config", "receive.advertisePushOptions", "true"])
        .status()
        .unwrap();
    configure(
        &s,
        &Extra {
            git: "    push:\n      options:\n        merge_request.create: ''\n        merge_request.target: main\n".into(),
            ..Default::default()
        },
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seen = std::fs::read_to_string(&record).expect("the hook recorded push options");
    assert_eq!(seen, "merge_request.create=\nmerge_request.target=main\n");
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
}

#[test]
fn a_rejected_push_is_a_failure_and_nothing_lands() {
    let s = plain();
    s.git.set_hook(
        &s.fleet,
        "pre-receive",
        "#!/bin/sh\necho 'protected branch' >&2\nexit 1\n",
    );
    let run = run_once(&s.config);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let l = line(&run, "ImageUpdateAutomation default/fleet");
    assert!(l.contains("failed") && l.contains("main"), "{l}");
    assert_eq!(s.git.log(&s.fleet, "main").len(), 1);
}

#[test]
fn ssh_signed_commits_verify_with_git() {
    let s = plain();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("signing");
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "bot@example.com",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let private = std::fs::read_to_string(&key).unwrap();
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    s.config.write(
        "signing.yaml",
        &secret("signing", "Opaque", &[("identity", &private)]),
    );
    configure(
        &s,
        &Extra {
            commit: "      signingKey:\n        type: ssh\n        secretRef:\n          name: signing\n".into(),
            ..Default::default()
        },
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("PRIVATE KEY"));
    let signers = keys.path().join("allowed_signers");
    std::fs::write(&signers, format!("bot@example.com {public}")).unwrap();
    let out = git()
        .arg("--git-dir")
        .arg(s.git.git_dir(&s.fleet))
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()))
        .args(["verify-commit", "-v", "main"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify-commit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.git.log(&s.fleet, "main").len(), 2);
}

#[test]
fn digest_reflection_writes_digest_markers() {
    let s = plain();
    let digest = s
        .registry
        .manifest_digest(&s.image, "1.2.0")
        .expect("the registry knows the digest");
    let values = "image:\n  digest: sha256:0000 # {\"$imagepolicy\": \"default:app:digest\"}\n  full: x # {\"$imagepolicy\": \"default:app\"}\n";
    s.git.commit(
        &s.fleet,
        "main",
        &[("deploy/values.yaml", values)],
        "values",
    );
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0").replace(
        "  policy:\n    semver:",
        "  digestReflectionPolicy: IfNotPresent\n  policy:\n    semver:",
    );
    s.config.write("objects.yaml", &objects);
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let full = format!("{}/{}:1.2.0@{digest}", s.registry.host(), s.image);
    assert_eq!(
        s.git.file(&s.fleet, "main", "deploy/values.yaml"),
        values
            .replace("sha256:0000", &digest)
            .replace("full: x", &format!("full: {full}"))
    );
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(&format!("image: {full} #")));
    assert!(line(&run, "ImagePolicy default/app").ends_with(&full));
}

#[test]
fn checkout_by_tag_pushes_to_the_push_branch() {
    let s = plain();
    git()
        .arg("--git-dir")
        .arg(s.git.git_dir(&s.fleet))
        .args(["tag", "release-1", "main"])
        .status()
        .unwrap();
    s.git.commit(
        &s.fleet,
        "main",
        &[("later.txt", "after the tag\n")],
        "later",
    );
    configure(
        &s,
        &Extra {
            git: "    checkout:\n      ref:\n        tag: release-1\n    push:\n      branch: from-tag\n".into(),
            ..Default::default()
        },
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = s.git.log(&s.fleet, "from-tag");
    assert_eq!(
        log[0].parents,
        vec![s.initial_head.clone()],
        "built on the tagged commit"
    );
    assert!(!s
        .git
        .files(&s.fleet, "from-tag")
        .contains(&"later.txt".to_string()));

    // Without a push branch there is nowhere to push: a clear failure.
    configure(
        &s,
        &Extra {
            git: "    checkout:\n      ref:\n        tag: release-1\n".into(),
            ..Default::default()
        },
    );
    let run = run_once(&s.config);
    assert_ne!(run.code, 0);
    assert!(line(&run, "ImageUpdateAutomation default/fleet").contains("push spec not provided"));
}

#[test]
fn a_commit_pushed_between_fetch_and_push_survives_and_ours_lands_once() {
    let s = plain();
    // Someone else's commit, ready on a side branch; the hook moves main to it while
    // tagline's first push is in flight, as a concurrent writer would.
    let theirs = s.git.commit(
        &s.fleet,
        "competitor",
        &[("deploy/other.yaml", "kind: ConfigMap\n")],
        "someone else",
    );
    let marker = s.git.git_dir(&s.fleet).join("raced");
    s.git.set_hook(
        &s.fleet,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nif [ ! -e {m} ]; then\n  touch {m}\n  env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main {theirs}\nfi\nexit 0\n",
            m = marker.display()
        ),
    );
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(marker.exists(), "the race happened");
    let log = s.git.log(&s.fleet, "main");
    assert_eq!(log.len(), 3, "initial, theirs, ours: {log:#?}");
    assert_eq!(log[1].sha, theirs, "their commit survives");
    assert_eq!(log[0].parents, vec![theirs.clone()]);
    assert_eq!(log[0].author_name, "Tagline Bot");
    assert_eq!(
        s.git.file(&s.fleet, "main", "deploy/other.yaml"),
        "kind: ConfigMap\n"
    );
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));
}

#[test]
fn text_files_chosen_by_annotation_are_updated() {
    let s = plain();
    let dockerfile = format!(
        "# syntax=docker/dockerfile:1\n# {{\"$imagepolicy\": \"default:app\"}}\nFROM {}/{}:1.0.0 AS base\nRUN true\n",
        s.registry.host(),
        s.image
    );
    s.git.commit(
        &s.fleet,
        "main",
        &[("deploy/Dockerfile", &dockerfile)],
        "dockerfile",
    );
    let objects = objects(s.registry, s.git, &s.image, &s.fleet, "^1.0.0").replace(
        "kind: ImageUpdateAutomation\nmetadata:\n  name: fleet\n",
        "kind: ImageUpdateAutomation\nmetadata:\n  name: fleet\n  annotations:\n    tagline.dev/text-files: Dockerfile\n",
    );
    assert!(objects.contains("tagline.dev/text-files"));
    s.config.write("objects.yaml", &objects);
    let run = run_once(&s.config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        s.git.file(&s.fleet, "main", "deploy/Dockerfile"),
        dockerfile.replace(":1.0.0 AS", ":1.2.0 AS")
    );
    assert!(s
        .git
        .file(&s.fleet, "main", "deploy/app.yaml")
        .contains(":1.2.0 #"));

    // A typo in tagline's annotations is a config error naming it.
    s.config
        .write("objects.yaml", &objects.replace("text-files", "text-file"));
    let run = run_once(&s.config);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("metadata.annotations: unknown annotation \"tagline.dev/text-file\""),
        "{}",
        run.stderr
    );
}
