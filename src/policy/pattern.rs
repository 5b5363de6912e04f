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
    fn errors_are_about_the_pattern_as_written() {
        let e = compile(r"^test-(.*").unwrap_err().to_string();
        assert!(e.contains("^test-(.*"), "{e}");
    }
}
