//! Fuzzes the tag-as-version parser: no panic; the numbers match a plain reading; what parses prints back to a version with the
//! same parts; Flux's reading implies Masterminds' coercing reading with the same parts;
//! precedence is a consistent order.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;

// tagline's parser sources, compiled on their own (no regex, no IO crates) so the fuzzing
// build instruments only what it fuzzes.
#[allow(dead_code)]
#[path = "../../src/policy/version.rs"]
mod version;
use version::Version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\u{0}').unwrap_or((text, "1.0.0"));
    let Some(v) = Version::parse(a) else {
        return;
    };
    assert_eq!(Version::parse_coerce(a), Some(v), "flux reading implies the coercing one");
    // The numbers, read the plain way.
    let unprefixed = a.strip_prefix('v').unwrap_or(a);
    let head = unprefixed.split(['-', '+']).next().unwrap_or("");
    let mut nums = head.split('.');
    for (part, got) in [v.major, v.minor, v.patch].into_iter().enumerate() {
        match nums.next().map(|n| n.parse::<u64>()) {
            Some(Ok(n)) => assert_eq!(n, got, "part {part} of {a:?}"),
            _ => assert!(part > 0 && got == 0, "part {part} of {a:?}"),
        }
    }
    let mut printed = format!("{}.{}.{}", v.major, v.minor, v.patch);
    if !v.pre.is_empty() {
        printed.push('-');
        printed.push_str(v.pre);
    }
    if !v.build.is_empty() {
        printed.push('+');
        printed.push_str(v.build);
    }
    let w = Version::parse(&printed).expect("a printed version parses");
    assert_eq!((v.triple(), v.pre, v.build), (w.triple(), w.pre, w.build));
    assert_eq!(v.precedence(&w), Ordering::Equal);
    if let Some(u) = Version::parse(b) {
        assert_eq!(v.precedence(&u), u.precedence(&v).reverse(), "antisymmetric");
    }
});
