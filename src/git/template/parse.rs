//! Lexer and parser for Go's `text/template` language: text, actions with trim markers,
//! comments, pipelines, variables and the control structures.

use std::collections::BTreeMap;

use super::funcs;

/// A byte offset into the template source.
pub(crate) type Pos = usize;

/// A parse failure at a byte offset.
#[derive(Debug, Clone)]
pub(crate) struct ParseError {
    pub pos: Pos,
    pub message: String,
}

fn err<T>(pos: Pos, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        pos,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    Keyword(&'static str),
    Field(String),
    Dot,
    Variable(String),
    Str(String),
    /// A raw (backquoted) string.
    RawStr(String),
    Char(char),
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
struct Item {
    tok: Tok,
    pos: Pos,
}

/// Deepest nesting of parentheses and control structures (Go has no limit; its stacks grow).
const MAX_NESTING: usize = 100;

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits the source into items, applying the trim markers to the text around actions.
fn lex(src: &str) -> Result<Vec<Item>, ParseError> {
    let b = src.as_bytes();
    let mut items: Vec<Item> = Vec::new();
    let mut pos = 0usize;
    let mut trim_next_text = false;
    loop {
        // Text up to the next "{{".
        let next = src[pos..].find("{{").map(|i| pos + i);
        let text_end = next.unwrap_or(src.len());
        let mut text = &src[pos..text_end];
        if trim_next_text {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next_text = false;
        }
        let Some(open) = next else {
            if !text.is_empty() {
                items.push(Item {
                    tok: Tok::Text(text.to_string()),
                    pos,
                });
            }
            items.push(Item {
                tok: Tok::Eof,
                pos: src.len(),
            });
            return Ok(items);
        };
        let mut inner = open + 2;
        let left_trim =
            b.get(inner) == Some(&b'-') && b.get(inner + 1).is_some_and(|c| is_space(*c));
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            inner += 2;
        }
        if !text.is_empty() {
            items.push(Item {
                tok: Tok::Text(text.to_string()),
                pos,
            });
        }
        // A comment: "/*" right after the delimiter (and trim marker).
        if src[inner..].starts_with("/*") {
            let Some(close) = src[inner + 2..].find("*/") else {
                return err(open, "unclosed comment");
            };
            let after = inner + 2 + close + 2;
            if src[after..].starts_with("}}") {
                pos = after + 2;
            } else if src[after..].starts_with(" -}}")
                || src[after..].starts_with("\t-}}")
                || src[after..].starts_with("\n-}}")
                || src[after..].starts_with("\r-}}")
            {
                pos = after + 4;
                trim_next_text = true;
            } else {
                return err(open, "comment ends before closing delimiter");
            }
            continue;
        }
        items.push(Item {
            tok: Tok::LeftDelim,
            pos: open,
        });
        pos = lex_action(src, inner, &mut items, &mut trim_next_text)?;
    }
}

/// Lexes the inside of an action starting at `pos`; returns the offset after `}}`.
fn lex_action(
    src: &str,
    mut pos: usize,
    items: &mut Vec<Item>,
    trim_next_text: &mut bool,
) -> Result<usize, ParseError> {
    let b = src.as_bytes();
    let mut paren_depth = 0i32;
    loop {
        let rest = &src[pos..];
        if rest.starts_with("}}") {
            if paren_depth > 0 {
                return err(pos, "unclosed left paren");
            }
            items.push(Item {
                tok: Tok::RightDelim,
                pos,
            });
            return Ok(pos + 2);
        }
        let Some(c) = rest.chars().next() else {
            return err(pos, "unclosed action");
        };
        let start = pos;
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                // A right trim marker is a space followed by "-}}".
                let mut end = pos;
                while end < b.len() && is_space(b[end]) {
                    if src[end + 1..].starts_with("-}}") {
                        break;
                    }
                    end += 1;
                }
                if end < b.len() && is_space(b[end]) && src[end + 1..].starts_with("-}}") {
                    if paren_depth > 0 {
                        return err(pos, "unclosed left paren");
                    }
                    if end > pos {
                        items.push(Item {
                            tok: Tok::Space,
                            pos,
                        });
                    }
                    items.push(Item {
                        tok: Tok::RightDelim,
                        pos: end + 1,
                    });
                    *trim_next_text = true;
                    return Ok(end + 4);
                }
                items.push(Item {
                    tok: Tok::Space,
                    pos,
                });
                pos = end;
            }
            '=' => {
                items.push(Item {
                    tok: Tok::Assign,
                    pos,
                });
                pos += 1;
            }
            ':' => {
                if !rest.starts_with(":=") {
                    return err(pos, "expected :=");
                }
                items.push(Item {
                    tok: Tok::Declare,
                    pos,
                });
                pos += 2;
            }
            '|' => {
                items.push(Item {
                    tok: Tok::Pipe,
                    pos,
                });
                pos += 1;
            }
            ',' => {
                items.push(Item {
                    tok: Tok::Comma,
                    pos,
                });
                pos += 1;
            }
            '(' => {
                paren_depth += 1;
                items.push(Item {
                    tok: Tok::LParen,
                    pos,
                });
                pos += 1;
            }
            ')' => {
                paren_depth -= 1;
                if paren_depth < 0 {
                    return err(pos, "unexpected right paren");
                }
                items.push(Item {
                    tok: Tok::RParen,
                    pos,
                });
                pos += 1;
            }
            '"' => {
                let (s, end) = lex_quote(src, pos)?;
                items.push(Item {
                    tok: Tok::Str(s),
                    pos,
                });
                pos = end;
            }
            '`' => {
                let Some(close) = src[pos + 1..].find('`') else {
                    return err(pos, "unterminated raw quoted string");
                };
                items.push(Item {
                    // strconv.Unquote drops carriage returns from raw strings.
                    tok: Tok::RawStr(src[pos + 1..pos + 1 + close].replace('\r', "")),
                    pos,
                });
                pos = pos + 1 + close + 1;
            }
            '\'' => {
                let (ch, end) = lex_char(src, pos)?;
                items.push(Item {
                    tok: Tok::Char(ch),
                    pos,
                });
                pos = end;
            }
            '$' => {
                let mut end = pos + 1;
                for ch in src[end..].chars() {
                    if !is_alnum(ch) {
                        break;
                    }
                    end += ch.len_utf8();
                }
                items.push(Item {
                    tok: Tok::Variable(src[pos..end].to_string()),
                    pos,
                });
                pos = end;
                check_terminator(src, pos)?;
            }
            '.' => {
                let next = b.get(pos + 1).copied();
                if next.is_some_and(|n| n.is_ascii_digit()) {
                    pos = lex_number(src, pos, items)?;
                } else {
                    let mut end = pos + 1;
                    for ch in src[end..].chars() {
                        if !is_alnum(ch) {
                            break;
                        }
                        end += ch.len_utf8();
                    }
                    if end == pos + 1 {
                        items.push(Item { tok: Tok::Dot, pos });
                    } else {
                        items.push(Item {
                            tok: Tok::Field(src[pos + 1..end].to_string()),
                            pos,
                        });
                    }
                    pos = end;
                    check_terminator(src, pos)?;
                }
            }
            '+' | '-' | '0'..='9' => {
                pos = lex_number(src, pos, items)?;
            }
            c if is_alnum(c) => {
                let mut end = pos;
                for ch in src[pos..].chars() {
                    if !is_alnum(ch) {
                        break;
                    }
                    end += ch.len_utf8();
                }
                let word = &src[pos..end];
                let tok = if let Some(k) = KEYWORDS.iter().find(|k| **k == word) {
                    Tok::Keyword(k)
                } else {
                    match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        _ => Tok::Ident(word.to_string()),
                    }
                };
                items.push(Item { tok, pos });
                pos = end;
                check_terminator(src, pos)?;
            }
            c => {
                return err(
                    start,
                    format!("unrecognized character in action: {}", go_rune(c)),
                )
            }
        }
    }
}

fn go_rune(c: char) -> String {
    format!("U+{:04X} '{}'", c as u32, c)
}

/// After an identifier, field or variable comes a space, punctuation or the delimiter.
fn check_terminator(src: &str, pos: usize) -> Result<(), ParseError> {
    let rest = &src[pos..];
    match rest.chars().next() {
        None => Ok(()),
        Some(' ' | '\t' | '\r' | '\n' | '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
        Some(_) if rest.starts_with("}}") => Ok(()),
        Some(c) => err(pos, format!("bad character {}", go_rune(c))),
    }
}

fn lex_number(src: &str, pos: usize, items: &mut Vec<Item>) -> Result<usize, ParseError> {
    let b = src.as_bytes();
    let mut end = pos;
    if matches!(b.get(end), Some(b'+' | b'-')) {
        end += 1;
    }
    let mut digits: &str = "0123456789_";
    let mut exp_chars: &[u8] = b"eE";
    if b.get(end) == Some(&b'0') {
        match b.get(end + 1) {
            Some(b'x' | b'X') => {
                end += 2;
                digits = "0123456789abcdefABCDEF_";
                exp_chars = b"pP";
            }
            Some(b'o' | b'O') => {
                end += 2;
                digits = "01234567_";
                exp_chars = b"";
            }
            Some(b'b' | b'B') => {
                end += 2;
                digits = "01_";
                exp_chars = b"";
            }
            _ => {}
        }
    }
    let accept_run = |mut e: usize, set: &str| {
        while e < b.len() && set.as_bytes().contains(&b[e]) {
            e += 1;
        }
        e
    };
    end = accept_run(end, digits);
    if b.get(end) == Some(&b'.') {
        end = accept_run(end + 1, digits);
    }
    if b.get(end).is_some_and(|c| exp_chars.contains(c)) {
        end += 1;
        if matches!(b.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        end = accept_run(end, "0123456789_");
    }
    if b.get(end) == Some(&b'i') {
        end += 1;
    }
    if b.get(end)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.')
    {
        return err(pos, format!("bad number syntax: {:?}", &src[pos..=end]));
    }
    items.push(Item {
        tok: Tok::Number(src[pos..end].to_string()),
        pos,
    });
    Ok(end)
}

/// Decodes a Go interpreted string literal starting at the opening quote.
fn lex_quote(src: &str, pos: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = src[pos + 1..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, pos + 1 + i + 1)),
            '\n' => return err(pos, "unterminated quoted string"),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return err(pos, "unterminated quoted string");
                };
                let decoded = match e {
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\x0b',
                    '\\' => '\\',
                    '"' => '"',
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v = 0u32;
                        for _ in 0..n {
                            let Some((_, h)) = chars.next() else {
                                return err(pos, "unterminated quoted string");
                            };
                            let Some(d) = h.to_digit(16) else {
                                return err(pos, "invalid syntax in quoted string");
                            };
                            v = v * 16 + d;
                        }
                        if e == 'x' {
                            // A byte; Go strings may hold any bytes, ours hold UTF-8.
                            char::from_u32(v).unwrap_or('\u{FFFD}')
                        } else {
                            match char::from_u32(v) {
                                Some(c) => c,
                                None => return err(pos, "invalid syntax in quoted string"),
                            }
                        }
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let Some((_, o)) = chars.next() else {
                                return err(pos, "unterminated quoted string");
                            };
                            let Some(d) = o.to_digit(8) else {
                                return err(pos, "invalid syntax in quoted string");
                            };
                            v = v * 8 + d;
                        }
                        if v > 255 {
                            return err(pos, "invalid syntax in quoted string");
                        }
                        char::from_u32(v).unwrap_or('\u{FFFD}')
                    }
                    _ => return err(pos, "invalid syntax in quoted string"),
                };
                out.push(decoded);
            }
            c => out.push(c),
        }
    }
    err(pos, "unterminated quoted string")
}

fn lex_char(src: &str, pos: usize) -> Result<(char, usize), ParseError> {
    let rest = &src[pos + 1..];
    let close = rest.find('\'').filter(|i| *i > 0);
    // Allow an escaped quote: '\''.
    let close = if let Some(after) = rest.strip_prefix("\\'") {
        after.find('\'').map(|i| i + 2)
    } else {
        close
    };
    let Some(close) = close else {
        return err(pos, "unterminated character constant");
    };
    let body = &rest[..close];
    let quoted = format!("\"{}\"", body.replace("\\'", "'"));
    let (s, _) = lex_quote(&quoted, 0).map_err(|e| ParseError {
        pos,
        message: format!("malformed character constant: {}", e.message),
    })?;
    let mut cs = s.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) => Ok((c, pos + 1 + close + 1)),
        _ => err(pos, format!("malformed character constant: '{body}'")),
    }
}

// ---------------------------------------------------------------------------------------------
// The tree.

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: Pos,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// `if`, `range` and `with`: a pipeline, a body and an optional `else` body.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub pos: Pos,
    /// `=` rather than `:=`.
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub pos: Pos,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// `.A.B`: fields of dot.
    Field(Pos, Vec<String>),
    /// `$x.A.B`
    Variable(Pos, String, Vec<String>),
    Dot(Pos),
    Nil(Pos),
    Bool(Pos, bool),
    /// A string constant; `true` when it was written as a raw (backquoted) string.
    Str(Pos, String, bool),
    Number(Pos, Number),
    /// A function name.
    Ident(Pos, String),
    /// `(pipeline)`, possibly followed by fields.
    Pipe(Pos, Box<Pipe>, Vec<String>),
    /// `fn.A.B`: a function called without arguments, then fields of its result.
    Chain(Pos, String, Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    pub is_char: bool,
}

impl Arg {
    pub fn pos(&self) -> Pos {
        match self {
            Arg::Field(p, _)
            | Arg::Variable(p, _, _)
            | Arg::Dot(p)
            | Arg::Nil(p)
            | Arg::Bool(p, _)
            | Arg::Str(p, _, _)
            | Arg::Number(p, _)
            | Arg::Ident(p, _)
            | Arg::Pipe(p, _, _)
            | Arg::Chain(p, _, _) => *p,
        }
    }
}

/// Go's `String()` of a node, used in "executing ... at <node>" messages.
impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Field(_, fields) => {
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Variable(_, name, fields) => {
                f.write_str(name)?;
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Str(_, s, false) => f.write_str(&super::gofmt::go_quote(s, false)),
            Arg::Str(_, s, true) => write!(f, "`{s}`"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::Ident(_, name) => f.write_str(name),
            // Go prints a bare parenthesised pipeline without its parentheses.
            Arg::Pipe(_, pipe, fields) if fields.is_empty() => write!(f, "{pipe}"),
            Arg::Pipe(_, pipe, fields) => {
                write!(f, "({pipe})")?;
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Chain(_, name, fields) => {
                f.write_str(name)?;
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match a {
                Arg::Pipe(_, pipe, fields) if fields.is_empty() => write!(f, "({pipe})")?,
                _ => write!(f, "{a}")?,
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A parsed template: the main tree and the `define`d ones.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub root: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

struct Parser {
    items: Vec<Item>,
    i: usize,
    /// Declared variable names in scope.
    vars: Vec<String>,
    range_depth: usize,
    /// Parentheses and control structures open around the current item.
    nesting: usize,
    defines: BTreeMap<String, Vec<Node>>,
}

/// Why a list ended.
enum ListEnd {
    Eof,
    /// `{{end}}`, with the offset of its closing delimiter.
    End(Pos),
    Else(Pos),
}

pub(crate) fn parse(src: &str) -> Result<Tree, ParseError> {
    let items = lex(src)?;
    let mut p = Parser {
        items,
        i: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        nesting: 0,
        defines: BTreeMap::new(),
    };
    let (root, end) = p.list(true)?;
    match end {
        ListEnd::Eof => {}
        ListEnd::End(pos) => return err(pos, "unexpected {{end}}"),
        ListEnd::Else(pos) => return err(pos, "unexpected {{else}}"),
    }
    Ok(Tree {
        root,
        defines: p.defines,
    })
}

impl Parser {
    fn peek(&self) -> &Item {
        &self.items[self.i]
    }

    fn next(&mut self) -> Item {
        let it = self.items[self.i].clone();
        if self.i < self.items.len() - 1 {
            self.i += 1;
        }
        it
    }

    fn prev_pos(&self) -> Pos {
        self.items[self.i.saturating_sub(1)].pos
    }

    /// Next item, skipping spaces.
    fn next_non_space(&mut self) -> Item {
        loop {
            let it = self.next();
            if it.tok != Tok::Space {
                return it;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let save = self.i;
        let it = self.next_non_space();
        self.i = save;
        it
    }

    fn expect_right(&mut self, context: &str) -> Result<(), ParseError> {
        let it = self.next_non_space();
        if it.tok != Tok::RightDelim {
            return err(
                it.pos,
                format!("unexpected {} in {context}", describe(&it.tok)),
            );
        }
        Ok(())
    }

    /// Parses nodes until EOF, `{{end}}` or `{{else}}`.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, ListEnd), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let it = self.next();
            match it.tok {
                Tok::Eof => {
                    return Ok((nodes, ListEnd::Eof));
                }
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::LeftDelim => {
                    let kw = self.peek_non_space();
                    match kw.tok {
                        Tok::Keyword("end") => {
                            self.next_non_space();
                            self.expect_right("end")?;
                            return Ok((nodes, ListEnd::End(self.prev_pos())));
                        }
                        Tok::Keyword("else") => {
                            self.next_non_space();
                            // `else if` / `else with` keep the delimiter open.
                            let after = self.peek_non_space();
                            if !matches!(after.tok, Tok::Keyword("if") | Tok::Keyword("with")) {
                                self.expect_right("else")?;
                            }
                            return Ok((nodes, ListEnd::Else(kw.pos)));
                        }
                        Tok::Keyword("define") => {
                            self.next_non_space();
                            if !top {
                                return err(kw.pos, "unexpected <define> in command");
                            }
                            self.define(kw.pos)?;
                        }
                        _ => nodes.push(self.action()?),
                    }
                }
                other => return err(it.pos, format!("unexpected {}", describe(&other))),
            }
        }
    }

    fn define(&mut self, pos: Pos) -> Result<(), ParseError> {
        let name_it = self.next_non_space();
        let (Tok::Str(name) | Tok::RawStr(name)) = name_it.tok else {
            return err(
                name_it.pos,
                "name of template in define clause must be a string",
            );
        };
        self.expect_right("define clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (body, end) = self.list(false)?;
        self.vars = saved_vars;
        match end {
            ListEnd::End(end) => self.add_define(name, body, end),
            ListEnd::Else(p) => err(p, "unexpected {{else}} in define clause"),
            ListEnd::Eof => err(pos, "unexpected EOF in define clause"),
        }
    }

    /// Go allows redefining a template only when one of the two bodies is empty.
    fn add_define(&mut self, name: String, body: Vec<Node>, end: Pos) -> Result<(), ParseError> {
        let empty = |nodes: &[Node]| {
            nodes
                .iter()
                .all(|n| matches!(n, Node::Text(t) if t.trim_matches([' ', '\t', '\r', '\n']).is_empty()))
        };
        match self.defines.get(&name) {
            Some(old) if !empty(old) && !empty(&body) => err(
                end,
                format!("template: multiple definition of template \"{name}\""),
            ),
            Some(_) if empty(&body) => Ok(()),
            _ => {
                self.defines.insert(name, body);
                Ok(())
            }
        }
    }

    fn action(&mut self) -> Result<Node, ParseError> {
        let it = self.peek_non_space();
        match it.tok {
            Tok::Keyword("if") => {
                self.next_non_space();
                Ok(Node::If(self.branch("if", it.pos)?))
            }
            Tok::Keyword("with") => {
                self.next_non_space();
                Ok(Node::With(self.branch("with", it.pos)?))
            }
            Tok::Keyword("range") => {
                self.next_non_space();
                Ok(Node::Range(self.branch("range", it.pos)?))
            }
            Tok::Keyword("block") => {
                self.next_non_space();
                self.block(it.pos)
            }
            Tok::Keyword("template") => {
                self.next_non_space();
                self.template_call(it.pos, "template clause")
            }
            Tok::Keyword("break") | Tok::Keyword("continue") => {
                self.next_non_space();
                let name = if it.tok == Tok::Keyword("break") {
                    "break"
                } else {
                    "continue"
                };
                if self.range_depth == 0 {
                    return err(it.pos, format!("{{{{{name}}}}} outside {{{{range}}}}"));
                }
                self.expect_right(name)?;
                Ok(if name == "break" {
                    Node::Break
                } else {
                    Node::Continue
                })
            }
            Tok::Keyword(k) => err(it.pos, format!("unexpected <{k}> in command")),
            _ => {
                let pipe = self.pipeline("command")?;
                Ok(Node::Action(pipe))
            }
        }
    }

    fn template_call(&mut self, pos: Pos, context: &str) -> Result<Node, ParseError> {
        let name_it = self.next_non_space();
        let (Tok::Str(name) | Tok::RawStr(name)) = name_it.tok else {
            return err(
                name_it.pos,
                format!("unexpected {} in {context}", describe(&name_it.tok)),
            );
        };
        let pipe = if self.peek_non_space().tok == Tok::RightDelim {
            self.next_non_space();
            None
        } else {
            Some(self.pipeline(context)?)
        };
        Ok(Node::Template { pos, name, pipe })
    }

    fn block(&mut self, pos: Pos) -> Result<Node, ParseError> {
        let name_it = self.next_non_space();
        let (Tok::Str(name) | Tok::RawStr(name)) = name_it.tok else {
            return err(
                name_it.pos,
                "name of template in block clause must be a string",
            );
        };
        let pipe = self.pipeline("block clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (body, end) = self.list(false)?;
        self.vars = saved_vars;
        match end {
            ListEnd::End(end) => self.add_define(name.clone(), body, end)?,
            ListEnd::Else(p) => return err(p, "unexpected {{else}} in block clause"),
            ListEnd::Eof => return err(pos, "unexpected EOF in block clause"),
        }
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    /// `if`/`with`/`range`: pipeline, body, optional else (or `else if`/`else with` chain).
    /// Counts one more level of nesting; refuses templates nested deeper than a thread's stack
    /// can walk.
    fn enter(&mut self, pos: Pos) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return err(
                pos,
                format!("template nested too deeply (more than {MAX_NESTING} levels)"),
            );
        }
        Ok(())
    }

    fn branch(&mut self, kind: &'static str, pos: Pos) -> Result<Branch, ParseError> {
        self.enter(pos)?;
        let vars_mark = self.vars.len();
        let pipe = self.pipeline(kind)?;
        if kind == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list(false)?;
        if kind == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            ListEnd::End(_) => None,
            ListEnd::Eof => return err(pos, "unexpected EOF"),
            ListEnd::Else(_) => {
                let chained = self.peek_non_space();
                match chained.tok {
                    Tok::Keyword(k @ ("if" | "with"))
                        if kind == "if" && k == "if" || kind == "with" && k == "with" =>
                    {
                        // `{{else if ...}}`: a nested branch sharing our `{{end}}`.
                        self.next_non_space();
                        let inner = self.branch(k, chained.pos)?;
                        Some(vec![if k == "if" {
                            Node::If(inner)
                        } else {
                            Node::With(inner)
                        }])
                    }
                    Tok::Keyword(k @ ("if" | "with")) => {
                        return err(
                            chained.pos,
                            format!("unexpected <{k}> in {{{{else}}}} of {kind}"),
                        );
                    }
                    _ => {
                        let (else_list, end2) = self.list(false)?;
                        match end2 {
                            ListEnd::End(_) => Some(else_list),
                            ListEnd::Else(p) => return err(p, "expected end; found {{else}}"),
                            ListEnd::Eof => return err(pos, "unexpected EOF"),
                        }
                    }
                }
            }
        };
        self.vars.truncate(vars_mark);
        self.nesting -= 1;
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to the closing delimiter.
    fn pipeline(&mut self, context: &str) -> Result<Pipe, ParseError> {
        self.pipeline_until(context, false)
    }

    fn pipeline_until(&mut self, context: &str, in_paren: bool) -> Result<Pipe, ParseError> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations: `$x :=`, `$x =`, `$k, $v :=` (range only).
        if let Tok::Variable(name) = &start.tok {
            let save = self.i;
            self.next_non_space();
            let after = self.peek_non_space();
            match after.tok {
                Tok::Declare | Tok::Assign => {
                    self.next_non_space();
                    pipe.is_assign = after.tok == Tok::Assign;
                    pipe.decl.push(name.clone());
                }
                Tok::Comma if context == "range" => {
                    self.next_non_space();
                    let second = self.next_non_space();
                    let Tok::Variable(name2) = second.tok else {
                        return err(
                            second.pos,
                            format!("unexpected {} in range", describe(&second.tok)),
                        );
                    };
                    let op = self.next_non_space();
                    if op.tok == Tok::Comma {
                        return err(op.pos, "too many declarations in range");
                    }
                    if !matches!(op.tok, Tok::Declare | Tok::Assign) {
                        return err(op.pos, "range can only initialize variables");
                    }
                    pipe.is_assign = op.tok == Tok::Assign;
                    pipe.decl.push(name.clone());
                    pipe.decl.push(name2);
                }
                _ => self.i = save,
            }
        }
        // As in Go, declared names are in scope for the parser from here on (so `$x := $x`
        // parses, and fails when executed), and `=` declares for the parser too.
        for d in &pipe.decl {
            self.vars.push(d.clone());
        }
        loop {
            let it = self.peek_non_space();
            match it.tok {
                Tok::RightDelim if !in_paren => {
                    self.next_non_space();
                    break;
                }
                Tok::RParen if in_paren => {
                    self.next_non_space();
                    break;
                }
                Tok::RightDelim | Tok::RParen | Tok::Eof => {
                    return err(
                        it.pos,
                        format!("unexpected {} in {context}", describe(&it.tok)),
                    );
                }
                _ => {
                    let cmd = self.command(context)?;
                    pipe.cmds.push(cmd);
                }
            }
        }
        if pipe.cmds.is_empty() {
            return err(pipe.pos, format!("missing value for {context}"));
        }
        for (n, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str(..)
            ) {
                return err(
                    c.pos,
                    format!("non executable command in pipeline stage {}", n + 1),
                );
            }
        }
        // Declared variables come into scope after the pipeline.
        Ok(pipe)
    }

    fn command(&mut self, context: &str) -> Result<Command, ParseError> {
        let start = self.peek_non_space();
        let mut cmd = Command {
            pos: start.pos,
            args: Vec::new(),
        };
        loop {
            // Operands are separated by spaces.
            let it = self.peek();
            match it.tok {
                Tok::Space => {
                    self.next();
                    continue;
                }
                Tok::RightDelim | Tok::RParen => break,
                Tok::Pipe => {
                    let p = it.pos;
                    self.next();
                    if cmd.args.is_empty() {
                        return err(p, "missing command");
                    }
                    return Ok(cmd);
                }
                _ => {}
            }
            let it = self.next();
            let operand = self.operand(it, context)?;
            // After an operand: space, pipe, or end.
            match self.peek().tok {
                Tok::Space | Tok::RightDelim | Tok::RParen | Tok::Pipe => {}
                ref t => {
                    return err(
                        self.peek().pos,
                        format!("unexpected {} in operand", describe(t)),
                    );
                }
            }
            cmd.args.push(operand);
        }
        if cmd.args.is_empty() {
            return err(start.pos, "empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self, it: Item, context: &str) -> Result<Arg, ParseError> {
        let pos = it.pos;
        let term = match it.tok {
            Tok::Ident(name) => {
                match funcs::lookup(&name) {
                    funcs::Lookup::Defined => {}
                    funcs::Lookup::Unsupported => {
                        return err(
                            pos,
                            format!("function \"{name}\" is not supported by tagline (Sprig functions on time, randomness, crypto, semver, URLs or map mutation)"),
                        );
                    }
                    funcs::Lookup::Undefined => {
                        return err(pos, format!("function \"{name}\" not defined"));
                    }
                }
                Arg::Ident(pos, name)
            }
            Tok::Dot => Arg::Dot(pos),
            Tok::Nil => Arg::Nil(pos),
            Tok::Bool(b) => Arg::Bool(pos, b),
            Tok::Str(s) => Arg::Str(pos, s, false),
            Tok::RawStr(s) => Arg::Str(pos, s, true),
            Tok::Char(c) => Arg::Number(
                pos,
                Number {
                    text: format!("'{c}'"),
                    int: Some(c as i64),
                    float: Some(f64::from(c as u32)),
                    is_char: true,
                },
            ),
            Tok::Number(text) => Arg::Number(pos, parse_number(pos, &text)?),
            Tok::Field(f) => Arg::Field(pos, vec![f]),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return err(pos, format!("undefined variable \"{name}\""));
                }
                Arg::Variable(pos, name, Vec::new())
            }
            Tok::LParen => {
                self.enter(pos)?;
                let pipe = self.pipeline_until(context, true)?;
                self.nesting -= 1;
                Arg::Pipe(pos, Box::new(pipe), Vec::new())
            }
            Tok::Keyword(k) => return err(pos, format!("unexpected <{k}> in command")),
            other => return err(pos, format!("unexpected {} in operand", describe(&other))),
        };
        // A chain of fields right after the term.
        let mut term = term;
        while let Tok::Field(f) = &self.peek().tok {
            let f = f.clone();
            self.next();
            term = match term {
                Arg::Field(p, mut fs) => {
                    fs.push(f);
                    Arg::Field(p, fs)
                }
                Arg::Variable(p, n, mut fs) => {
                    fs.push(f);
                    Arg::Variable(p, n, fs)
                }
                Arg::Pipe(p, pipe, mut fs) => {
                    fs.push(f);
                    Arg::Pipe(p, pipe, fs)
                }
                Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_) => {
                    return err(pos, format!("unexpected . after term \"{term}\""));
                }
                // A function called without arguments, then fields of its result.
                Arg::Ident(p, name) => Arg::Chain(p, name, vec![f]),
                Arg::Chain(p, name, mut fs) => {
                    fs.push(f);
                    Arg::Chain(p, name, fs)
                }
            };
        }
        Ok(term)
    }
}

fn parse_number(pos: Pos, text: &str) -> Result<Number, ParseError> {
    if text.ends_with('i') {
        return err(pos, format!("complex numbers are not supported: {text}"));
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h.to_string(), 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o.to_string(), 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b.to_string(), 2)
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        (lower[1..].to_string(), 8)
    } else {
        (lower.clone(), 10)
    };
    // Parse with the sign so that i64::MIN fits.
    let signed = if neg { format!("-{digits}") } else { digits };
    let int = i64::from_str_radix(&signed, radix).ok();
    let float = if lower.starts_with("0x") {
        int.map(|v| v as f64)
    } else {
        clean.parse::<f64>().ok()
    };
    let int = int.or_else(|| {
        float
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    });
    if int.is_none() && float.is_none() {
        return err(pos, format!("illegal number syntax: {text:?}"));
    }
    Ok(Number {
        text: text.to_string(),
        int,
        float,
        is_char: false,
    })
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Space => "space".into(),
        Tok::Ident(s) => format!("<{s}>"),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Dot => "<.>".into(),
        Tok::Variable(v) => format!("<{v}>"),
        Tok::Str(s) => super::gofmt::go_quote(s, false),
        Tok::RawStr(s) => format!("`{s}`"),
        Tok::Char(c) => format!("'{c}'"),
        Tok::Number(n) => n.clone(),
        Tok::Bool(b) => b.to_string(),
        Tok::Nil => "nil".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Eof => "EOF".into(),
    }
}
