//! Files a YAML parser rejects (Helm templates): marked lines edited one by one, only where the
//! value's span on its line is unambiguous; otherwise the whole file is left alone.

use std::sync::LazyLock;

use regex::Regex;

use super::doc::{self, ParseFailure};
use super::edit::{line_range, marker_lines, splice, unknown, Splice};
use super::marker;
use super::scalar::{self, Style};
use super::{Change, ObjectId, Problem, Report, Setters};

/// A value on a line: plain without spaces, braces or commas, or simply quoted.
const VALUE: &str = r#"(?P<val>[^\s'"{}\[\],#&*!|>%@`][^\s{}\[\],#]*|"[^"\\{}]*"|'[^'{}]*')"#;

/// `key: value ` or `- value ` before a marker comment.
static LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"^[ \t]*(?:-[ \t]+)*(?:(?:[A-Za-z0-9_][A-Za-z0-9_.\-/]*|"[^"\\{{}}]*"|'[^'{{}}]*')[ \t]*:[ \t]+)?{VALUE}[ \t]+$"#
    ))
    .expect("static regex")
});

/// `- value` on the line after a marker that stands on its own line.
static ITEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r#"^[ \t]*(?:-[ \t]+)+{VALUE}[ \t]*$"#)).expect("static regex")
});

/// The first comment on the line that is a marker: (comment start, marker).
fn find_marker(line: &str) -> Option<(usize, marker::Marker)> {
    let b = line.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] == b'#' && (i == 0 || matches!(b[i - 1], b' ' | b'\t')))
        .find_map(|i| marker::parse(&line[i..]).map(|m| (i, m)))
}

fn decode(raw: &str) -> (String, Style) {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        (inner.to_string(), Style::Double)
    } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        (inner.to_string(), Style::Single)
    } else {
        (raw.to_string(), Style::Plain)
    }
}

pub(super) fn apply(
    text: &str,
    setters: &Setters,
    failure: &ParseFailure,
) -> Result<Report, Problem> {
    let starts = doc::line_starts(text);
    let mut report = Report::default();
    report.notes.push(Problem {
        line: failure.line,
        message: format!(
            "not YAML ({}); marked lines are edited one by one",
            failure.message
        ),
    });
    let mut splices = Vec::new();
    for l in marker_lines(text, &starts) {
        let (ls, le) = line_range(text, &starts, l);
        let Some((c, m)) = find_marker(&text[ls..le]) else {
            continue;
        };
        let line = l + 1;
        let Some(image) = m.policy.as_ref().and_then(|p| setters.get(p)) else {
            report.notes.push(unknown(&m, setters, line));
            continue;
        };
        let before = &text[ls..ls + c];
        let (base, caps) = if before.trim().is_empty() {
            if l + 1 >= starts.len() {
                return Err(ambiguous(line, failure));
            }
            let (ns, ne) = line_range(text, &starts, l + 1);
            (ns, ITEM.captures(&text[ns..ne]))
        } else {
            (ls, LINE.captures(before))
        };
        let Some(val) = caps.and_then(|c| c.name("val")) else {
            return Err(ambiguous(line, failure));
        };
        if val.as_str().ends_with(':') {
            return Err(ambiguous(line, failure));
        }
        let (old, style) = decode(val.as_str());
        let new_value = m.value(image);
        if new_value == old {
            continue;
        }
        splices.push(Splice {
            start: base + val.start(),
            end: base + val.end(),
            bytes: scalar::render(&new_value, style, false, Style::Double),
        });
        report.applied.changes.push((
            ObjectId::default(),
            Change {
                old_value: old,
                new_value,
                setter: m.setter.clone(),
            },
        ));
    }
    splices.sort_by_key(|s| s.start);
    if splices.windows(2).any(|w| w[0].end > w[1].start) {
        return Err(Problem {
            line: failure.line,
            message: "two markers edit the same value; file left alone".into(),
        });
    }
    if !splices.is_empty() {
        report.applied.output = Some(splice(text, &splices).into_bytes());
    }
    Ok(report)
}

fn ambiguous(line: usize, failure: &ParseFailure) -> Problem {
    Problem {
        line,
        message: format!(
            "the file is not YAML (line {}: {}) and the marked value's span on this line is ambiguous; file left alone",
            failure.line, failure.message
        ),
    }
}
