//! Applying setters to one file: find the markers, resolve their scalars, splice new bytes.

use std::collections::BTreeSet;

use super::doc::{self, Doc, Fp};
use super::marker::{self, Marker};
use super::scalar::{self, Style};
use super::{template, Change, Problem, Report, Setters};

/// One replacement of a byte range.
pub(super) struct Splice {
    pub start: usize,
    pub end: usize,
    pub bytes: String,
}

pub(super) fn apply(text: &[u8], setters: &Setters) -> Result<Report, Problem> {
    if memchr::memmem::find(text, marker::KEY.as_bytes()).is_none() {
        return Ok(Report::default());
    }
    let text = std::str::from_utf8(text).map_err(|e| Problem {
        line: memchr::memchr_iter(b'\n', &text[..e.valid_up_to()]).count() + 1,
        message: "the file is not UTF-8".into(),
    })?;
    match doc::read(text) {
        Ok(doc) => apply_parsed(text, &doc, setters),
        Err(failure) => template::apply(text, setters, &failure),
    }
}

/// Byte range of line `l` without its line break.
pub(super) fn line_range(text: &str, starts: &[usize], l: usize) -> (usize, usize) {
    let s = starts[l];
    let mut e = starts.get(l + 1).map_or(text.len(), |&n| n - 1);
    if e > s && text.as_bytes()[e - 1] == b'\r' && e < text.len() + 1 {
        e -= 1;
    }
    (s, e.max(s))
}

/// 0-based lines that mention `$imagepolicy`.
pub(super) fn marker_lines(text: &str, starts: &[usize]) -> BTreeSet<usize> {
    memchr::memmem::find_iter(text.as_bytes(), marker::KEY.as_bytes())
        .map(|p| doc::line_of(starts, p))
        .collect()
}

/// Where line `l`'s comment starts: the first `#` outside every scalar, at the line start or
/// after a space or tab.
fn comment_start(text: &str, d: &Doc, l: usize) -> Option<usize> {
    let (ls, le) = line_range(text, &d.line_starts, l);
    let first = d.scalars.partition_point(|s| s.end <= ls);
    let covering: Vec<(usize, usize)> = d.scalars[first..]
        .iter()
        .take_while(|s| s.start < le)
        .map(|s| (s.start, s.end))
        .collect();
    let b = text.as_bytes();
    (ls..le).find(|&i| {
        b[i] == b'#'
            && (i == ls || matches!(b[i - 1], b' ' | b'\t'))
            && !covering.iter().any(|&(s, e)| s <= i && i < e)
    })
}

/// The diagnostic for a marker whose policy is not among the setters.
pub(super) fn unknown(m: &Marker, setters: &Setters, line: usize) -> Problem {
    let message = match &m.policy {
        None => format!(
            "marker '{}' is not <namespace>:<policy>[:tag|:name|:digest]",
            m.setter
        ),
        Some(policy) => {
            let ns = policy.split(':').next().unwrap_or_default();
            let namespaces: BTreeSet<&str> =
                setters.keys().filter_map(|k| k.split(':').next()).collect();
            if !namespaces.is_empty() && !namespaces.contains(ns) {
                format!(
                    "marker '{}' names a policy in namespace '{ns}', not the automation's ({})",
                    m.setter,
                    namespaces.into_iter().collect::<Vec<_>>().join(", ")
                )
            } else {
                format!(
                    "marker '{}' names no policy with a latest image: '{policy}' is unknown, \
                     suspended, or its repository has no successful scan yet",
                    m.setter
                )
            }
        }
    };
    Problem { line, message }
}

fn note(line: usize, message: impl Into<String>) -> Problem {
    Problem {
        line,
        message: message.into(),
    }
}

fn apply_parsed(text: &str, d: &Doc, setters: &Setters) -> Result<Report, Problem> {
    let mut report = Report::default();
    // scalar index → (marker, 1-based marker line)
    let mut targets: Vec<(usize, Marker, usize)> = Vec::new();
    for l in marker_lines(text, &d.line_starts) {
        let Some(c) = comment_start(text, d, l) else {
            continue;
        };
        let (ls, le) = line_range(text, &d.line_starts, l);
        let Some(m) = marker::parse(&text[c..le]) else {
            continue;
        };
        let line = l + 1;
        let whole_line = text[ls..c].bytes().all(|b| b == b' ' || b == b'\t');
        let target = if whole_line {
            head_target(text, d, l, line, &mut report.notes)
        } else {
            line_target(d, l, c, line, &mut report.notes)
        };
        if let Some(i) = target {
            if targets.iter().any(|(t, _, _)| *t == i) {
                report
                    .notes
                    .push(note(line, "a second marker for the same value is ignored"));
                continue;
            }
            targets.push((i, m, line));
        }
    }
    targets.sort_by_key(|(i, _, _)| *i);
    let quote_style = if d.single_quoted > d.double_quoted {
        Style::Single
    } else {
        Style::Double
    };
    let mut splices = Vec::new();
    let mut edited: Vec<(usize, String)> = Vec::new();
    for (i, m, line) in targets {
        let Some(image) = m.policy.as_ref().and_then(|p| setters.get(p)) else {
            report.notes.push(unknown(&m, setters, line));
            continue;
        };
        let s = &d.scalars[i];
        let new_value = m.value(image);
        if new_value == s.value {
            continue;
        }
        let Some(style) = doc::inline_style(s) else {
            continue;
        };
        if !doc::span_matches(text, s) {
            return Err(Problem {
                line,
                message: "cannot locate the marked value's bytes; file left alone".into(),
            });
        }
        splices.push(Splice {
            start: s.start,
            end: s.end,
            bytes: scalar::render(&new_value, style, s.in_flow, quote_style),
        });
        report.applied.changes.push((
            d.objects.get(s.doc).cloned().unwrap_or_default(),
            Change {
                old_value: s.value.clone(),
                new_value: new_value.clone(),
                setter: m.setter.clone(),
            },
        ));
        edited.push((i, new_value));
    }
    if splices.is_empty() {
        return Ok(report);
    }
    let out = splice(text, &splices);
    verify(text, &out, &edited, d, splices[0].start)?;
    report.applied.output = Some(out.into_bytes());
    Ok(report)
}

/// The scalar a marker at the end of line `l` (comment at byte `c`) belongs to.
fn line_target(
    d: &Doc,
    l: usize,
    c: usize,
    line: usize,
    notes: &mut Vec<Problem>,
) -> Option<usize> {
    let ending: Vec<usize> = d
        .scalars
        .iter()
        .enumerate()
        .skip(d.scalars.partition_point(|s| s.end_line < l))
        .take_while(|(_, s)| s.start_line <= l)
        .filter(|(_, s)| !s.is_key && s.end_line == l && s.end <= c && s.end > s.start)
        .map(|(i, _)| i)
        .collect();
    match ending.as_slice() {
        [] => {
            notes.push(note(line, "marker is not on the line of a scalar value"));
            None
        }
        [i] => {
            let s = &d.scalars[*i];
            if doc::inline_style(s).is_none() || s.start_line != l {
                notes.push(note(
                    line,
                    "marker on a multi-line or block scalar is not applied",
                ));
                None
            } else {
                Some(*i)
            }
        }
        _ => {
            notes.push(note(
                line,
                "marker follows several values on one line; it is not applied",
            ));
            None
        }
    }
}

/// The sequence item scalar on the line after a marker that stands on its own line.
fn head_target(
    text: &str,
    d: &Doc,
    l: usize,
    line: usize,
    notes: &mut Vec<Problem>,
) -> Option<usize> {
    let next = l + 1;
    let found = if next < d.line_starts.len() {
        let (ns, _) = line_range(text, &d.line_starts, next);
        d.scalars.iter().position(|s| {
            s.start_line == next
                && s.in_seq
                && !s.is_key
                && text[ns..s.start.max(ns)]
                    .bytes()
                    .all(|b| matches!(b, b' ' | b'\t' | b'-'))
        })
    } else {
        None
    };
    let Some(i) = found else {
        notes.push(note(
            line,
            "a marker on its own line applies only to the sequence item scalar on the next line",
        ));
        return None;
    };
    if comment_start(text, d, next).is_some() {
        notes.push(note(
            line,
            "the sequence item below has its own comment, which takes precedence over this marker",
        ));
        return None;
    }
    if doc::inline_style(&d.scalars[i]).is_none() {
        notes.push(note(
            line,
            "marker on a multi-line or block scalar is not applied",
        ));
        return None;
    }
    Some(i)
}

/// Replaces the given (sorted, disjoint) ranges.
pub(super) fn splice(text: &str, splices: &[Splice]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for s in splices {
        out.push_str(&text[at..s.start]);
        out.push_str(&s.bytes);
        at = s.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Re-reads the output: the same events, with only the edited scalars' values changed.
fn verify(
    text: &str,
    out: &str,
    edited: &[(usize, String)],
    _d: &Doc,
    first: usize,
) -> Result<(), Problem> {
    let line = doc::line_of(&doc::line_starts(text), first) + 1;
    let fail = |why: String| Problem {
        line,
        message: format!(
            "the edit would change more than the marked values ({why}); file left alone"
        ),
    };
    let mut expected = doc::fingerprint(text).map_err(|e| fail(e.message))?;
    let mut k = 0;
    let mut edits = edited.iter().peekable();
    for fp in expected.iter_mut() {
        if let Fp::Scalar { value, .. } = fp {
            if let Some((i, v)) = edits.peek() {
                if *i == k {
                    *value = v.clone();
                    edits.next();
                }
            }
            k += 1;
        }
    }
    let actual = doc::fingerprint(out).map_err(|e| fail(e.message))?;
    if actual != expected {
        return Err(fail("the result reads differently".into()));
    }
    Ok(())
}
