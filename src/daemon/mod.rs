//! The long-running service behind `tagline run` without `--once`.
