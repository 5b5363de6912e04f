//! The policy parsers compiled on their own (no regex, no IO crates), so that the fuzzing build
//! instruments only what it fuzzes. These are tagline's own source files, included by path.

#[allow(dead_code)]
pub mod policy {
    #[path = "../../../src/policy/version.rs"]
    pub mod version;

    #[path = "../../../src/policy/range.rs"]
    pub mod range;
}
