//! Scalar text: where a quoted scalar ends, whether a value can stay plain, and how to quote it.

use std::sync::LazyLock;

use regex::Regex;

/// How a scalar is written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Single,
    Double,
}

/// The end (exclusive) of a quoted scalar that starts with its quote at `start` on a single
/// line, or None when it does not close on that line.
pub fn quoted_end(text: &str, start: usize, style: Style) -> Option<usize> {
    let bytes = text.as_bytes();
    let quote = match style {
        Style::Single => b'\'',
        Style::Double => b'"',
        Style::Plain => return None,
    };
    if bytes.get(start) != Some(&quote) {
        return None;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' || b == b'\r' {
            return None;
        }
        if style == Style::Double && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote {
            if style == Style::Single && bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Whether a YAML reader (YAML 1.1 or 1.2 core schema) would read this plain scalar as
/// something other than a string: null, bool, int, float, timestamp, merge key.
pub fn reads_as_non_string(value: &str) -> bool {
    static NON_STRING: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^(?:",
            // null
            r"~|null|Null|NULL|",
            // bool, YAML 1.1 and 1.2
            r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|",
            // int, YAML 1.1 (binary, octal, decimal, hex, sexagesimal) and 1.2
            r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?0o[0-7]+|[-+]?(?:0|[1-9][0-9_]*)|",
            r"[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+|[-+]?[0-9]+|",
            // float, YAML 1.1 (as PyYAML reads it) and 1.2
            r"[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|",
            r"[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|",
            r"[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|",
            r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|",
            r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|",
            // merge key and value key
            r"<<|=",
            r")$"
        ))
        .expect("static regex")
    });
    static TIMESTAMP: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}").expect("static regex"));
    value.is_empty() || NON_STRING.is_match(value) || TIMESTAMP.is_match(value)
}

/// Whether `value` can be written as a plain scalar and be read back as the same string.
pub fn plain_ok(value: &str, in_flow: bool) -> bool {
    if value.is_empty() || reads_as_non_string(value) {
        return false;
    }
    let bytes = value.as_bytes();
    let first = bytes[0];
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if value
        .chars()
        .any(|c| matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
    {
        return false;
    }
    if b" \t#&*!|>'\"%@`,[]{}".contains(&first) {
        return false;
    }
    if matches!(first, b'-' | b'?' | b':') {
        match bytes.get(1) {
            None => return false,
            Some(b' ') => return false,
            Some(b) if in_flow && b",[]{}".contains(b) => return false,
            _ => {}
        }
    }
    if value.starts_with("---") || value.starts_with("...") {
        return false;
    }
    if value.ends_with(' ') || value.ends_with(':') {
        return false;
    }
    if value.contains(": ") || value.contains(" #") {
        return false;
    }
    if in_flow && bytes.iter().any(|b| b",[]{}".contains(b)) {
        return false;
    }
    true
}

/// Whether `value` can be written single-quoted (only printable characters on one line).
fn single_ok(value: &str) -> bool {
    !value
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}'))
}

/// Renders `value` in the given quoted style (double quotes when single cannot hold it).
pub fn quote(value: &str, style: Style) -> String {
    if style == Style::Single && single_ok(value) {
        return format!("'{}'", value.replace('\'', "''"));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c.is_control() || c == '\u{feff}' => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The bytes that replace a scalar of style `old` with `value`; `quote_style` is the file's
/// preferred quotes for a plain value that must be quoted.
pub fn render(value: &str, old: Style, in_flow: bool, quote_style: Style) -> String {
    match old {
        Style::Plain if plain_ok(value, in_flow) => value.to_string(),
        Style::Plain => quote(value, quote_style),
        style => quote(value, style),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_strings_are_recognised() {
        for v in [
            "1.10",
            "123",
            "true",
            "yes",
            "no",
            "on",
            "OFF",
            "null",
            "~",
            "1e3",
            "0x1F",
            "0o17",
            "017",
            "1_000",
            "190:20:30",
            "-1.5",
            ".5",
            ".inf",
            "-.Inf",
            ".NaN",
            "2024-01-02",
            "",
            "1.",
            "y",
            "<<",
        ] {
            assert!(reads_as_non_string(v), "{v}");
        }
        for v in [
            "1.0.0",
            "v1.10",
            "1.10-rc1",
            "latest",
            "sha256:abc",
            "ghcr.io/a/b:1.0",
            "1.2.3-alpha",
            "yes-please",
            "0x",
            "1e",
            "nulls",
        ] {
            assert!(!reads_as_non_string(v), "{v}");
        }
    }

    #[test]
    fn plain_values_that_need_quotes() {
        assert!(plain_ok("ghcr.io/org/app:1.0.0@sha256:abc", false));
        assert!(plain_ok("a:1", true));
        assert!(!plain_ok("a: b", false));
        assert!(!plain_ok("a #b", false));
        assert!(!plain_ok("- x", false));
        assert!(!plain_ok("'x", false));
        assert!(!plain_ok("a,b", true));
        assert!(plain_ok("a,b", false));
        assert!(!plain_ok("x:", false));
        assert!(!plain_ok("*x", false));
        assert!(plain_ok("-x", false));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(quote("1.10", Style::Double), "\"1.10\"");
        assert_eq!(quote("it's", Style::Single), "'it''s'");
        assert_eq!(quote("a\"b\\c", Style::Double), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("a\nb", Style::Single), "\"a\\nb\"");
        assert_eq!(render("1.10", Style::Plain, false, Style::Single), "'1.10'");
        assert_eq!(render("1.0.1", Style::Plain, false, Style::Double), "1.0.1");
        assert_eq!(
            render("1.0.1", Style::Single, false, Style::Double),
            "'1.0.1'"
        );
    }

    #[test]
    fn quoted_ends() {
        assert_eq!(quoted_end(r#"x: "a\"b" # c"#, 3, Style::Double), Some(9));
        assert_eq!(quoted_end("x: 'it''s' # c", 3, Style::Single), Some(10));
        assert_eq!(quoted_end("x: 'open\n'", 3, Style::Single), None);
    }
}
