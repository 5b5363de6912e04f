//! Policy benchmark: tags per second for (a) a semver range, (b) filter + extract + numerical,
//! (c) alphabetical, over 10k, 100k and 1M generated tags, against node in the same run
//! (`semver.valid` + `semver.maxSatisfying` for (a); plain JavaScript for (b) and (c)).
//!
//! Run with `bench/policy/run.sh` (installs node's semver, builds in release, runs this).
//! Sizes can be given as arguments: `cargo bench --bench policy -- 10000 100000`.

use std::cmp::Ordering;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tagline::policy::{Choice, FilterTags, Order, Policy, Version};

/// xorshift64*: deterministic tags for every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&mut self, len: usize) -> String {
        let v = self.next();
        format!("{v:016x}")[..len].to_string()
    }
}

/// A registry-like mix: releases (half with `v`), prereleases, CalVer with leading zeros,
/// build metadata and distro suffixes, commit-hash tags, `main-<sha>-<timestamp>` tags, and
/// words. All distinct, in a shuffled order.
fn generate(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let words = [
        "latest", "stable", "edge", "main", "nightly", "dev", "canary",
    ];
    while tags.len() < n {
        let v = if rng.below(2) == 0 { "v" } else { "" };
        let (a, b, c) = (rng.below(200), rng.below(100), rng.below(1000));
        let t = match rng.below(100) {
            0..=39 => format!("{v}{a}.{b}.{c}"),
            40..=51 => {
                let pre = ["rc", "beta", "alpha"][rng.below(3) as usize];
                format!("{v}{a}.{b}.{c}-{pre}.{}", rng.below(20))
            }
            52..=54 => format!("{v}{a}.{b}.{c}-alpine3.{}", rng.below(21)),
            55..=57 => format!("{a}.{b}.{c}+build.{}", rng.below(500)),
            58..=66 => format!(
                "v{}.{:02}.{:02}",
                2019 + rng.below(7),
                1 + rng.below(12),
                1 + rng.below(28)
            ),
            67..=79 => rng.hex(7),
            80..=84 => format!("sha-{}", rng.hex(12)),
            85..=96 => format!(
                "main-{}-{}",
                rng.hex(7),
                1_600_000_000 + rng.below(200_000_000)
            ),
            _ => format!(
                "{}-{}",
                words[rng.below(words.len() as u64) as usize],
                rng.below(100_000)
            ),
        };
        if seen.insert(t.clone()) {
            tags.push(t);
        }
    }
    tags
}

/// Median seconds per call of `f`, running for at least `min` (and at least 5 times).
fn time(min: Duration, mut f: impl FnMut() -> String) -> (f64, String) {
    let mut out = f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || start.elapsed() < min {
        let t0 = Instant::now();
        out = black_box(f());
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    (times[times.len() / 2], out)
}

struct Node {
    script: PathBuf,
}

impl Node {
    fn find() -> Option<Node> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/policy");
        if !dir.join("node_modules/semver/package.json").exists() {
            eprintln!("node's semver is not installed under bench/policy (run bench/policy/run.sh): no comparison");
            return None;
        }
        Command::new("node").arg("--version").output().ok()?;
        Some(Node {
            script: dir.join("node_bench.js"),
        })
    }

    fn run(&self, tags_file: &Path, mode: &str, arg: &str, min: Duration) -> Option<(f64, String)> {
        let out = Command::new("node")
            .arg(&self.script)
            .arg(tags_file)
            .arg(mode)
            .arg(arg)
            .arg(min.as_millis().to_string())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("node failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some((
            v["seconds_per_iteration"].as_f64()?,
            v["chosen"].as_str().unwrap_or("").to_string(),
        ))
    }
}

struct Case {
    name: &'static str,
    policy: Policy,
    node_mode: &'static str,
    node_arg: &'static str,
    /// Do both sides mean the same choice?
    same: fn(&str, &str) -> bool,
}

fn same_version(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.precedence(&y) == Ordering::Equal,
        _ => false,
    }
}

fn same_tag(a: &str, b: &str) -> bool {
    a == b
}

fn rate(n: usize, secs: f64) -> String {
    let r = n as f64 / secs;
    if r >= 1e6 {
        format!("{:.1} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this without it, as a
    // smoke test: one small size, same checks.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = match (sizes.is_empty(), benchmarking) {
        (false, _) => sizes,
        (true, true) => vec![10_000, 100_000, 1_000_000],
        (true, false) => vec![1_000],
    };
    let range = ">=1.2.0 <150.0.0";
    let cases = [
        Case {
            name: "(a) semver",
            policy: Policy::new(
                &Choice::SemVer {
                    range: range.to_string(),
                },
                None,
            )
            .expect("valid"),
            node_mode: "semver",
            node_arg: range,
            same: same_version,
        },
        Case {
            name: "(b) filter+extract+numerical",
            policy: Policy::new(
                &Choice::Numerical { order: Order::Asc },
                Some(&FilterTags {
                    pattern: r"^main-[0-9a-f]+-(?P<ts>[0-9]+)$".to_string(),
                    extract: "$ts".to_string(),
                }),
            )
            .expect("valid"),
            node_mode: "numerical",
            node_arg: r"^main-[0-9a-f]+-([0-9]+)$",
            same: same_tag,
        },
        Case {
            name: "(c) alphabetical",
            policy: Policy::new(&Choice::Alphabetical { order: Order::Asc }, None).expect("valid"),
            node_mode: "alphabetical",
            node_arg: "-",
            same: same_tag,
        },
    ];
    let node = Node::find();
    let min = Duration::from_millis(300);
    println!("policy benchmark: one thread; semver range '{range}'; median of runs >= {min:?}");
    println!(
        "{:<30} {:>9} {:>12} {:>12} {:>12} {:>8}  same choice",
        "case", "tags", "tagline", "per eval", "node", "ratio"
    );
    let mut failed = false;
    for &n in &sizes {
        let tags = generate(n, 0x7A61_11E5 ^ n as u64);
        let file = std::env::temp_dir().join(format!("tagline-policy-bench-{n}.txt"));
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&file).expect("temp file"));
            for t in &tags {
                writeln!(f, "{t}").expect("write tags");
            }
        }
        for case in &cases {
            let (secs, ours) = time(min, || case.policy.latest(&tags).expect("a choice"));
            let theirs = node
                .as_ref()
                .and_then(|nd| nd.run(&file, case.node_mode, case.node_arg, min));
            let (node_rate, ratio, same) = match &theirs {
                Some((nsecs, chosen)) => {
                    let same = (case.same)(&ours, chosen);
                    failed |= !same;
                    (
                        rate(n, *nsecs),
                        format!("{:.0}x", nsecs / secs),
                        format!("{} ({ours} / {chosen})", if same { "yes" } else { "NO" }),
                    )
                }
                None => ("-".into(), "-".into(), format!("({ours})")),
            };
            println!(
                "{:<30} {:>9} {:>12} {:>9.3} ms {:>12} {:>8}  {}",
                case.name,
                n,
                rate(n, secs),
                secs * 1e3,
                node_rate,
                ratio,
                same
            );
        }
        let _ = std::fs::remove_file(&file);
    }
    if failed {
        eprintln!("tagline and node chose different tags where their semantics agree");
        std::process::exit(1);
    }
}
