//! The `tagline` binary: hands the command line to `cli`.
fn main() {
    // One malloc arena for the whole process. glibc otherwise gives each thread that
    // allocates an arena of its own (up to 8 per core), each keeping the memory freed in it:
    // bench/service/soak.sh measured 19.9 MB of anonymous RSS with the default and 15.7 MB
    // with one arena. Done first, before any thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // SAFETY: no other thread runs yet.
    unsafe { tagline::git::init_early() };
    std::process::exit(tagline::cli::main());
}
