//! Benchmark driver for the writer, run by `bench/writer/run.sh` (which compares it with
//! `git grep`, `rg`, `grep` and `sed -i` on generated trees). Usage:
//! `writer <discover|plan|write> <root> [update.path]`; prints one line of counts on stderr.

use std::path::Path;
use std::time::Instant;

use tagline::image::ImageRef;
use tagline::writer::fs::{discover, update, Options};
use tagline::writer::Setters;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(mode), Some(root)) = (args.first(), args.get(1)) else {
        // Run by `cargo test --all-targets` (no tree given): a smoke test on a tiny tree.
        smoke();
        return;
    };
    let path = args.get(2).map_or(".", String::as_str);
    let mut setters = Setters::new();
    setters.insert(
        "flux-system:app".into(),
        ImageRef {
            name: "reg/team/app".into(),
            tag: "1.1.0".into(),
            digest: None,
        },
    );
    let started = Instant::now();
    match mode.as_str() {
        "discover" => {
            let (found, _) = discover(Path::new(root), path, &Options::default()).unwrap();
            eprintln!("discover: {} files in {:?}", found.len(), started.elapsed());
        }
        "plan" | "write" => {
            let up = update(Path::new(root), path, &setters).unwrap();
            let computed = started.elapsed();
            if mode == "write" {
                up.write().unwrap();
            }
            eprintln!(
                "{mode}: {} files changed, {} diagnostics in {:?} (update {computed:?})",
                up.files.len(),
                up.diagnostics.len(),
                started.elapsed()
            );
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}

/// Discovery and planning on a three-file tree: one marked, one marked for another policy
/// name, one unmarked.
fn smoke() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marked = "image: reg/team/app:1.0.0 # {\"$imagepolicy\": \"flux-system:app\"}\n";
    std::fs::write(dir.path().join("a.yaml"), marked).unwrap();
    std::fs::write(dir.path().join("b.yaml"), "image: reg/other:1.0.0\n").unwrap();
    std::fs::write(dir.path().join("c.txt"), marked).unwrap();
    let (found, _) = discover(dir.path(), ".", &Options::default()).unwrap();
    assert_eq!(found.len(), 1, "only a.yaml carries a marker: {found:?}");
    let mut setters = Setters::new();
    setters.insert(
        "flux-system:app".into(),
        ImageRef {
            name: "reg/team/app".into(),
            tag: "1.1.0".into(),
            digest: None,
        },
    );
    let update = tagline::writer::fs::update(dir.path(), ".", &setters).unwrap();
    assert_eq!(update.files.len(), 1);
    eprintln!("writer bench smoke: ok (run bench/writer/run.sh to measure)");
}
