//! `filterTags.pattern`: Go's RE2 syntax, compiled with the `regex` crate.
//!
//! The two dialects agree except where this file steps in:
//! - Go's Perl classes are ASCII (`\d` is `[0-9]`, `\w` is `[0-9A-Za-z_]`, `\s` is
//!   `[\t\n\f\r ]`, `\b` an ASCII word boundary); the crate's are Unicode. They are rewritten to
//!   the ASCII forms, in and out of brackets (the crate accepts nested classes).
//! - Go reads `\Q...\E` as a literal; the crate does not know it. It is rewritten escaped.
//!
//! Tags are ASCII by the OCI spec, so the first point only matters for odd inputs; the second
//! makes patterns valid in Flux valid here.

use regex::Regex;

/// Rewrites Go-only syntax into the crate's; other text is kept as written.
pub fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.char_indices().peekable();
    let mut in_class = false;
    // In a class, a `]` right after `[` or `[^` is a literal.
    let mut class_start = false;
    while let Some((at, c)) = chars.next() {
        let was_class_start = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let ascii = match e {
                    'd' => Some("[0-9]"),
                    'D' => Some("[^0-9]"),
                    'w' => Some("[0-9A-Za-z_]"),
                    'W' => Some("[^0-9A-Za-z_]"),
                    's' => Some(r"[\t\n\f\r ]"),
                    'S' => Some(r"[^\t\n\f\r ]"),
                    'b' if !in_class => Some(r"(?-u:\b)"),
                    'B' if !in_class => Some(r"(?-u:\B)"),
                    _ => None,
                };
                match (ascii, e) {
                    (Some(r), _) => out.push_str(r),
                    (None, 'Q') if !in_class => {
                        let rest = &pattern[at + 2..];
                        let (literal, after) = match rest.find(r"\E") {
                            Some(end) => (&rest[..end], end + 2),
                            None => (rest, rest.len()),
                        };
                        out.push_str(&regex::escape(literal));
                        // Skip what was consumed.
                        let stop = at + 2 + after;
                        while chars.peek().is_some_and(|&(i, _)| i < stop) {
                            chars.next();
                        }
                    }
                    (None, e) => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if let Some(&(_, '^')) = chars.peek() {
                    chars.next();
                    out.push('^');
                }
            }
            '[' if in_class && chars.peek().is_some_and(|&(_, n)| n == ':') => {
                // A POSIX class like [:alpha:]: copy through its closing `:]`.
                out.push('[');
                for (_, n) in chars.by_ref() {
                    out.push(n);
                    if n == ']' {
                        break;
                    }
                }
            }
            '[' => out.push_str(r"\["),
            ']' if in_class && !was_class_start => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Compiles a Go pattern; the error, if any, is about the pattern as written.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    match Regex::new(&translate(pattern)) {
        Ok(re) => Ok(re),
        Err(e) => Err(Regex::new(pattern).err().unwrap_or(e)),
    }
}

/// The literal text every match must start the haystack with, when the pattern says so
/// plainly: `^` then plain characters, and no `|` outside brackets and groups (which could
/// offer another way to match). A character followed by a quantifier is not required, nor
/// is anything after a character that is not plain. Empty when there is no such prefix.
/// (`latest` checks it before calling the regex: most tags fail on their first bytes.)
pub fn required_prefix(pattern: &str) -> &str {
    let Some(body) = pattern.strip_prefix('^') else {
        return "";
    };
    if top_level_alternation(pattern) {
        return "";
    }
    let plain = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '_' | '/' | ':' | '@' | '=' | ',' | '%' | '~' | '\''
            )
    };
    let mut end = 0;
    for (i, c) in body.char_indices() {
        if !plain(c) {
            // A quantifier applies to the character before it: that one is optional.
            if matches!(c, '?' | '*' | '{') {
                end = body[..end].char_indices().last().map_or(0, |(j, _)| j);
            }
            break;
        }
        end = i + c.len_utf8();
    }
    &body[..end]
}

/// Is there a `|` outside brackets and groups?
fn top_level_alternation(pattern: &str) -> bool {
    let mut depth = 0usize;
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => {
                in_class = true;
                // A `]` first in a class is a literal.
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                }
            }
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth = depth.saturating_sub(1),
            '|' if !in_class && depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_go_only_syntax() {
        assert_eq!(translate(r"^v(\d+)\.(\d+)$"), r"^v([0-9]+)\.([0-9]+)$");
        assert_eq!(translate(r"[\d.]+"), r"[[0-9].]+");
        assert_eq!(translate(r"[^\s]"), r"[^[\t\n\f\r ]]");
        assert_eq!(translate(r"\bx\B"), r"(?-u:\b)x(?-u:\B)");
        assert_eq!(translate(r"\Qa.b*\E+"), r"a\.b\*+");
        assert_eq!(translate(r"\Qa.b"), r"a\.b");
        assert_eq!(translate(r"[]a]\d"), r"[]a][0-9]");
        assert_eq!(translate(r"[[:alpha:]\w]"), r"[[:alpha:][0-9A-Za-z_]]");
        assert_eq!(translate(r"\\d"), r"\\d");
        assert_eq!(translate(r"(?P<ts>.*)"), r"(?P<ts>.*)");
    }

    #[test]
    fn matches_as_go_does() {
        let re = compile(r"^\d+$").unwrap();
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣")); // Arabic-Indic digits are not \d in Go
        let re = compile(r"^\w+$").unwrap();
        assert!(!re.is_match("é"));
        let re = compile(r"^\Q1.0\E$").unwrap();
        assert!(re.is_match("1.0") && !re.is_match("1x0"));
        let re = compile(r"(?P<n>\d+)").unwrap();
        assert_eq!(re.capture_names().nth(1), Some(Some("n")));
    }

    #[test]
    fn finds_required_prefixes() {
        let cases = [
            (r"^main-[0-9a-f]+-(?P<ts>[0-9]+)$", "main-"),
            (r"^test-(.*)$", "test-"),
            (r"^v", "v"),
            (r"^RELEASE\.(?P<timestamp>.*)Z$", "RELEASE"),
            (r"^main?", "mai"),
            (r"^ab*", "a"),
            (r"^a{2}", ""),
            (r"^ab+", "ab"),
            (r"^ab|cd", ""),
            (r"^a(b|c)", "a"),
            (r"^a[|]|x", ""),
            (r"^a[]|]b", "a"),
            (r"main-", ""),
            (r"^(?i)main", ""),
            (r"^", ""),
            (r"^é", ""),
        ];
        for (p, want) in cases {
            assert_eq!(required_prefix(p), want, "{p}");
        }
    }

    /// Whatever the prefix rules out, the regex rules out too.
    #[test]
    fn required_prefixes_are_sound() {
        let patterns = [
            r"^main-[0-9a-f]+-(?P<ts>[0-9]+)$",
            r"^main?x",
            r"^ab*c",
            r"^ab+",
            r"^a(b|c)d",
            r"^ab|cd",
            r"^a[]|]b",
            r"^x\d",
            r"^v1\.",
            r"^a{2}",
            r"^abc?",
            r"^ab.c",
        ];
        let tags = [
            "main-abc-123",
            "mai",
            "maix",
            "mainx",
            "ac",
            "abbc",
            "a",
            "ab",
            "abd",
            "acd",
            "cd",
            "xcd",
            "a]b",
            "a|b",
            "x1",
            "v1.0",
            "aa",
            "abc",
            "ab",
            "abxc",
            "",
            "zz",
        ];
        for p in patterns {
            let re = compile(p).unwrap();
            let prefix = required_prefix(p);
            for t in tags {
                if re.is_match(t) {
                    assert!(
                        t.starts_with(prefix),
                        "{p:?} matches {t:?} without {prefix:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn errors_are_about_the_pattern_as_written() {
        let e = compile(r"^test-(.*").unwrap_err().to_string();
        assert!(e.contains("^test-(.*"), "{e}");
    }
}
