//! Fuzzes the semver range parser: no panic; errors point inside the input; a parsed range
//! checks any version without panicking, the same way twice, and never satisfies a version
//! its quick bounds on major.minor.patch exclude.
#![no_main]

use libfuzzer_sys::fuzz_target;

// tagline's parser sources, compiled on their own (no regex, no IO crates) so the fuzzing
// build instruments only what it fuzzes.
#[allow(dead_code)]
#[path = "../../src/policy/version.rs"]
mod version;
#[allow(dead_code)]
#[path = "../../src/policy/range.rs"]
mod range;
use range::Range;
use version::Version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Split the input: a range, then versions to check against it.
    let mut parts = text.split('\u{0}');
    let range_text = parts.next().unwrap_or("");
    match Range::parse(range_text) {
        Err(e) => {
            assert!(e.offset <= range_text.len(), "offset {} past the end", e.offset);
            assert!(range_text.is_char_boundary(e.offset), "offset inside a character");
            let msg = e.to_string();
            assert!(msg.contains("at column"), "{msg}");
        }
        Ok(range) => {
            assert_eq!(Range::parse(range_text).as_ref(), Ok(&range), "parsing is deterministic");
            for v in parts.chain(["0.0.0", "1.2.3", "1.2.3-rc.1", "18446744073709551615.0.0"]) {
                if let Some(version) = Version::parse_coerce(v) {
                    let once = range.satisfies(&version);
                    assert_eq!(once, range.satisfies(&version));
                    if once {
                        assert!(range.may_admit(version.triple()), "bounds exclude {v}");
                        assert!(range.may_admit_major(version.major), "major bound excludes {v}");
                    }
                }
            }
        }
    }
});
