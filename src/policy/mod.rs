//! Policies: from a tag list to the latest tag, with Flux's exact semantics (semver,
//! alphabetical, numerical; regex filter and extract). Pure: no IO.
//!
//! CONTRACT (used by `automation` and `cli`; the policy owner may add, not change):
//! - `Policy::new(&Choice, Option<&FilterTags>) -> Result<Policy, InvalidPolicy>` validates once
//!   (compiled regex, parsed range);
//! - `Policy::latest(&self, tags: &[String]) -> Result<String, NoCandidate>` returns the chosen
//!   tag exactly as written.
//!
//! Added: [`Policy::explain`] (counts and the top candidates, for humans), [`Range`] and
//! [`Version`] (the semver parsers), [`parse_go_float`] (the numerical parser), [`Template`]
//! (the extract template).
//!
//! Determinism (Flux leaves some of this to input or map order; here the result depends only
//! on the set of tags):
//! 1. Tags whose `extract` gives the same value: the byte-wise least tag stands for the value
//!    (what Flux does, as its stored list is sorted descending and later map writes win).
//! 2. semver, equal precedence (`1.2.3`, `v1.2.3`, `1.2.3+b`): the byte-wise greatest value
//!    wins (Flux without a filter: the first seen in its descending list wins).
//! 3. numerical, equal numbers (`1`, `1.0`, `01`): the byte-wise least value wins (Flux
//!    without a filter: the last seen wins). `NaN` never beats a number, in either order.
//! 4. alphabetical: values are distinct after rule 1.

mod float;
mod pattern;
mod range;
mod template;
mod version;

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;

pub use float::parse_go_float;
pub use range::{Range, RangeError};
pub use template::Template;
pub use version::Version;

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
    kind: Kind,
    filter: Option<Filter>,
}

#[derive(Debug, Clone)]
enum Kind {
    SemVer { range: Range, text: String },
    Alphabetical(Order),
    Numerical(Order),
}

#[derive(Debug, Clone)]
struct Filter {
    re: Regex,
    /// Text every matching tag starts with (see `pattern::required_prefix`); may be empty.
    prefix: String,
    pattern: String,
    extract: Option<Template>,
}

/// The policy itself is invalid (Flux: Stalled `InvalidPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPolicy(pub String);

/// No tag could be chosen (Flux: Ready=False `Failure`); the previous latest stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoCandidate(pub String);

/// Why a policy chose what it chose: counts at each step and the leading candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Tags given.
    pub seen: usize,
    /// Tags the filter pattern did not match.
    pub excluded: usize,
    /// Tags dropped because another tag extracted the same value (rule 1).
    pub merged: usize,
    /// Values left after filter and extract: what the ordering looks at.
    pub filtered: usize,
    /// Values the ordering could read (versions, numbers; all of them for alphabetical).
    pub parsed: usize,
    /// Values it could not read (semver skips them; numerical fails on them).
    pub unparsed: usize,
    /// Versions outside the range (semver only).
    pub outside_range: usize,
    /// Values in the running.
    pub eligible: usize,
    /// The best candidates, best first (at most the number asked for).
    pub top: Vec<Ranked>,
    /// What `latest` returns.
    pub outcome: Result<String, NoCandidate>,
}

/// A candidate: the tag as written and the value the policy ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub tag: String,
    pub value: String,
}

/// How many tags ahead `latest` asks the CPU to fetch: each tag's bytes live in their own
/// heap block, and with large lists most of them miss the cache.
const PREFETCH_DISTANCE: usize = 12;

/// Hints the CPU to load the start of `bytes` into the cache (no-op off x86-64).
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, even for an invalid address, and SSE is
    // part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            bytes.as_ptr().cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

const EMPTY: &str = "version list argument cannot be empty";
const NO_LATEST: &str = "unable to determine latest version from provided list";

impl Policy {
    pub fn new(choice: &Choice, filter: Option<&FilterTags>) -> Result<Policy, InvalidPolicy> {
        let kind = match choice {
            Choice::SemVer { range } => Kind::SemVer {
                range: Range::parse(range).map_err(|e| InvalidPolicy(e.to_string()))?,
                text: range.clone(),
            },
            Choice::Alphabetical { order } => Kind::Alphabetical(*order),
            Choice::Numerical { order } => Kind::Numerical(*order),
        };
        let filter = match filter {
            None => None,
            Some(f) => {
                let re = pattern::compile(&f.pattern).map_err(|e| {
                    InvalidPolicy(format!(
                        "invalid regular expression pattern '{}': {}",
                        f.pattern,
                        one_line(&e.to_string())
                    ))
                })?;
                let extract = (!f.extract.is_empty()).then(|| Template::new(&f.extract, &re));
                Some(Filter {
                    re,
                    prefix: pattern::required_prefix(&f.pattern).to_string(),
                    pattern: f.pattern.clone(),
                    extract,
                })
            }
        };
        Ok(Policy { kind, filter })
    }

    /// The chosen tag, exactly as written.
    pub fn latest(&self, tags: &[String]) -> Result<String, NoCandidate> {
        let found = match &self.kind {
            Kind::SemVer { range, .. } => self.latest_semver(range, tags),
            Kind::Alphabetical(order) => self.latest_alphabetical(*order, tags),
            Kind::Numerical(order) => self.latest_numerical(*order, tags),
        };
        match found {
            Some(i) => Ok(tags[i].clone()),
            // Failing is rare and may be slow: let the explaining pass say why.
            None => {
                let outcome = self.explain(tags, 0).outcome;
                debug_assert!(outcome.is_err(), "the passes disagree: {outcome:?}");
                outcome
            }
        }
    }

    /// Calls `f(value, index)` for each candidate: each tag the filter keeps, with the value
    /// its extract template gives (the tag itself without a template).
    #[inline(always)]
    fn each_candidate(&self, tags: &[String], mut f: impl FnMut(&str, usize)) {
        match &self.filter {
            None => {
                for (i, t) in tags.iter().enumerate() {
                    if let Some(ahead) = tags.get(i + PREFETCH_DISTANCE) {
                        prefetch(ahead.as_bytes());
                    }
                    f(t, i);
                }
            }
            Some(Filter {
                re,
                prefix,
                extract: None,
                ..
            }) => {
                for (i, t) in tags.iter().enumerate() {
                    if t.starts_with(prefix.as_str()) && re.is_match(t) {
                        f(t, i);
                    }
                }
            }
            Some(Filter {
                re,
                prefix,
                extract: Some(tpl),
                ..
            }) => {
                let mut locs = re.capture_locations();
                let mut buf = String::new();
                for (i, t) in tags.iter().enumerate() {
                    if t.starts_with(prefix.as_str()) && re.captures_read(&mut locs, t).is_some() {
                        buf.clear();
                        tpl.expand_into(t, &locs, &mut buf);
                        f(&buf, i);
                    }
                }
            }
        }
    }

    fn latest_semver(&self, range: &Range, tags: &[String]) -> Option<usize> {
        // The best so far: its index, its value (copied: it may live in a scratch buffer) and
        // its numeric head, so most tags are dismissed after reading three numbers.
        let mut best: Option<(usize, (u64, u64, u64))> = None;
        let mut best_value = String::new();
        self.each_candidate(tags, |value, i| {
            let b = value.as_bytes();
            let Some((major, end)) = version::parse_major(b) else {
                return;
            };
            // Most tags are out on their major alone: below the best, or outside the range.
            if best.is_some_and(|(_, (best_major, _, _))| major < best_major)
                || !range.may_admit_major(major)
            {
                return;
            }
            let Some(head) = version::parse_head_after_major(b, major, end) else {
                return;
            };
            if let Some((_, triple)) = best {
                if head.triple < triple {
                    return;
                }
            }
            if !range.may_admit(head.triple) {
                return;
            }
            let Some(v) = version::parse_tail(value, head) else {
                return;
            };
            if !range.satisfies(&v) {
                return;
            }
            if let Some((bi, triple)) = best {
                if head.triple == triple {
                    // Same numbers: the prerelease, then the tie rules, decide.
                    let bv = Version::parse(&best_value).expect("the best value is a version");
                    if semver_rank(&v, value, &tags[i], &bv, &best_value, &tags[bi])
                        != Ordering::Greater
                    {
                        return;
                    }
                }
            }
            best = Some((i, head.triple));
            best_value.clear();
            best_value.push_str(value);
        });
        best.map(|(i, _)| i)
    }

    fn latest_alphabetical(&self, order: Order, tags: &[String]) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut best_value = String::new();
        self.each_candidate(tags, |value, i| {
            if let Some(bi) = best {
                if alpha_rank(order, value, &tags[i], &best_value, &tags[bi]) != Ordering::Greater {
                    return;
                }
            }
            best = Some(i);
            best_value.clear();
            best_value.push_str(value);
        });
        best
    }

    fn latest_numerical(&self, order: Order, tags: &[String]) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        let mut best_value = String::new();
        let mut invalid = false;
        self.each_candidate(tags, |value, i| {
            if invalid {
                return;
            }
            let Some(n) = float::parse_go_float_fast(value) else {
                invalid = true;
                return;
            };
            if let Some((bi, bn)) = best {
                if num_rank(order, n, value, &tags[i], bn, &best_value, &tags[bi])
                    != Ordering::Greater
                {
                    return;
                }
            }
            best = Some((i, n));
            best_value.clear();
            best_value.push_str(value);
        });
        if invalid {
            return None;
        }
        best.map(|(i, _)| i)
    }

    /// Evaluates like [`Policy::latest`], keeping count of every step and the `top` best
    /// candidates. Slower (it keeps every candidate); for humans and for error messages.
    pub fn explain(&self, tags: &[String], top: usize) -> Explanation {
        // Candidates by value; for a value extracted from several tags, the least tag.
        let mut cands: Vec<(String, usize)> = Vec::new();
        self.each_candidate(tags, |value, i| cands.push((value.to_string(), i)));
        let matched = cands.len();
        cands.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| tags[a.1].cmp(&tags[b.1])));
        cands.dedup_by(|later, first| later.0 == first.0);
        let filtered = cands.len();
        let mut ex = Explanation {
            seen: tags.len(),
            excluded: tags.len() - matched,
            merged: matched - filtered,
            filtered,
            parsed: 0,
            unparsed: 0,
            outside_range: 0,
            eligible: 0,
            top: Vec::new(),
            outcome: Err(NoCandidate(String::new())),
        };
        let ranked = |v: &(String, usize)| Ranked {
            tag: tags[v.1].clone(),
            value: v.0.clone(),
        };
        let mut eligible: Vec<&(String, usize)> = Vec::new();
        let mut failure: Option<String> = None;
        match &self.kind {
            Kind::SemVer { range, text } => {
                let mut parsed = 0;
                for c in &cands {
                    if let Some(v) = Version::parse(&c.0) {
                        parsed += 1;
                        if range.satisfies(&v) {
                            eligible.push(c);
                        }
                    }
                }
                ex.parsed = parsed;
                ex.unparsed = filtered - parsed;
                ex.outside_range = parsed - eligible.len();
                eligible.sort_by(|a, b| {
                    let (va, vb) = (
                        Version::parse(&a.0).expect("parsed above"),
                        Version::parse(&b.0).expect("parsed above"),
                    );
                    semver_rank(&vb, &b.0, &tags[b.1], &va, &a.0, &tags[a.1])
                });
                if eligible.is_empty() && filtered > 0 {
                    failure = Some(if parsed == 0 {
                        format!(
                            "{NO_LATEST}: none of the {filtered} {} is a version (three dot-separated numbers, an optional 'v' prefix, optional -prerelease and +build)",
                            self.what(filtered)
                        )
                    } else {
                        format!(
                            "{NO_LATEST}: none of the {parsed} version{} satisfies the range '{text}'{}",
                            if parsed == 1 { "" } else { "s" },
                            if range.admits_prereleases() || cands.iter().all(|c| Version::parse(&c.0).is_none_or(|v| v.pre.is_empty())) {
                                ""
                            } else {
                                " (prereleases only match a range with a prerelease in the same group, such as '>=1.0.0-0')"
                            }
                        )
                    });
                }
            }
            Kind::Alphabetical(order) => {
                ex.parsed = filtered;
                eligible = cands.iter().collect();
                eligible.sort_by(|a, b| alpha_rank(*order, &b.0, &tags[b.1], &a.0, &tags[a.1]));
            }
            Kind::Numerical(order) => {
                let mut nums = Vec::new();
                let mut bad: Option<&(String, usize)> = None;
                for c in &cands {
                    match parse_go_float(&c.0) {
                        Some(n) => nums.push((n, c)),
                        None => {
                            ex.unparsed += 1;
                            // cands is sorted by value: the first bad one is the least.
                            bad = bad.or(Some(c));
                        }
                    }
                }
                ex.parsed = nums.len();
                if let Some(b) = bad {
                    let mut msg = format!("failed to parse invalid numeric value '{}'", b.0);
                    if b.0 != tags[b.1] {
                        msg.push_str(&format!(" (extracted from tag '{}')", tags[b.1]));
                    }
                    if ex.unparsed > 1 {
                        msg.push_str(&format!(
                            "; {} of the {filtered} {} are not numbers",
                            ex.unparsed,
                            self.what(filtered)
                        ));
                    }
                    failure = Some(msg);
                } else {
                    nums.sort_by(|a, b| {
                        num_rank(
                            *order,
                            b.0,
                            &b.1 .0,
                            &tags[b.1 .1],
                            a.0,
                            &a.1 .0,
                            &tags[a.1 .1],
                        )
                    });
                    eligible = nums.into_iter().map(|(_, c)| c).collect();
                }
            }
        }
        ex.eligible = eligible.len();
        ex.top = eligible.iter().take(top).map(|c| ranked(c)).collect();
        if tags.is_empty() {
            failure = Some(format!("{EMPTY}: there are no tags"));
        } else if filtered == 0 {
            let f = self
                .filter
                .as_ref()
                .expect("only a filter removes every tag");
            failure = Some(format!(
                "{EMPTY}: none of the {} tag{} matches the filter pattern '{}'",
                tags.len(),
                if tags.len() == 1 { "" } else { "s" },
                f.pattern
            ));
        }
        ex.outcome = match (failure, eligible.first()) {
            (Some(msg), _) => Err(NoCandidate(msg)),
            (None, Some(c)) => Ok(tags[c.1].clone()),
            (None, None) => Err(NoCandidate(NO_LATEST.to_string())),
        };
        ex
    }

    fn what(&self, n: usize) -> &'static str {
        let extracted = self.filter.as_ref().is_some_and(|f| f.extract.is_some());
        match (extracted, n == 1) {
            (true, true) => "extracted value",
            (true, false) => "extracted values",
            (false, true) => "tag",
            (false, false) => "tags",
        }
    }
}

/// How candidate `a` (version, value, tag) ranks against `b`: `Greater` when `a` wins.
fn semver_rank(
    a: &Version<'_>,
    a_value: &str,
    a_tag: &str,
    b: &Version<'_>,
    b_value: &str,
    b_tag: &str,
) -> Ordering {
    a.precedence(b)
        .then_with(|| a_value.cmp(b_value))
        .then_with(|| b_tag.cmp(a_tag))
}

fn alpha_rank(order: Order, a_value: &str, a_tag: &str, b_value: &str, b_tag: &str) -> Ordering {
    let by_value = match order {
        Order::Asc => a_value.cmp(b_value),
        Order::Desc => b_value.cmp(a_value),
    };
    by_value.then_with(|| b_tag.cmp(a_tag))
}

fn num_rank(
    order: Order,
    a: f64,
    a_value: &str,
    a_tag: &str,
    b: f64,
    b_value: &str,
    b_tag: &str,
) -> Ordering {
    let by_number = match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => {
            let o = a.partial_cmp(&b).expect("not NaN");
            match order {
                Order::Asc => o,
                Order::Desc => o.reverse(),
            }
        }
    };
    by_number
        .then_with(|| b_value.cmp(a_value))
        .then_with(|| b_tag.cmp(a_tag))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        })
    }
}

impl std::str::FromStr for Order {
    type Err = InvalidPolicy;

    /// Flux upper-cases the order before checking it: `asc`, `ASC`, `Desc` are accepted; an
    /// empty order is the default, `asc`.
    fn from_str(s: &str) -> Result<Order, InvalidPolicy> {
        match s.to_ascii_uppercase().as_str() {
            "" | "ASC" => Ok(Order::Asc),
            "DESC" => Ok(Order::Desc),
            _ => Err(InvalidPolicy(format!(
                "invalid order argument provided: '{}', must be one of: ASC, DESC",
                s.to_ascii_uppercase()
            ))),
        }
    }
}
