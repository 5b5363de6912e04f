//! Command line: argument parsing and human output; the only code that prints to stdout.

pub mod eval;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    0
}
