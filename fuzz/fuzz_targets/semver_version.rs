//! Fuzzes the tag-as-version parser: no panic; what parses prints back to a version with the
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
