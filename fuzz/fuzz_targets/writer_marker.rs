//! Fuzz target: the marker parser never panics, and what it accepts has a `$imagepolicy` key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagline::writer::marker;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(m) = marker::parse(text) {
        assert!(text.contains(marker::KEY));
        if let Some(policy) = &m.policy {
            assert_eq!(policy.split(':').count(), 2);
            assert!(m.setter.starts_with(policy.as_str()));
        }
    }
});
