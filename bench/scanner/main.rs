//! Benchmark driver: lists a repository's tags with tagline's scanner, like `skopeo list-tags`.
//!
//! `scan-tags [--insecure] [--repeat N] <registry/repo>`: prints the tag count on stdout; with
//! `--repeat N` scans N times in one process and prints per-scan times on stderr (warm client).

use std::time::{Duration, Instant};

use tagline::image::ImageName;
use tagline::scanner::{scan, ScanOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut insecure = false;
    let mut repeat = 1u32;
    let mut image = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--insecure" => insecure = true,
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--repeat N")
            }
            _ => image = Some(a),
        }
    }
    let image =
        ImageName::parse(&image.expect("usage: scan-tags [--insecure] [--repeat N] <image>"))
            .expect("image name");
    let options = ScanOptions {
        insecure,
        timeout: Duration::from_secs(60),
        exclusion: vec![],
        ..ScanOptions::default()
    };
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let r = scan(&image, &options).await.expect("scan");
        times.push(t.elapsed());
        count = r.tags.len();
    }
    if repeat > 1 {
        let first = times[0];
        let mut rest: Vec<_> = times[1..].to_vec();
        rest.sort();
        let median = rest[rest.len() / 2];
        eprintln!(
            "in-process: first scan {:.2} ms, median of the next {} scans {:.2} ms",
            first.as_secs_f64() * 1e3,
            rest.len(),
            median.as_secs_f64() * 1e3
        );
    }
    println!("{count}");
}
