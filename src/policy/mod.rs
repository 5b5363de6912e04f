//! Policies: from a tag list to the latest tag, with Flux's exact semantics (semver,
//! alphabetical, numerical; regex filter and extract). Pure: no IO.
//!
//! CONTRACT (used by `automation` and `cli`; the policy owner may add, not change):
//! - `Policy::new(&Choice, Option<&FilterTags>) -> Result<Policy, InvalidPolicy>` validates once
//!   (compiled regex, parsed range);
//! - `Policy::latest(&self, tags: &[String]) -> Result<String, NoCandidate>` returns the chosen
//!   tag exactly as written.

use std::fmt;

/// Which way an ordering picks: `Asc` picks the greatest, `Desc` the least (Flux's meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// The one ordering an `ImagePolicy` names in `spec.policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    SemVer { range: String },
    Alphabetical { order: Order },
    Numerical { order: Order },
}

/// `spec.filterTags`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterTags {
    pub pattern: String,
    pub extract: String,
}

/// A validated policy, ready to evaluate tag lists.
#[derive(Debug, Clone)]
pub struct Policy {
    _private: (),
}

/// The policy itself is invalid (Flux: Stalled `InvalidPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPolicy(pub String);

/// No tag could be chosen (Flux: Ready=False `Failure`); the previous latest stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoCandidate(pub String);

impl Policy {
    pub fn new(_choice: &Choice, _filter: Option<&FilterTags>) -> Result<Policy, InvalidPolicy> {
        todo!("policy owner")
    }

    pub fn latest(&self, _tags: &[String]) -> Result<String, NoCandidate> {
        todo!("policy owner")
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        })
    }
}
