//! The `tagline` binary: hands the command line to `cli`.
fn main() {
    std::process::exit(tagline::cli::main());
}
