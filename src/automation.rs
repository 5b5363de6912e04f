//! The one pipeline both front ends drive: scan → evaluate → update → commit → push → outcome.
