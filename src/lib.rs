//! tagline: keeps container image references in Git up to date with what registries publish.
//!
//! The crate is a library plus the `tagline` binary. Pure logic sits in the middle (`image`,
//! `policy`, `writer`), IO at the edges (`scanner`, `git`, `writer::fs`), and one pipeline
//! (`automation`) that both front ends drive. See ARCHITECTURE.md.

pub mod api;
pub mod automation;
pub mod cli;
pub mod daemon;
pub mod git;
pub mod image;
pub mod notify;
pub mod policy;
pub mod scanner;
pub mod schedule;
pub mod status;
pub mod store;
pub mod writer;
