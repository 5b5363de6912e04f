//! Fuzz target: the splice. For any bytes, `apply` never panics; when it writes, the output
//! keeps every line break, a second apply changes nothing, and the bytes outside the changed
//! lines are the input's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagline::image::ImageRef;
use tagline::writer::{apply_report, Setters};

fuzz_target!(|data: &[u8]| {
    let mut setters = Setters::new();
    for (i, tag) in ["1.10", "v2", "it's \"x\"", "", "true"].iter().enumerate() {
        setters.insert(
            format!("ns:p{i}"),
            ImageRef {
                name: format!("reg/p{i}"),
                tag: tag.to_string(),
                digest: (i % 2 == 0).then(|| "sha256:00".to_string()),
            },
        );
    }
    // The policies the golden fixtures name, so they make good seeds (see seed.sh).
    for (name, tag) in [("app", "1.1.0"), ("decimal", "1.10"), ("podinfo", "6.5.0")] {
        setters.insert(
            format!("default:{name}"),
            ImageRef {
                name: format!("reg/team/{name}"),
                tag: tag.to_string(),
                digest: None,
            },
        );
    }
    let Ok(report) = apply_report(data, &setters) else {
        return;
    };
    let Some(out) = report.applied.output else {
        assert!(report.applied.changes.is_empty());
        return;
    };
    assert!(!report.applied.changes.is_empty());
    let lines_in: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let lines_out: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
    assert_eq!(lines_in.len(), lines_out.len(), "line breaks changed");
    let changed = lines_in
        .iter()
        .zip(&lines_out)
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed <= report.applied.changes.len());
    let again = apply_report(&out, &setters).expect("output of apply must apply again");
    assert!(
        again.applied.output.is_none(),
        "second apply changed the file"
    );
});
