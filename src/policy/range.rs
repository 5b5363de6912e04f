//! Semver ranges: the constraint language of Masterminds/semver v3 (what Flux's `semver.range`
//! means), parsed by hand with the position of any error, and checked against [`Version`]s.
//!
//! Grammar (what Masterminds' validating regular expressions accept, after it rewrites hyphen
//! ranges and splits on `||`):
//!
//! ```text
//! range      = group *("||" group)
//! group      = *ws item *(sep item) *ws
//! sep        = 1*ws | *ws "," *ws           ; all constraints of a group must hold
//! item       = op *ws cv | cv 1*ws "-" 1*ws cv   ; the second form is a hyphen range
//! op         = "" | "=" | "!=" | ">" | "<" | ">=" | "=>" | "<=" | "=<" | "~" | "~>" | "^"
//! cv         = ["v"] part ["." part ["." part]] ["-" ident *("." ident)] ["+" ident *("." ident)]
//! part       = 1*DIGIT | "x" | "X" | "*"
//! ws         = SP | HT | LF | CR | FF
//! ```
//!
//! Masterminds quirks kept: a hyphen range that follows another constraint with only
//! whitespace between them is an error (its rewrite glues it to the previous constraint: use a
//! comma), and so is one written after an operator (`>=1 - 2`); after a hyphen range the next
//! constraint needs no separator. Once a wildcard or a missing part is met the parts after it
//! are not read (`1.x.3` is `1.x`). Known divergence: Masterminds rewrites hyphen ranges
//! before splitting on `||` and its version pattern admits `|`, so `1||2 - 3` means
//! `>=1 || 2 <=3` there; here it means `1 || >=2 <=3`.

use std::cmp::Ordering;
use std::fmt;

use super::version::{compare_pre, Version};

/// A parsed range: groups joined by `||`, each a list of constraints that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    groups: Vec<Group>,
    /// No satisfying version has `major.minor.patch` outside `[floor, ceiling]` (bounds that
    /// may be loose, never tight), so a tag outside is dropped after reading three numbers.
    floor: Triple,
    ceiling: Triple,
}

type Triple = (u64, u64, u64);
const MAX: Triple = (u64::MAX, u64::MAX, u64::MAX);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    constraints: Vec<Constraint>,
    /// A constraint of the group carries a prerelease: prereleases may satisfy the group.
    include_pre: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// One constraint, in Masterminds' terms: a version with "dirty" flags for wildcards or
/// missing parts (`dirty`: some part is a wildcard or missing; `minor_dirty`: the minor is;
/// `patch_dirty`: the patch is).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Constraint {
    op: Op,
    major: u64,
    minor: u64,
    patch: u64,
    pre: Box<str>,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A range that does not parse: what is wrong and where (byte offset from 0, shown from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    pub range: String,
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid semver range {:?}: at column {}: {}",
            self.range,
            self.offset + 1,
            self.reason
        )
    }
}

impl std::error::Error for RangeError {}

#[inline]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

#[inline]
fn is_part_byte(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b'x' | b'X' | b'*')
}

/// The spans of a version as written in a constraint.
#[derive(Debug, Clone, Copy)]
struct Cv {
    start: usize,
    parts: [Option<(usize, usize)>; 3],
    pre: Option<(usize, usize)>,
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, offset: usize, reason: impl Into<String>) -> Result<T, RangeError> {
        Err(RangeError {
            range: self.text.to_string(),
            offset,
            reason: reason.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) -> usize {
        let s = self.i;
        while self.peek().is_some_and(is_ws) {
            self.i += 1;
        }
        self.i - s
    }

    fn op(&mut self) -> Op {
        let two = self.b.get(self.i..self.i + 2);
        let op2 = match two {
            Some(b"!=") => Some(Op::Ne),
            Some(b">=") | Some(b"=>") => Some(Op::Ge),
            Some(b"<=") | Some(b"=<") => Some(Op::Le),
            Some(b"~>") => Some(Op::Tilde),
            _ => None,
        };
        if let Some(op) = op2 {
            self.i += 2;
            return op;
        }
        let op1 = match self.peek() {
            Some(b'=') => Some(Op::Eq),
            Some(b'>') => Some(Op::Gt),
            Some(b'<') => Some(Op::Lt),
            Some(b'~') => Some(Op::Tilde),
            Some(b'^') => Some(Op::Caret),
            _ => None,
        };
        match op1 {
            Some(op) => {
                self.i += 1;
                op
            }
            None => Op::Eq,
        }
    }

    /// Reads dot-separated identifiers `[0-9A-Za-z-]+` (the regex's syntax only).
    fn idents(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        loop {
            let s = self.i;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-')
            {
                self.i += 1;
            }
            if self.i == s {
                // An empty identifier: give back the dot we took, if any.
                if self.i > start {
                    self.i -= 1;
                    return Some((start, self.i));
                }
                return None;
            }
            if self.peek() == Some(b'.') && self.i + 1 < self.b.len() {
                self.i += 1;
            } else {
                return Some((start, self.i));
            }
        }
    }

    /// Reads a version as written in a constraint, syntax only; `None` (position unchanged)
    /// when there is none here.
    fn cv(&mut self) -> Option<Cv> {
        let start = self.i;
        if self.peek() == Some(b'v') {
            self.i += 1;
        }
        let mut parts = [None; 3];
        for (n, part) in parts.iter_mut().enumerate() {
            let save = self.i;
            if n > 0 {
                if self.peek() != Some(b'.') {
                    break;
                }
                self.i += 1;
            }
            let s = self.i;
            while self.peek().is_some_and(is_part_byte) {
                self.i += 1;
            }
            if self.i == s {
                self.i = save;
                if n == 0 {
                    self.i = start;
                    return None;
                }
                break;
            }
            *part = Some((s, self.i));
        }
        let mut pre = None;
        if self.peek() == Some(b'-') {
            let save = self.i;
            self.i += 1;
            match self.idents() {
                Some(span) => pre = Some(span),
                None => self.i = save,
            }
        }
        if self.peek() == Some(b'+') {
            let save = self.i;
            self.i += 1;
            if self.idents().is_none() {
                self.i = save;
            }
        }
        Some(Cv { start, parts, pre })
    }

    /// Turns a written version into a constraint, as Masterminds' `parseConstraint` does.
    fn constraint(&self, op: Op, cv: &Cv) -> Result<Constraint, RangeError> {
        let text = |s: (usize, usize)| &self.text[s.0..s.1];
        let is_x =
            |p: Option<(usize, usize)>| p.is_some_and(|s| matches!(text(s), "x" | "X" | "*"));
        let num = |p: (usize, usize)| -> Result<u64, RangeError> {
            let t = text(p);
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return self.err(
                    p.0,
                    format!("{t:?} is not a number, nor a wildcard x, X or *"),
                );
            }
            match t.parse::<u64>() {
                Ok(n) => Ok(n),
                Err(_) => self.err(p.0, format!("{t:?} does not fit in 64 bits")),
            }
        };
        let [p0, p1, p2] = cv.parts;
        let p0 = p0.expect("a constraint version has a major part");
        let (mut major, mut minor, mut patch) = (0, 0, 0);
        let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
        match (p1, p2) {
            _ if is_x(Some(p0)) => dirty = true,
            (None, _) => {
                major = num(p0)?;
                (dirty, minor_dirty) = (true, true);
            }
            (Some(m), _) if is_x(Some(m)) => {
                major = num(p0)?;
                (dirty, minor_dirty) = (true, true);
            }
            (Some(m), None) => {
                (major, minor) = (num(p0)?, num(m)?);
                (dirty, patch_dirty) = (true, true);
            }
            (Some(m), Some(p)) if is_x(Some(p)) => {
                (major, minor) = (num(p0)?, num(m)?);
                (dirty, patch_dirty) = (true, true);
            }
            (Some(m), Some(p)) => (major, minor, patch) = (num(p0)?, num(m)?, num(p)?),
        }
        let pre = match cv.pre {
            Some(span) => {
                let t = text(span);
                let mut at = span.0;
                for id in t.split('.') {
                    if id.len() > 1 && id.starts_with('0') && id.bytes().all(|c| c.is_ascii_digit())
                    {
                        return self.err(
                            at,
                            format!("prerelease identifier {id:?} is numeric with a leading zero"),
                        );
                    }
                    at += id.len() + 1;
                }
                t
            }
            None => "",
        };
        Ok(Constraint {
            op,
            major,
            minor,
            patch,
            pre: pre.into(),
            dirty,
            minor_dirty,
            patch_dirty,
        })
    }

    fn expect_cv(&mut self, what: &str) -> Result<Cv, RangeError> {
        match self.cv() {
            Some(cv) => Ok(cv),
            None => {
                let found = match self.peek() {
                    None => "the end of the range".to_string(),
                    Some(_) => {
                        let rest = &self.text[self.i..];
                        let c = rest.chars().next().expect("not at the end");
                        format!("{c:?}")
                    }
                };
                self.err(self.i, format!("expected {what}, found {found}"))
            }
        }
    }

    /// After `cv` (already read, with `op`), is this a hyphen range `cv - cv`? Reads it if so.
    fn hyphen(&mut self) -> Option<Cv> {
        let save = self.i;
        if self.skip_ws() > 0 && self.peek() == Some(b'-') {
            self.i += 1;
            if self.skip_ws() > 0 {
                if let Some(to) = self.cv() {
                    // The second version must end at a separator, the end, or anything the
                    // rewrite's added space turns into one.
                    return Some(to);
                }
            }
        }
        self.i = save;
        None
    }

    fn range(mut self) -> Result<Range, RangeError> {
        let mut groups = Vec::new();
        loop {
            let mut constraints = Vec::new();
            // A hyphen range may start here (start of a group, after a comma, or right after
            // another hyphen range).
            let mut range_may_start = true;
            self.skip_ws();
            loop {
                let op_at = self.i;
                let op = self.op();
                let had_op = self.i > op_at;
                self.skip_ws();
                let cv = self.expect_cv(if had_op {
                    "a version after the operator"
                } else {
                    "a version or an operator"
                })?;
                let mut after_hyphen = false;
                if let Some(to) = self.hyphen() {
                    if had_op {
                        return self.err(
                            op_at,
                            "a hyphen range cannot follow an operator (write `1.2 - 1.4.5`)",
                        );
                    }
                    if !range_may_start {
                        return self.err(
                            cv.start,
                            "a hyphen range must be separated from the constraint before it by a comma (Masterminds joins them otherwise)",
                        );
                    }
                    constraints.push(self.constraint(Op::Ge, &cv)?);
                    constraints.push(self.constraint(Op::Le, &to)?);
                    after_hyphen = true;
                } else {
                    constraints.push(self.constraint(op, &cv)?);
                }
                let ws = self.skip_ws();
                match self.peek() {
                    None => break,
                    Some(b'|') if self.b.get(self.i + 1) == Some(&b'|') => break,
                    Some(b'|') => {
                        return self
                            .err(self.i, "a single `|` (alternatives are separated by `||`)")
                    }
                    Some(b',') => {
                        self.i += 1;
                        self.skip_ws();
                        range_may_start = true;
                    }
                    Some(_) if after_hyphen => range_may_start = true,
                    Some(_) if ws > 0 => range_may_start = false,
                    Some(_) => {
                        let c = self.text[self.i..].chars().next().expect("not at the end");
                        return self.err(
                            self.i,
                            format!("unexpected {c:?} after a version (constraints are separated by spaces or commas)"),
                        );
                    }
                }
            }
            let include_pre = constraints.iter().any(|c| !c.pre.is_empty());
            groups.push(Group {
                constraints,
                include_pre,
            });
            if self.peek().is_none() {
                break;
            }
            self.i += 2; // "||"
        }
        let bounds = groups.iter().map(|g| {
            g.constraints.iter().fold(((0, 0, 0), MAX), |(lo, hi), c| {
                let (clo, chi) = c.bounds();
                (lo.max(clo), hi.min(chi))
            })
        });
        let (floor, ceiling) = bounds.fold((MAX, (0, 0, 0)), |(lo, hi), (glo, ghi)| {
            (lo.min(glo), hi.max(ghi))
        });
        Ok(Range {
            groups,
            floor,
            ceiling,
        })
    }
}

impl Range {
    /// Parses a range as Masterminds' `NewConstraint` does; the error says where it stops.
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        Parser {
            text,
            b: text.as_bytes(),
            i: 0,
        }
        .range()
    }

    /// Does the version satisfy the range (any group, all of its constraints)?
    pub fn satisfies(&self, v: &Version<'_>) -> bool {
        self.groups.iter().any(|g| {
            (v.pre.is_empty() || g.include_pre) && g.constraints.iter().all(|c| c.check(v))
        })
    }

    /// Can a version with these numbers satisfy the range at all? (`false` is certain; `true`
    /// means: check it.)
    #[inline(always)]
    pub fn may_admit(&self, triple: (u64, u64, u64)) -> bool {
        self.floor <= triple && triple <= self.ceiling
    }

    /// [`Range::may_admit`] on the major alone.
    #[inline(always)]
    pub fn may_admit_major(&self, major: u64) -> bool {
        self.floor.0 <= major && major <= self.ceiling.0
    }

    /// Could some prerelease satisfy this range?
    pub fn admits_prereleases(&self) -> bool {
        self.groups.iter().any(|g| g.include_pre)
    }
}

impl Constraint {
    #[inline]
    fn cmp(&self, v: &Version<'_>) -> Ordering {
        (v.major, v.minor, v.patch)
            .cmp(&(self.major, self.minor, self.patch))
            .then_with(|| compare_pre(v.pre, &self.pre))
    }

    /// Bounds on `major.minor.patch` of any version this constraint admits, read off the
    /// rules in `check`.
    fn bounds(&self) -> (Triple, Triple) {
        let con = (self.major, self.minor, self.patch);
        let unbounded_tilde = con == (0, 0, 0) && !self.minor_dirty && !self.patch_dirty;
        let tilde_ceiling = if unbounded_tilde {
            MAX
        } else if self.minor_dirty {
            (self.major, u64::MAX, u64::MAX)
        } else {
            (self.major, self.minor, u64::MAX)
        };
        match self.op {
            Op::Eq if !self.dirty => (con, con),
            Op::Eq | Op::Tilde => (con, tilde_ceiling),
            Op::Caret => {
                let hi = if self.major > 0 || self.minor_dirty {
                    (self.major, u64::MAX, u64::MAX)
                } else if self.minor > 0 || self.patch_dirty {
                    (0, self.minor, u64::MAX)
                } else {
                    (0, 0, self.patch)
                };
                (con, hi)
            }
            Op::Lt => ((0, 0, 0), con),
            Op::Le if !self.dirty => ((0, 0, 0), con),
            Op::Le if self.minor_dirty => ((0, 0, 0), (self.major, u64::MAX, u64::MAX)),
            Op::Le => ((0, 0, 0), (self.major, self.minor, u64::MAX)),
            Op::Gt | Op::Ge => (con, MAX),
            Op::Ne => ((0, 0, 0), MAX),
        }
    }

    /// Masterminds' per-operator rules (the prerelease gate is applied by the group).
    fn check(&self, v: &Version<'_>) -> bool {
        match self.op {
            Op::Eq => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    self.cmp(v) == Ordering::Equal
                }
            }
            Op::Ne => {
                if self.dirty {
                    if self.major != v.major {
                        return true;
                    }
                    if self.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if self.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        return *v.pre != *self.pre;
                    }
                }
                self.cmp(v) != Ordering::Equal
            }
            Op::Gt => {
                if !self.dirty {
                    return self.cmp(v) == Ordering::Greater;
                }
                if v.major != self.major {
                    return v.major > self.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > self.minor;
                }
                self.cmp(v) == Ordering::Greater
            }
            Op::Lt => self.cmp(v) == Ordering::Less,
            Op::Ge => self.cmp(v) != Ordering::Less,
            Op::Le => {
                if !self.dirty {
                    return self.cmp(v) != Ordering::Greater;
                }
                if v.major > self.major {
                    return false;
                }
                !(v.major == self.major && v.minor > self.minor && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if self.cmp(v) == Ordering::Less {
                    return false;
                }
                if self.major > 0 || self.minor_dirty {
                    return v.major == self.major;
                }
                if v.major > 0 {
                    return false;
                }
                if self.minor > 0 || self.patch_dirty {
                    return v.minor == self.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == self.patch
            }
        }
    }

    fn tilde(&self, v: &Version<'_>) -> bool {
        if self.cmp(v) == Ordering::Less {
            return false;
        }
        if (self.major, self.minor, self.patch) == (0, 0, 0)
            && !self.minor_dirty
            && !self.patch_dirty
        {
            return true;
        }
        if v.major != self.major {
            return false;
        }
        v.minor == self.minor || self.minor_dirty
    }
}
