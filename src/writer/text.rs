//! Other text files (Dockerfile, Terraform, jsonnet, `.env`, ...), opted into by globs: marked
//! lines edited one by one, only where the single value token a marker controls is unambiguous.
//!
//! The rule, per file:
//! - The comment syntax comes from the file name ([`Syntax::for_name`]): `#` (Dockerfile, shell,
//!   `.env`, TOML, ...), `#`, `//` and `/* */` (Terraform/HCL, jsonnet), `//` and `/* */` (JSON
//!   with comments, JS-like), all three for names not in the table. Plain JSON has no comments,
//!   so a `.json` file can only carry markers written as JSONC `//` or `/* */` comments.
//! - A comment opener counts only outside a quoted string and at the line start or after a space
//!   or tab. The first comment on a line is the candidate (a `/* */` comment that is not a marker
//!   lets the search go on after it); it is a marker when its body is the marker's JSON object.
//! - A marker after code on its line applies to that code (a `/* */` marker to the code before
//!   and after it on the line, up to a later comment); a marker alone on its line applies to the code of the next line (a
//!   marker on that line wins; the head marker is then ignored). Docker reads a `#` after code as
//!   an argument, not a comment, so in a Dockerfile the marker belongs on its own line above
//!   `FROM`/`ARG` (a trailing `FROM image # marker` is edited too, but breaks the instruction).
//! - The value in the code: the quoted strings (double quotes, and single quotes where the
//!   language has them) that are not keys (a key is followed by `:` or `=`); exactly one must
//!   remain, its content is the value (no escapes, no interpolation). Without quoted strings,
//!   and only in languages with bare words (Dockerfile, shell, `.env`, unknown files): the last
//!   whitespace-separated token, without a leading `NAME=`; on a Dockerfile `FROM` line, flags
//!   (`--platform=...`) and a trailing `AS <stage>` are skipped and one token must remain.
//! - The value must look like what the marker writes (a reference, a name, a tag, a digest).
//!
//! A marker of a known policy whose value is ambiguous or missing refuses the whole file (an
//! error: nothing is written); markers of unknown policies are reported as notes.

use std::sync::LazyLock;

use regex::Regex;

use super::doc;
use super::edit::{line_range, marker_lines, splice, unknown, Splice};
use super::marker::{self, Field, Marker};
use super::{Change, ObjectId, Problem, Report, Setters};

/// The comment and string syntax of a file, chosen from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Dockerfile / Containerfile: `#` comments, bare words, `FROM ... AS stage`.
    Dockerfile,
    /// Shell, `.env`, TOML, properties, Makefile, Python: `#` comments, bare words.
    Hash,
    /// Terraform / HCL: `#`, `//`, `/* */`; values are double-quoted strings.
    Hcl,
    /// Jsonnet: `#`, `//`, `/* */`; values are single- or double-quoted strings.
    Jsonnet,
    /// JSON with comments: `//`, `/* */`; values are double-quoted strings.
    Json,
    /// JS-like (JS, TS, CUE, Go, Groovy, Gradle, Jenkinsfile): `//`, `/* */`; quoted strings.
    CLike,
    /// Any other name: `#`, `//`, `/* */`; quoted strings or bare words.
    Generic,
}

impl Syntax {
    /// The syntax for a file name (the last path component).
    pub fn for_name(name: &str) -> Syntax {
        let n = name.to_ascii_lowercase();
        let ext = n.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if n == "dockerfile"
            || n == "containerfile"
            || n.starts_with("dockerfile.")
            || n.starts_with("containerfile.")
            || ext == "dockerfile"
            || ext == "containerfile"
        {
            return Syntax::Dockerfile;
        }
        if n == ".env" || n.starts_with(".env.") || n == "makefile" {
            return Syntax::Hash;
        }
        match ext {
            "env" | "sh" | "bash" | "zsh" | "toml" | "properties" | "mk" | "py" | "conf"
            | "cfg" | "rb" => Syntax::Hash,
            "tf" | "tfvars" | "hcl" => Syntax::Hcl,
            "jsonnet" | "libsonnet" => Syntax::Jsonnet,
            "json" | "jsonc" | "json5" => Syntax::Json,
            "js" | "mjs" | "cjs" | "ts" | "cue" | "go" | "groovy" | "gradle" | "kts" => {
                Syntax::CLike
            }
            _ if n == "jenkinsfile" => Syntax::CLike,
            _ => Syntax::Generic,
        }
    }

    fn hash(self) -> bool {
        !matches!(self, Syntax::Json | Syntax::CLike)
    }

    fn slashes(self) -> bool {
        !matches!(self, Syntax::Dockerfile | Syntax::Hash)
    }

    fn single_quotes(self) -> bool {
        !matches!(self, Syntax::Hcl | Syntax::Json)
    }

    fn bare_words(self) -> bool {
        matches!(self, Syntax::Dockerfile | Syntax::Hash | Syntax::Generic)
    }
}

/// A comment on a line: where it starts, and the marker when it is one.
struct Comment {
    start: usize,
    /// Where the comment ends: the line's end, or after the `*/` of a block comment.
    end: usize,
    marker: Option<Marker>,
}

/// The end (exclusive) of the quoted string starting at `i`, or the line's end if unclosed.
fn string_end(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' && q == b'"' {
            j += 2;
            continue;
        }
        if b[j] == q {
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The first comment on a line (see the module rule).
fn first_comment(line: &str, syntax: Syntax) -> Option<Comment> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || (c == b'\'' && syntax.single_quotes()) {
            i = string_end(b, i);
            continue;
        }
        let after_space = i == 0 || matches!(b[i - 1], b' ' | b'\t');
        if after_space {
            if c == b'#' && syntax.hash() {
                return Some(Comment {
                    start: i,
                    end: b.len(),
                    marker: marker::parse(&line[i..]),
                });
            }
            if c == b'/' && syntax.slashes() && b.get(i + 1) == Some(&b'/') {
                return Some(Comment {
                    start: i,
                    end: b.len(),
                    marker: marker::parse(line[i + 2..].trim_start_matches('/')),
                });
            }
            if c == b'/' && syntax.slashes() && b.get(i + 1) == Some(&b'*') {
                let Some(end) = line[i + 2..].find("*/") else {
                    return Some(Comment {
                        start: i,
                        end: b.len(),
                        marker: None,
                    });
                };
                let body = &line[i + 2..i + 2 + end];
                let body = body.trim_start_matches('*');
                if let Some(m) = marker::parse(body) {
                    return Some(Comment {
                        start: i,
                        end: i + 2 + end + 2,
                        marker: Some(m),
                    });
                }
                i += 2 + end + 2;
                continue;
            }
        }
        i += 1;
    }
    None
}

/// A value's span in the code before a comment, relative to the code's start.
struct Value {
    start: usize,
    end: usize,
    quoted: bool,
}

/// Why no value could be chosen.
type Refusal = String;

/// The value in `code` (see the module rule).
fn choose(code: &str, syntax: Syntax) -> Result<Value, Refusal> {
    let b = code.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || (c == b'\'' && syntax.single_quotes()) {
            let end = string_end(b, i);
            if end == b.len() && (end - i < 2 || b[end - 1] != c) {
                return Err("a quoted string does not close on this line".into());
            }
            let rest = code[end..].trim_start_matches([' ', '\t']);
            let is_key = rest.starts_with(':') || rest.starts_with('=');
            if !is_key {
                strings.push((i, end));
            }
            i = end;
            continue;
        }
        i += 1;
    }
    match strings.as_slice() {
        [(s, e)] => {
            let inner = &code[s + 1..e - 1];
            if inner.contains('\\') || inner.contains("${") || inner.contains("$(") {
                return Err("the quoted value has escapes or interpolation".into());
            }
            return Ok(Value {
                start: s + 1,
                end: e - 1,
                quoted: true,
            });
        }
        [] => {}
        _ => return Err(format!("{} quoted values on the line", strings.len())),
    }
    if !syntax.bare_words() {
        return Err("no quoted string value on the line".into());
    }
    let tokens: Vec<(usize, &str)> = code
        .split([' ', '\t'])
        .scan(0usize, |at, t| {
            let start = *at;
            *at += t.len() + 1;
            Some((start, t))
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let mut chosen: &[(usize, &str)] = &tokens;
    let from = syntax == Syntax::Dockerfile
        && tokens
            .first()
            .is_some_and(|(_, t)| t.eq_ignore_ascii_case("FROM"));
    if from {
        chosen = &chosen[1..];
        while chosen.first().is_some_and(|(_, t)| t.starts_with("--")) {
            chosen = &chosen[1..];
        }
        if chosen.len() == 3 && chosen[1].1.eq_ignore_ascii_case("AS") {
            chosen = &chosen[..1];
        }
        if chosen.len() != 1 {
            return Err("a FROM line must name one image (optionally `AS <stage>`)".into());
        }
    } else if tokens.iter().filter(|(_, t)| ASSIGN.is_match(t)).count() > 1 {
        return Err("several NAME=value assignments on the line".into());
    }
    let Some(&(start, token)) = chosen.last() else {
        return Err("no value on the line".into());
    };
    let skip = ASSIGN.find(token).map_or(0, |m| m.end());
    if skip == token.len() {
        return Err("the assignment has an empty value".into());
    }
    Ok(Value {
        start: start + skip,
        end: start + token.len(),
        quoted: false,
    })
}

/// `NAME=` at the start of a token.
static ASSIGN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_.\-]*=").expect("static regex"));

/// Whether `value` looks like what a marker of `field` writes (an empty digest only quoted).
fn looks_like(field: Field, value: &str, quoted: bool) -> bool {
    static FULL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._/:@+\-]*$").expect("static regex"));
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._/:\-]*$").expect("static regex"));
    static TAG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$").expect("static regex")
    });
    static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-z0-9]+(?:[+._\-][a-z0-9]+)*:[A-Za-z0-9=_\-]+$").expect("static regex")
    });
    match field {
        Field::Full => FULL.is_match(value),
        Field::Name => NAME.is_match(value),
        Field::Tag => TAG.is_match(value),
        Field::Digest => (quoted && value.is_empty()) || DIGEST.is_match(value),
    }
}

fn field_word(field: Field) -> &'static str {
    match field {
        Field::Full => "an image reference",
        Field::Name => "an image name",
        Field::Tag => "a tag",
        Field::Digest => "a digest",
    }
}

fn refuse(line: usize, why: &str) -> Problem {
    Problem {
        line,
        message: format!("the marked value on this line is ambiguous ({why}); file left alone"),
    }
}

/// Rewrites the marked values of one text file named `name` (see the module rule).
pub(super) fn apply(name: &str, text: &[u8], setters: &Setters) -> Result<Report, Problem> {
    if memchr::memmem::find(text, marker::KEY.as_bytes()).is_none() {
        return Ok(Report::default());
    }
    let text = std::str::from_utf8(text).map_err(|e| Problem {
        line: memchr::memchr_iter(b'\n', &text[..e.valid_up_to()]).count() + 1,
        message: "the file is not UTF-8".into(),
    })?;
    let syntax = Syntax::for_name(name);
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let starts = doc::line_starts(text);
    let range = |l: usize| {
        let (s, e) = line_range(text, &starts, l);
        (s.max(bom).min(e), e)
    };
    let mut report = Report::default();
    let mut splices: Vec<Splice> = Vec::new();
    let lines = marker_lines(text, &starts);
    for &l in &lines {
        let (ls, le) = range(l);
        let Some(Comment {
            start: c,
            end: ce,
            marker: Some(m),
        }) = first_comment(&text[ls..le], syntax)
        else {
            continue;
        };
        let line = l + 1;
        let before_empty = text[ls..ls + c].trim().is_empty();
        let after = &text[ls + ce..le];
        let (base, code) = if !after.trim().is_empty() {
            // A block comment with code after it: the line without the comment (blanked, so
            // offsets stay), up to a later comment.
            let cut = first_comment(after, syntax).map_or(after.len(), |n| n.start);
            let code = format!(
                "{}{}{}",
                &text[ls..ls + c],
                " ".repeat(ce - c),
                &after[..cut]
            );
            (ls, code)
        } else if before_empty {
            if l + 1 >= starts.len() {
                report.notes.push(Problem {
                    line,
                    message: format!("marker '{}' has no line after it", m.setter),
                });
                continue;
            }
            let (ns, ne) = range(l + 1);
            let next = &text[ns..ne];
            let cut = match first_comment(next, syntax) {
                Some(Comment {
                    marker: Some(_), ..
                }) => {
                    report.notes.push(Problem {
                        line,
                        message: "the next line has its own marker; this one is ignored".into(),
                    });
                    continue;
                }
                Some(Comment { start, .. }) => start,
                None => next.len(),
            };
            (ns, next[..cut].to_string())
        } else {
            (ls, text[ls..ls + c].to_string())
        };
        let code = code.as_str();
        let Some(image) = m.policy.as_ref().and_then(|p| setters.get(p)) else {
            report.notes.push(unknown(&m, setters, line));
            continue;
        };
        if code.trim().is_empty() {
            return Err(refuse(line, "no value on the next line"));
        }
        let v = choose(code, syntax).map_err(|why| refuse(line, &why))?;
        let old = &code[v.start..v.end];
        if !looks_like(m.field, old, v.quoted) {
            return Err(refuse(
                line,
                &format!("'{old}' does not look like {}", field_word(m.field)),
            ));
        }
        let new_value = m.value(image);
        if new_value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#'))
        {
            return Err(refuse(
                line,
                &format!("the new value '{new_value}' cannot be written here"),
            ));
        }
        if new_value.is_empty() && !v.quoted {
            return Err(refuse(line, "an empty value cannot replace a bare word"));
        }
        if new_value == old {
            continue;
        }
        let (start, end) = (base + v.start, base + v.end);
        if splices.iter().any(|s| s.start == start) {
            return Err(Problem {
                line,
                message: "two markers edit the same value; file left alone".into(),
            });
        }
        splices.push(Splice {
            start,
            end,
            bytes: new_value.clone(),
        });
        report.applied.changes.push((
            ObjectId::default(),
            Change {
                old_value: old.to_string(),
                new_value,
                setter: m.setter.clone(),
            },
        ));
    }
    splices.sort_by_key(|s| s.start);
    if !splices.is_empty() {
        report.applied.output = Some(splice(text, &splices).into_bytes());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(code: &str, syntax: Syntax) -> Result<&str, Refusal> {
        choose(code, syntax).map(|v| &code[v.start..v.end])
    }

    #[test]
    fn syntax_from_names() {
        assert_eq!(Syntax::for_name("Dockerfile"), Syntax::Dockerfile);
        assert_eq!(Syntax::for_name("Dockerfile.dev"), Syntax::Dockerfile);
        assert_eq!(Syntax::for_name("app.dockerfile"), Syntax::Dockerfile);
        assert_eq!(Syntax::for_name(".env"), Syntax::Hash);
        assert_eq!(Syntax::for_name("prod.env"), Syntax::Hash);
        assert_eq!(Syntax::for_name("main.tf"), Syntax::Hcl);
        assert_eq!(Syntax::for_name("app.libsonnet"), Syntax::Jsonnet);
        assert_eq!(Syntax::for_name("package.json"), Syntax::Json);
        assert_eq!(Syntax::for_name("README"), Syntax::Generic);
    }

    #[test]
    fn comments_outside_strings_only() {
        let c = first_comment(r#"x = "a # b" # {"$imagepolicy": "n:p"}"#, Syntax::Hcl).unwrap();
        assert_eq!(c.start, 12);
        assert!(c.marker.is_some());
        // `#` glued to a word is not a comment.
        assert!(first_comment(r#"x=a#{"$imagepolicy": "n:p"}"#, Syntax::Hash).is_none());
        // `//` is no comment in a Dockerfile; `#` none in JSON.
        assert!(
            first_comment(r#"FROM a // {"$imagepolicy": "n:p"}"#, Syntax::Dockerfile).is_none()
        );
        assert!(first_comment(r#""a": "b" # {"$imagepolicy": "n:p"}"#, Syntax::Json).is_none());
        // An ordinary comment hides a marker after it; a block comment does not.
        let c = first_comment(r#"a # note # {"$imagepolicy": "n:p"}"#, Syntax::Hash).unwrap();
        assert!(c.marker.is_none());
        let c = first_comment(
            r#"a /* x */ /* {"$imagepolicy": "n:p"} */"#,
            Syntax::Jsonnet,
        )
        .unwrap();
        assert_eq!((c.start, c.marker.is_some()), (10, true));
    }

    #[test]
    fn choosing_the_value() {
        assert_eq!(
            pick("FROM reg/app:1.0 ", Syntax::Dockerfile),
            Ok("reg/app:1.0")
        );
        assert_eq!(
            pick(
                "FROM --platform=$P reg/app:1.0 AS build ",
                Syntax::Dockerfile
            ),
            Ok("reg/app:1.0")
        );
        assert!(pick("FROM a b ", Syntax::Dockerfile).is_err());
        assert_eq!(pick("image = \"reg/app:1\" ", Syntax::Hcl), Ok("reg/app:1"));
        assert_eq!(
            pick("\"image\": \"reg/app:1\", ", Syntax::Jsonnet),
            Ok("reg/app:1")
        );
        assert_eq!(
            pick("image: 'reg/app:1', ", Syntax::Jsonnet),
            Ok("reg/app:1")
        );
        assert!(pick("{ a: \"x\", b: \"y\" } ", Syntax::Jsonnet).is_err());
        assert!(pick("image = var.image ", Syntax::Hcl).is_err());
        assert_eq!(pick("APP_IMAGE=reg/app:1 ", Syntax::Hash), Ok("reg/app:1"));
        assert_eq!(pick("export V=\"1.0\" ", Syntax::Hash), Ok("1.0"));
        assert!(pick("A=1 B=2 ", Syntax::Hash).is_err());
        assert!(pick("V= ", Syntax::Hash).is_err());
        assert!(pick("x = \"${var.a}:1\" ", Syntax::Hcl).is_err());
    }

    #[test]
    fn values_must_look_like_the_field() {
        assert!(looks_like(Field::Tag, "1.0.0", false));
        assert!(!looks_like(Field::Tag, "reg/app:1", false));
        assert!(looks_like(Field::Digest, "", true));
        assert!(!looks_like(Field::Digest, "", false));
        assert!(looks_like(Field::Full, "reg:5000/app:1@sha256:ab", false));
        assert!(!looks_like(Field::Name, "reg/app@sha256:ab", false));
    }
}
