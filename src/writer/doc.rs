//! A YAML file's scalars with their byte spans, roles and documents, read from parser events.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use super::scalar::{self, Style};
use super::ObjectId;

/// How a scalar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Inline(Style),
    Block,
}

/// One scalar of the file.
#[derive(Debug, Clone)]
pub struct Scalar {
    /// The value as a YAML reader sees it.
    pub value: String,
    pub kind: Kind,
    /// Byte span of the scalar's own text (quotes included, anchor and tag excluded).
    pub start: usize,
    pub end: usize,
    /// 0-based lines of `start` and of the last byte.
    pub start_line: usize,
    pub end_line: usize,
    pub is_key: bool,
    pub in_flow: bool,
    /// The scalar is an item of a sequence.
    pub in_seq: bool,
    /// Index of its document in the stream.
    pub doc: usize,
}

/// The parsed view of a file that the writer needs.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub scalars: Vec<Scalar>,
    pub objects: Vec<ObjectId>,
    /// Byte offset where each line starts.
    pub line_starts: Vec<usize>,
    pub single_quoted: usize,
    pub double_quoted: usize,
}

/// A parse failure, 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    pub line: usize,
    pub message: String,
}

impl From<ScanError> for ParseFailure {
    fn from(e: ScanError) -> Self {
        ParseFailure {
            line: e.marker().line(),
            message: e.info().to_string(),
        }
    }
}

enum Frame {
    Map {
        expect_key: bool,
        last_key: Option<String>,
        flow: bool,
    },
    Seq {
        flow: bool,
    },
}

/// Byte offsets of every line start.
pub fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
    starts
}

/// 0-based line holding byte `pos`.
pub fn line_of(line_starts: &[usize], pos: usize) -> usize {
    line_starts.partition_point(|&s| s <= pos) - 1
}

/// Maps the parser's character indexes to byte offsets.
struct CharMap {
    ascii: bool,
    offsets: Vec<usize>,
    len: usize,
}

impl CharMap {
    fn new(text: &str) -> CharMap {
        if text.is_ascii() {
            return CharMap {
                ascii: true,
                offsets: Vec::new(),
                len: text.len(),
            };
        }
        CharMap {
            ascii: false,
            offsets: text.char_indices().map(|(i, _)| i).collect(),
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.ascii {
            char_index.min(self.len)
        } else {
            self.offsets.get(char_index).copied().unwrap_or(self.len)
        }
    }
}

/// Skips a node's properties (anchor, tag) and the space and comments after them.
fn skip_properties(text: &str, mut i: usize, end: usize) -> usize {
    let b = text.as_bytes();
    loop {
        match b.get(i) {
            Some(b'&') | Some(b'!') if i < end => {
                while i < end && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
                    i += 1;
                }
            }
            Some(b' ') | Some(b'\t') | Some(b'\r') | Some(b'\n') => i += 1,
            Some(b'#') if i > 0 && matches!(b[i - 1], b' ' | b'\t' | b'\n') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            _ => return i,
        }
        if i >= b.len() {
            return i;
        }
    }
}

/// The end of a quoted scalar starting at `start`, across lines.
fn quoted_end_multiline(text: &str, start: usize, style: Style) -> Option<usize> {
    let b = text.as_bytes();
    let quote = if style == Style::Single { b'\'' } else { b'"' };
    if b.get(start) != Some(&quote) {
        return None;
    }
    let mut i = start + 1;
    while i < b.len() {
        if style == Style::Double && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if style == Style::Single && b.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Parses the file and records its scalars.
pub fn read(text: &str) -> Result<Doc, ParseFailure> {
    let map = CharMap::new(text);
    let line_starts = line_starts(text);
    let mut doc = Doc {
        line_starts,
        ..Doc::default()
    };
    let mut frames: Vec<Frame> = Vec::new();
    let mut doc_index: usize = 0;
    let mut started = false;
    let mut object = ObjectId::default();
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next?;
        let start = map.byte(span.start.index());
        let end = map.byte(span.end.index());
        match event {
            Event::DocumentStart(_) => {
                if started {
                    doc_index += 1;
                }
                started = true;
                object = ObjectId::default();
            }
            Event::DocumentEnd => {
                while doc.objects.len() < doc_index {
                    doc.objects.push(ObjectId::default());
                }
                if doc.objects.len() == doc_index {
                    doc.objects.push(std::mem::take(&mut object));
                }
            }
            Event::Scalar(value, style, _, _) => {
                let (is_key, key_path) = role(&mut frames);
                let in_flow = frames.iter().any(|f| match f {
                    Frame::Map { flow, .. } | Frame::Seq { flow } => *flow,
                });
                let in_seq = matches!(frames.last(), Some(Frame::Seq { .. }));
                let (kind, tok_start, tok_end) = match style {
                    ScalarStyle::Plain => {
                        let s = skip_properties(text, start, end.max(start));
                        (Kind::Inline(Style::Plain), s.min(end), end)
                    }
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                        let st = if style == ScalarStyle::SingleQuoted {
                            Style::Single
                        } else {
                            Style::Double
                        };
                        let s = skip_properties(text, start, text.len());
                        let e = quoted_end_multiline(text, s, st).ok_or_else(|| ParseFailure {
                            line: span.start.line(),
                            message: "cannot find the end of a quoted scalar".into(),
                        })?;
                        if st == Style::Single {
                            doc.single_quoted += 1;
                        } else {
                            doc.double_quoted += 1;
                        }
                        (Kind::Inline(st), s, e)
                    }
                    _ => {
                        // The span runs into the next line's indentation; stop after the last
                        // line break of the content.
                        let e = memchr::memrchr(b'\n', &text.as_bytes()[start..end])
                            .map_or(end, |i| start + i + 1);
                        (Kind::Block, start, e)
                    }
                };
                let last = if tok_end > tok_start {
                    tok_end - 1
                } else {
                    tok_start
                };
                let scalar = Scalar {
                    value: value.to_string(),
                    kind,
                    start: tok_start,
                    end: tok_end,
                    start_line: line_of(&doc.line_starts, tok_start),
                    end_line: line_of(&doc.line_starts, last),
                    is_key,
                    in_flow,
                    in_seq,
                    doc: doc_index,
                };
                if !is_key {
                    record_identity(&mut object, &frames, key_path.as_deref(), &scalar.value);
                } else if let Some(Frame::Map { last_key, .. }) = frames.last_mut() {
                    *last_key = Some(scalar.value.clone());
                }
                doc.scalars.push(scalar);
            }
            Event::Alias(_) => {
                role(&mut frames);
            }
            Event::SequenceStart(_, _) => {
                role(&mut frames);
                let flow = end > start && text.as_bytes().get(start) == Some(&b'[');
                frames.push(Frame::Seq { flow });
            }
            Event::MappingStart(_, _) => {
                role(&mut frames);
                let flow = end > start && text.as_bytes().get(start) == Some(&b'{');
                frames.push(Frame::Map {
                    expect_key: true,
                    last_key: None,
                    flow,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                frames.pop();
            }
            _ => {}
        }
    }
    while doc.objects.len() <= doc_index {
        doc.objects.push(std::mem::take(&mut object));
    }
    Ok(doc)
}

/// Decides whether the next node is a mapping key, and flips the parent's expectation.
/// Returns (is_key, the key this node is the value of).
fn role(frames: &mut [Frame]) -> (bool, Option<String>) {
    match frames.last_mut() {
        Some(Frame::Map {
            expect_key,
            last_key,
            ..
        }) => {
            let is_key = *expect_key;
            *expect_key = !*expect_key;
            if is_key {
                *last_key = None;
                (true, None)
            } else {
                (false, last_key.clone())
            }
        }
        _ => (false, None),
    }
}

/// Fills apiVersion, kind, metadata.namespace and metadata.name of the current document.
fn record_identity(object: &mut ObjectId, frames: &[Frame], key: Option<&str>, value: &str) {
    let Some(key) = key else { return };
    match frames.len() {
        1 => match key {
            "apiVersion" => object.api_version = value.to_string(),
            "kind" => object.kind = value.to_string(),
            _ => {}
        },
        2 => {
            let parent_is_metadata = matches!(
                &frames[0],
                Frame::Map { last_key: Some(k), .. } if k == "metadata"
            );
            if parent_is_metadata {
                match key {
                    "name" => object.name = value.to_string(),
                    "namespace" => object.namespace = value.to_string(),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// One event of a parse, as far as an edit may not change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fp {
    Scalar {
        anchor: usize,
        block: bool,
        tag: String,
        value: String,
    },
    Other(String),
}

/// A structural fingerprint of a parse: every event, with scalar values, for checking that an
/// edit changed nothing but the intended values.
pub fn fingerprint(text: &str) -> Result<Vec<Fp>, ParseFailure> {
    let mut out = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, _) = next?;
        out.push(match event {
            Event::Scalar(v, style, anchor, tag) => Fp::Scalar {
                anchor,
                block: matches!(style, ScalarStyle::Literal | ScalarStyle::Folded),
                tag: format!("{tag:?}"),
                value: v.to_string(),
            },
            other => Fp::Other(format!("{other:?}")),
        });
    }
    Ok(out)
}

/// Whether a scalar can be edited in place: a single-line plain or quoted scalar.
pub fn inline_style(s: &Scalar) -> Option<Style> {
    match s.kind {
        Kind::Inline(style) if s.start_line == s.end_line && s.end > s.start => Some(style),
        _ => None,
    }
}

/// Checks that the bytes of a single-line scalar decode to its value (the span is right).
pub fn span_matches(text: &str, s: &Scalar) -> bool {
    let Some(style) = inline_style(s) else {
        return false;
    };
    let raw = &text[s.start..s.end];
    match style {
        Style::Plain => raw == s.value,
        Style::Single => raw.len() >= 2 && raw[1..raw.len() - 1].replace("''", "'") == s.value,
        Style::Double => {
            scalar::quoted_end(text, s.start, Style::Double) == Some(s.end)
                && (!raw.contains('\\') && raw[1..raw.len() - 1] == s.value || raw.contains('\\'))
        }
    }
}
