//! `filterTags.extract` templates, expanded as Go's `Regexp.Expand` does.
//!
//! The `regex` crate's `Captures::expand` differs from Go's where it matters here: it reads
//! `$01` as group 1 (Go: a group *named* `01`, so nothing) and only ASCII in names (Go:
//! Unicode letters and digits). So the template is compiled here, once, into literal pieces
//! and group indices, following Go's rules:
//! - `$$` is a `$`;
//! - `$name` / `${name}`: the longest run of letters, digits and `_`; all digits without a
//!   leading zero (and below 10^8) is a group number, anything else a group name;
//! - a name with no such group, or a group that did not take part in the match, expands to
//!   nothing;
//! - a `$` not followed by a valid reference (`$`, `$-`, `${1`, `${}`) is kept as text.

use regex::{CaptureLocations, Regex};

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

fn push_text(pieces: &mut Vec<Piece>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Piece::Text(t)) = pieces.last_mut() {
        t.push_str(s);
    } else {
        pieces.push(Piece::Text(s.to_string()));
    }
}

/// Reads a reference after `$`: `(name, rest)`, or `None` when malformed.
fn reference(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let mut rest = &body[end..];
    if brace {
        rest = rest.strip_prefix('}')?;
    }
    Some((name, rest))
}

/// Go's rule: a group number is ASCII digits, no leading zero, below 10^8.
fn group_number(name: &str) -> Option<usize> {
    if name.len() > 8
        || !name.bytes().all(|c| c.is_ascii_digit())
        || (name.len() > 1 && name.starts_with('0'))
    {
        return None;
    }
    name.parse().ok()
}

impl Template {
    /// Compiles `template` against the groups of `re`.
    pub fn new(template: &str, re: &Regex) -> Template {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(at) = rest.find('$') {
            push_text(&mut pieces, &rest[..at]);
            let after = &rest[at + 1..];
            if let Some(r) = after.strip_prefix('$') {
                push_text(&mut pieces, "$");
                rest = r;
                continue;
            }
            match reference(after) {
                None => {
                    push_text(&mut pieces, "$");
                    rest = after;
                }
                Some((name, r)) => {
                    let index = match group_number(name) {
                        Some(n) => Some(n),
                        None => re.capture_names().position(|g| g == Some(name)),
                    };
                    // Groups that do not exist expand to nothing: leave them out.
                    if let Some(i) = index.filter(|&i| i < re.captures_len()) {
                        pieces.push(Piece::Group(i));
                    }
                    rest = r;
                }
            }
        }
        push_text(&mut pieces, rest);
        Template { pieces }
    }

    /// Appends the expansion for one match (`locs` filled by `Regex::captures_read`).
    #[inline]
    pub fn expand_into(&self, haystack: &str, locs: &CaptureLocations, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(i) => {
                    if let Some((s, e)) = locs.get(*i) {
                        out.push_str(&haystack[s..e]);
                    }
                }
            }
        }
    }

    /// Expands for `haystack`, or `None` when `re` does not match it.
    pub fn expand(&self, re: &Regex, haystack: &str) -> Option<String> {
        let mut locs = re.capture_locations();
        re.captures_read(&mut locs, haystack)?;
        let mut out = String::new();
        self.expand_into(haystack, &locs, &mut out);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(re: &str, tpl: &str, hay: &str) -> String {
        let re = Regex::new(re).unwrap();
        Template::new(tpl, &re).expand(&re, hay).unwrap()
    }

    #[test]
    fn go_expand_rules() {
        assert_eq!(
            x(r"^(?P<ts>\d+)-(?P<inc>\d+)$", "$ts$inc", "20220209-22"),
            "2022020922"
        );
        assert_eq!(x(r"^(?P<ts>\d+)_x$", "$ts_x", "12_x"), "");
        assert_eq!(x(r"^(?P<ts>\d+)_x$", "${ts}_x", "12_x"), "12_x");
        assert_eq!(x(r"ver(\d+)", "$1", "ver12"), "12");
        assert_eq!(x(r"ver(\d+)", "${1}", "ver12"), "12");
        assert_eq!(x(r"ver(\d+)", "$01", "ver12"), "");
        assert_eq!(x(r"ver(\d+)", "$$1", "ver12"), "$1");
        assert_eq!(x(r"ver(\d+)", "a$", "ver12"), "a$");
        assert_eq!(x(r"ver(\d+)", "${1", "ver12"), "${1");
        assert_eq!(x(r"ver(\d+)", "$-", "ver12"), "$-");
        assert_eq!(x(r"ver(\d+)", "$9", "ver12"), "");
        assert_eq!(x(r"ver(\d+)|(x)", "[$2]", "ver12"), "[]");
        assert_eq!(x(r"ver(?P<é>\d+)", "$é", "ver12"), "12");
    }
}
