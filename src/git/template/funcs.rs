//! The function map: Go's `text/template` builtins and Sprig's hermetic functions, with the
//! argument checks and results Go gives.

use std::cmp::Ordering;

use base64::Engine as _;
use sha2::Digest as _;

use super::gofmt;
use super::value::{compare, go_equal, Value};

/// Why a call failed.
pub(crate) enum CallError {
    /// An argument or arity problem, reported as Go's executor does.
    Message(String),
    /// The function itself failed: Go reports "error calling NAME: ...".
    Calling(String),
    /// Argument `index` is not of the Go type `want` (`string`, `int`, `bool`, ...).
    ArgType { index: usize, want: &'static str },
}

type R = Result<Value, CallError>;

/// Whether a name is a function a template may call.
pub(crate) enum Lookup {
    Defined,
    /// In Sprig's hermetic map but not implemented here (time, randomness, crypto, semver).
    Unsupported,
    Undefined,
}

const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "print", "printf", "println", "eq", "ne", "lt", "le", "gt",
    "ge", "slice", "html", "js", "urlquery", "call",
];

const SPRIG: &[&str] = &[
    "hello",
    "abbrev",
    "abbrevboth",
    "trunc",
    "trim",
    "upper",
    "lower",
    "title",
    "untitle",
    "substr",
    "repeat",
    "trimall",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "nospace",
    "initials",
    "swapcase",
    "snakecase",
    "camelcase",
    "kebabcase",
    "wrap",
    "wrapWith",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "sha1sum",
    "sha512sum",
    "duration",
    "add1f",
    "addf",
    "subf",
    "divf",
    "mulf",
    "maxf",
    "minf",
    "sha256sum",
    "adler32sum",
    "toString",
    "atoi",
    "int64",
    "int",
    "float64",
    "seq",
    "toDecimal",
    "split",
    "splitList",
    "splitn",
    "toStrings",
    "until",
    "untilStep",
    "add1",
    "add",
    "sub",
    "div",
    "mod",
    "mul",
    "biggest",
    "max",
    "min",
    "ceil",
    "floor",
    "round",
    "join",
    "sortAlpha",
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "compact",
    "mustCompact",
    "fromJson",
    "toJson",
    "toPrettyJson",
    "toRawJson",
    "mustFromJson",
    "mustToJson",
    "mustToPrettyJson",
    "mustToRawJson",
    "ternary",
    "typeOf",
    "typeIs",
    "typeIsLike",
    "kindOf",
    "kindIs",
    "deepEqual",
    "base",
    "dir",
    "clean",
    "ext",
    "isAbs",
    "osBase",
    "osClean",
    "osDir",
    "osExt",
    "osIsAbs",
    "b64enc",
    "b64dec",
    "b32enc",
    "b32dec",
    "tuple",
    "list",
    "dict",
    "get",
    "hasKey",
    "pluck",
    "keys",
    "pick",
    "omit",
    "values",
    "append",
    "mustAppend",
    "prepend",
    "mustPrepend",
    "first",
    "mustFirst",
    "rest",
    "mustRest",
    "last",
    "mustLast",
    "initial",
    "mustInitial",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "mustSlice",
    "concat",
    "dig",
    "chunk",
    "mustChunk",
    "fail",
    "regexMatch",
    "mustRegexMatch",
    "regexFindAll",
    "mustRegexFindAll",
    "regexFind",
    "mustRegexFind",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
];

/// In Sprig's hermetic map, but depending on the clock, randomness or heavy crypto, or mutating
/// shared maps: refused with a clear message rather than rendered differently from Flux.
const UNSUPPORTED: &[&str] = &[
    "ago",
    "durationRound",
    "unixEpoch",
    "toDate",
    "mustToDate",
    "must_date_modify",
    "mustDateModify",
    "shuffle",
    "randInt",
    "set",
    "unset",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
    "deepCopy",
    "mustDeepCopy",
    "bcrypt",
    "htpasswd",
    "genPrivateKey",
    "derivePassword",
    "buildCustomCert",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "encryptAES",
    "decryptAES",
    "semver",
    "semverCompare",
    "urlParse",
    "urlJoin",
];

#[derive(Clone, Copy)]
enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A decimal `coef * 10^exp`, as shopspring/decimal holds it (here bounded by i128).
#[derive(Clone, Copy)]
struct Dec {
    coef: i128,
    exp: i32,
}

impl Dec {
    /// `decimal.NewFromFloat`: the shortest decimal that round-trips.
    fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        if f == 0.0 {
            return Some(Dec { coef: 0, exp: 0 });
        }
        let e = format!("{f:e}");
        let (mant, exp) = e.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let neg = mant.starts_with('-');
        let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
        let coef: i128 = digits.parse().ok()?;
        Some(Dec {
            coef: if neg { -coef } else { coef },
            exp: exp - (digits.len() as i32 - 1),
        })
    }

    fn rescale(self, exp: i32) -> Option<i128> {
        // exp <= self.exp
        let shift = u32::try_from(self.exp - exp).ok()?;
        self.coef.checked_mul(10i128.checked_pow(shift)?)
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.coef, self.exp).parse().unwrap_or(0.0)
    }

    fn apply(self, op: DecOp, other: Dec) -> Result<Option<Dec>, CallError> {
        Ok(match op {
            DecOp::Add | DecOp::Sub => {
                let exp = self.exp.min(other.exp);
                let (Some(x), Some(y)) = (self.rescale(exp), other.rescale(exp)) else {
                    return Ok(None);
                };
                let y = if matches!(op, DecOp::Sub) { -y } else { y };
                x.checked_add(y).map(|coef| Dec { coef, exp })
            }
            DecOp::Mul => self.coef.checked_mul(other.coef).map(|coef| Dec {
                coef,
                exp: self.exp + other.exp,
            }),
            DecOp::Div => {
                if other.coef == 0 {
                    return calling("decimal division by 0");
                }
                // DivRound(d2, 16): the quotient at 16 decimal places, half away from zero.
                let shift = self.exp - other.exp + 16;
                let (num, den) = if shift >= 0 {
                    let Some(num) = 10i128
                        .checked_pow(shift as u32)
                        .and_then(|p| self.coef.checked_mul(p))
                    else {
                        return Ok(None);
                    };
                    (num, other.coef)
                } else {
                    let Some(den) = 10i128
                        .checked_pow((-shift) as u32)
                        .and_then(|p| other.coef.checked_mul(p))
                    else {
                        // The divisor dwarfs the dividend (at most 17 digits): the quotient
                        // rounds to zero at 16 places.
                        return Ok(Some(Dec { coef: 0, exp: -16 }));
                    };
                    (self.coef, den)
                };
                let (q, r) = (num / den, num % den);
                let away = r.unsigned_abs() * 2 >= den.unsigned_abs();
                let q = if away {
                    if (num < 0) != (den < 0) {
                        q - 1
                    } else {
                        q + 1
                    }
                } else {
                    q
                };
                Some(Dec { coef: q, exp: -16 })
            }
        })
    }
}

/// Sprig's `execDecimalOp`: folds the operands in decimal, then converts to float64. Operands
/// too large for 128-bit decimals fall back to float arithmetic.
fn decimal_op(first: &Value, rest: &[Value], op: DecOp) -> Result<f64, CallError> {
    for v in std::iter::once(first).chain(rest) {
        let x = to_float64(v);
        if !x.is_finite() {
            return calling(format!(
                "Cannot create a Decimal from {}",
                gofmt::sprint_value(&Value::Float(x))
            ));
        }
    }
    let mut acc = to_float64(first);
    let mut dec = Dec::from_f64(acc);
    for v in rest {
        let x = to_float64(v);
        if matches!(op, DecOp::Div) && x == 0.0 {
            return calling("decimal division by 0");
        }
        dec = match (dec, Dec::from_f64(x)) {
            (Some(d), Some(e)) => d.apply(op, e)?,
            _ => None,
        };
        acc = match dec {
            Some(d) => d.to_f64(),
            None => match op {
                DecOp::Add => acc + x,
                DecOp::Sub => acc - x,
                DecOp::Mul => acc * x,
                DecOp::Div => acc / x,
            },
        };
        if dec.is_none() {
            dec = Dec::from_f64(acc);
        }
    }
    Ok(acc)
}

/// A function's Go signature: the number of fixed parameters and whether more may follow.
/// Go checks it before evaluating the arguments.
pub(crate) fn signature(name: &str) -> (usize, bool) {
    match name {
        "print" | "println" | "html" | "js" | "urlquery" | "quote" | "squote" | "cat" | "seq"
        | "add" | "coalesce" | "all" | "any" | "tuple" | "list" | "dict" | "keys" | "concat"
        | "dig" => (0, true),
        "hello" => (0, false),
        "addf" => (0, true),
        "subf" | "mulf" | "divf" | "maxf" | "minf" => (1, true),
        "and" | "or" | "index" | "printf" | "eq" | "call" | "slice" | "mustSlice" | "mul"
        | "biggest" | "max" | "min" | "default" | "pluck" | "pick" | "omit" | "without"
        | "mustWithout" => (1, true),
        "round" => (2, true),
        "ne" | "lt" | "le" | "gt" | "ge" | "abbrev" | "trunc" | "repeat" | "trimall"
        | "trimAll" | "trimSuffix" | "trimPrefix" | "wrap" | "contains" | "hasPrefix"
        | "hasSuffix" | "indent" | "nindent" | "split" | "splitList" | "sub" | "div" | "mod"
        | "join" | "typeIs" | "typeIsLike" | "kindIs" | "deepEqual" | "get" | "hasKey"
        | "append" | "mustAppend" | "prepend" | "mustPrepend" | "has" | "mustHas" | "chunk"
        | "mustChunk" | "regexMatch" | "mustRegexMatch" | "regexFind" | "mustRegexFind" => {
            (2, false)
        }
        "abbrevboth"
        | "substr"
        | "wrapWith"
        | "replace"
        | "plural"
        | "splitn"
        | "untilStep"
        | "ternary"
        | "regexFindAll"
        | "mustRegexFindAll"
        | "regexReplaceAll"
        | "mustRegexReplaceAll"
        | "regexReplaceAllLiteral"
        | "mustRegexReplaceAllLiteral"
        | "regexSplit"
        | "mustRegexSplit" => (3, false),
        _ => (1, false),
    }
}

pub(crate) fn lookup(name: &str) -> Lookup {
    if BUILTINS.contains(&name) || SPRIG.contains(&name) {
        Lookup::Defined
    } else if UNSUPPORTED.contains(&name) {
        Lookup::Unsupported
    } else {
        Lookup::Undefined
    }
}

fn msg<T>(m: impl Into<String>) -> Result<T, CallError> {
    Err(CallError::Message(m.into()))
}

fn calling<T>(m: impl Into<String>) -> Result<T, CallError> {
    Err(CallError::Calling(m.into()))
}

fn arity(name: &str, args: &[Value], want: usize) -> Result<(), CallError> {
    if args.len() != want {
        return msg(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn arity_min(name: &str, args: &[Value], want: usize) -> Result<(), CallError> {
    if args.len() < want {
        return msg(format!(
            "wrong number of args for {name}: want at least {want} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// Argument `n` as a Go `string` parameter.
fn s(a: &[Value], n: usize) -> Result<String, CallError> {
    match &a[n] {
        Value::Str(s) => Ok(s.to_string()),
        _ => Err(CallError::ArgType {
            index: n,
            want: "string",
        }),
    }
}

/// Argument `n` as a Go `int` parameter.
fn i(a: &[Value], n: usize) -> Result<i64, CallError> {
    match &a[n] {
        Value::Int(i) => Ok(*i),
        _ => Err(CallError::ArgType {
            index: n,
            want: "int",
        }),
    }
}

/// Argument `n` as a Go `bool` parameter.
fn b(a: &[Value], n: usize) -> Result<bool, CallError> {
    match &a[n] {
        Value::Bool(b) => Ok(*b),
        _ => Err(CallError::ArgType {
            index: n,
            want: "bool",
        }),
    }
}

fn strs(items: Vec<String>) -> Value {
    Value::list("[]string", items.into_iter().map(Value::str).collect())
}

fn iface_list(items: Vec<Value>) -> Value {
    Value::list(
        "[]interface {}",
        items.into_iter().map(unwrap_invalid).collect(),
    )
}

/// A missing value stored in an interface becomes nil.
fn unwrap_invalid(v: Value) -> Value {
    match v {
        Value::Invalid => Value::Nil,
        v => v,
    }
}

/// Sprig's `strval`: strings as is, Stringers via `String()`, the rest via `%v`.
pub(crate) fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Struct(st) if st.stringer.is_some() => st.stringer.clone().unwrap_or_default(),
        Value::Invalid | Value::Nil => "<nil>".to_string(),
        other => gofmt::sprint_value(other),
    }
}

/// Sprig's `strslice`: a list's non-nil elements as strings; a scalar as a one-element list.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .items
            .iter()
            .filter(|i| !matches!(i, Value::Nil | Value::Invalid))
            .map(strval)
            .collect(),
        Value::Nil | Value::Invalid => Vec::new(),
        other => vec![strval(other)],
    }
}

/// `cast.ToInt64`, as Sprig's math functions use it: strings parse (base prefixes allowed),
/// floats truncate, anything else is 0.
fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Byte(b) => i64::from(*b),
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_go_int(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// cast's `trimZeroDecimal`: `"12.00"` is `"12"`; `"1.50"` and `"1."` stay.
fn trim_zero_decimal(s: &str) -> &str {
    let mut found_zero = false;
    for (i, b) in s.bytes().enumerate().rev() {
        match b {
            b'.' if found_zero => return &s[..i],
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Byte(b) => f64::from(*b),
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        if lower.is_empty() || !lower.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        lower.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Sprig's `empty`: nil, zero numbers, false, empty strings and containers.
fn empty(v: &Value) -> bool {
    match v {
        Value::Struct(_) => false,
        other => !other.truth(),
    }
}

/// Go's `evalArgs` for `html`, `js`, `urlquery`: one string as is, else `fmt.Sprint`.
fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Invalid | Value::Nil => Value::str("<no value>"),
            other => other.clone(),
        })
        .collect();
    gofmt::sprint(&printable)
}

fn basic_kind(v: &Value) -> Option<u8> {
    match v {
        Value::Bool(_) => Some(0),
        Value::Int(_) | Value::Int64(_) | Value::Byte(_) => Some(1),
        Value::Float(_) => Some(2),
        Value::Str(_) => Some(3),
        _ => None,
    }
}

/// Go's `eq arg1 arg2...`: true when arg1 equals any of the others.
fn eq(args: &[Value]) -> Result<bool, CallError> {
    arity_min("eq", args, 1)?;
    if args.len() == 1 {
        return calling("missing argument for comparison");
    }
    let a = &args[0];
    for other in &args[1..] {
        let (ka, kb) = (basic_kind(a), basic_kind(other));
        let valid = |v: &Value| !matches!(v, Value::Invalid | Value::Nil);
        let truth = if ka != kb {
            if valid(a) && valid(other) {
                return calling("incompatible types for comparison");
            }
            false
        } else if ka.is_some() {
            compare(a, other) == Ordering::Equal
        } else {
            match (a, other) {
                (Value::List(_) | Value::Map(_), _) => {
                    return calling(format!(
                        "non-comparable type {}: {}",
                        gofmt::sprintf("%s", std::slice::from_ref(a)),
                        a.type_name()
                    ));
                }
                (_, Value::List(_) | Value::Map(_)) => {
                    return calling(format!(
                        "non-comparable type {}: {}",
                        gofmt::sprintf("%s", std::slice::from_ref(other)),
                        other.type_name()
                    ));
                }
                _ => go_equal(a, other),
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a: &Value, b: &Value) -> Result<bool, CallError> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    match (ka, kb) {
        (None, _) | (_, None) => calling("invalid type for comparison"),
        (x, y) if x != y => calling("incompatible types for comparison"),
        (Some(0), _) => calling("invalid type for comparison"),
        _ => Ok(compare(a, b) == Ordering::Less),
    }
}

fn index(args: &[Value]) -> R {
    arity_min("index", args, 1)?;
    let mut item = args[0].clone();
    for ix in &args[1..] {
        item = match &item {
            Value::Invalid | Value::Nil => return calling("index of untyped nil"),
            Value::List(l) => {
                let n = list_index(ix, l.items.len())?;
                l.items[n].clone()
            }
            Value::Str(s) => {
                let n = list_index(ix, s.len())?;
                Value::Byte(s.as_bytes()[n])
            }
            Value::Map(m) => {
                let key_type = m.key_type();
                if ix.type_name() != key_type {
                    return calling(format!(
                        "value has type {}; should be {key_type}",
                        ix.type_name()
                    ));
                }
                item.map_get(ix).unwrap_or_else(|| m.zero.clone())
            }
            other => return calling(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn list_index(ix: &Value, len: usize) -> Result<usize, CallError> {
    let n = match ix {
        Value::Int(n) | Value::Int64(n) => *n,
        Value::Byte(b) => i64::from(*b),
        Value::Nil | Value::Invalid => return calling("cannot index slice/array with nil"),
        other => {
            return calling(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ))
        }
    };
    if n < 0 || n as usize >= len {
        return calling(format!("index out of range: {n}"));
    }
    Ok(n as usize)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) >= 0x80 && !gofmt::is_go_printable(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.push(go_upper_char(c));
        } else {
            out.push(c);
        }
        prev_sep = is_title_separator(c);
    }
    out
}

fn is_title_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

fn sprig_abbrev(width: i64, s: &str) -> String {
    // Sprig's goutils.Abbreviate with offset 0: keeps width-3 characters and adds "...".
    if width < 4 {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.len() as i64 <= width {
        return s.to_string();
    }
    let keep = (width - 3) as usize;
    let mut out: String = chars[..keep].iter().collect();
    out.push_str("...");
    out
}

/// `path.Clean`.
fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn path_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    path_clean(dir)
}

fn path_ext(p: &str) -> String {
    for (i, c) in p.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return p[i..].to_string();
        }
    }
    String::new()
}

/// A JSON document built from template values, keeping struct field order as Go does.
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Go's `encoding/json` view of a value; None where Go fails (maps with struct keys).
fn to_json(v: &Value) -> Option<Json> {
    Some(match v {
        Value::Invalid | Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) | Value::Int64(i) => Json::Int(*i),
        Value::Byte(b) => Json::Int(i64::from(*b)),
        Value::Float(f) if f.is_finite() => Json::Float(*f),
        Value::Float(_) => return None,
        Value::Str(s) => Json::Str(s.to_string()),
        Value::List(l) => Json::Array(l.items.iter().map(to_json).collect::<Option<_>>()?),
        Value::Map(m) => {
            let mut obj = Vec::new();
            for (k, val) in &m.entries {
                let Value::Str(k) = k else { return None };
                obj.push((k.to_string(), to_json(val)?));
            }
            Json::Object(obj)
        }
        Value::Struct(st) => {
            let mut obj = Vec::new();
            struct_json(st, &mut obj)?;
            Json::Object(obj)
        }
    })
}

fn struct_json(st: &super::value::Struct, obj: &mut Vec<(String, Json)>) -> Option<()> {
    for f in st.fields.iter().filter(|f| !f.method) {
        if f.embedded {
            if let Value::Struct(inner) = &f.value {
                struct_json(inner, obj)?;
                continue;
            }
        }
        // kyaml's TypeMeta/NameMeta carry `json:"apiVersion,omitempty"` style tags.
        let tagged = match (st.type_name, f.name) {
            ("yaml.TypeMeta", "APIVersion") => Some("apiVersion"),
            ("yaml.TypeMeta", "Kind") => Some("kind"),
            ("yaml.NameMeta", "Name") => Some("name"),
            ("yaml.NameMeta", "Namespace") => Some("namespace"),
            _ => None,
        };
        match tagged {
            Some(key) => {
                if !matches!(&f.value, Value::Str(s) if s.is_empty()) {
                    obj.push((key.to_string(), to_json(&f.value)?));
                }
            }
            None => obj.push((f.name.to_string(), to_json(&f.value)?)),
        }
    }
    Some(())
}

/// Serialises as Go's `json.Marshal` (compact, `<>&` escaped unless `raw`) or, when `pretty`,
/// `json.MarshalIndent(v, "", "  ")`.
fn json_text(v: &Json, pretty: bool, raw: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, v, pretty, raw, 0);
    out
}

fn write_json(out: &mut String, v: &Json, pretty: bool, raw: bool, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if pretty {
            out.push('\n');
            for _ in 0..depth {
                out.push_str("  ");
            }
        }
    };
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => out.push_str(&i.to_string()),
        Json::Float(f) => out.push_str(&go_json_float(*f)),
        Json::Str(s) => json_string(out, s, raw),
        Json::Array(items) => {
            out.push('[');
            for (n, it) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_json(out, it, pretty, raw, depth + 1);
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        Json::Object(fields) => {
            out.push('{');
            for (n, (k, it)) in fields.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                json_string(out, k, raw);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_json(out, it, pretty, raw, depth + 1);
            }
            if !fields.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
    }
}

fn json_string(out: &mut String, s: &str, raw: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' | '>' | '&' if !raw => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's JSON float format: like `%g` shortest, but `%f` for exponents in [-6, 21).
fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
            .replace("e-0", "e-")
            .replace("e+0", "e+")
    } else {
        let s = format!("{f}");
        s
    }
}

fn from_json(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::str(s.as_str()),
        serde_json::Value::Array(a) => iface_list(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => Value::map(
            "map[string]interface {}",
            o.iter()
                .map(|(k, v)| (Value::str(k.as_str()), from_json(v)))
                .collect(),
            Value::Nil,
        ),
    }
}

fn list_items(name: &str, v: &Value) -> Result<Vec<Value>, CallError> {
    match v {
        Value::List(l) => Ok(l.items.clone()),
        // Sprig calls reflect.TypeOf(nil).Kind(): a nil pointer dereference.
        Value::Nil | Value::Invalid => {
            calling("runtime error: invalid memory address or nil pointer dereference")
        }
        other => calling(format!("Cannot find {name} on type {}", go_kind(other))),
    }
}

/// Go's `reflect.Kind` name.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Invalid | Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Int64(_) => "int64",
        Value::Byte(_) => "uint8",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Struct(_) => "struct",
    }
}

fn deep_equal(a: &Value, b: &Value) -> bool {
    a.type_name() == b.type_name() && compare(a, b) == Ordering::Equal && {
        match (a, b) {
            (Value::Map(x), Value::Map(y)) => {
                x.entries.len() == y.entries.len()
                    && x.entries
                        .iter()
                        .zip(y.entries.iter())
                        .all(|((k1, v1), (k2, v2))| deep_equal(k1, k2) && deep_equal(v1, v2))
            }
            (Value::List(x), Value::List(y)) => {
                x.items.len() == y.items.len()
                    && x.items
                        .iter()
                        .zip(y.items.iter())
                        .all(|(p, q)| deep_equal(p, q))
            }
            _ => true,
        }
    }
}

fn regex(pattern: &str) -> Result<regex::Regex, CallError> {
    regex::Regex::new(pattern).map_err(|e| CallError::Calling(format!("error parsing regexp: {e}")))
}

/// Calls a function by name with evaluated arguments (`and`/`or` are handled by the executor).
pub(crate) fn call(name: &str, a: &[Value]) -> R {
    Ok(match name {
        // --- Go builtins
        "not" => {
            arity(name, a, 1)?;
            Value::Bool(!a[0].truth())
        }
        "len" => {
            arity(name, a, 1)?;
            match &a[0] {
                Value::Str(s) => Value::Int(s.len() as i64),
                Value::List(l) => Value::Int(l.items.len() as i64),
                Value::Map(m) => Value::Int(m.entries.len() as i64),
                // Go's reflect panics on the zero Value; the template reports the panic.
                Value::Invalid | Value::Nil => {
                    return calling("reflect: call of reflect.Value.Type on zero Value")
                }
                other => return calling(format!("len of type {}", other.type_name())),
            }
        }
        "index" => index(a)?,
        "print" => Value::str(gofmt::sprint(a)),
        "println" => Value::str(gofmt::sprintln(a)),
        "printf" => {
            arity_min(name, a, 1)?;
            let f = s(a, 0)?;
            Value::str(gofmt::sprintf(&f, &a[1..]))
        }
        "eq" => Value::Bool(eq(a)?),
        "ne" => {
            arity(name, a, 2)?;
            Value::Bool(!eq(a)?)
        }
        "lt" => {
            arity(name, a, 2)?;
            Value::Bool(lt(&a[0], &a[1])?)
        }
        "le" => {
            arity(name, a, 2)?;
            Value::Bool(lt(&a[0], &a[1])? || eq(a)?)
        }
        "gt" => {
            arity(name, a, 2)?;
            Value::Bool(!(lt(&a[0], &a[1])? || eq(a)?))
        }
        "ge" => {
            arity(name, a, 2)?;
            Value::Bool(!lt(&a[0], &a[1])?)
        }
        "html" => Value::str(html_escape(&eval_args(a))),
        "js" => Value::str(js_escape(&eval_args(a))),
        "urlquery" => Value::str(query_escape(&eval_args(a))),
        "call" => {
            arity_min(name, a, 1)?;
            match &a[0] {
                Value::Invalid | Value::Nil => return calling("call of nil"),
                other => return calling(format!("non-function of type {}", other.type_name())),
            }
        }
        // Sprig's `slice` replaces Go's.
        "slice" | "mustSlice" => {
            arity_min(name, a, 1)?;
            match &a[0] {
                Value::List(l) => {
                    if l.items.is_empty() {
                        return Ok(Value::Nil);
                    }
                    let len = l.items.len() as i64;
                    let start = a.get(1).map(to_int64).unwrap_or(0);
                    let end = a.get(2).map(to_int64).unwrap_or(len);
                    if start < 0 || end > len || start > end {
                        return calling("reflect.Value.Slice: slice index out of bounds");
                    }
                    Value::list(l.type_name, l.items[start as usize..end as usize].to_vec())
                }
                other => {
                    return calling(format!(
                        "list should be type of slice or array but {}",
                        go_kind(other)
                    ))
                }
            }
        }
        // --- Sprig: strings
        "hello" => {
            arity(name, a, 0)?;
            Value::str("Hello!")
        }
        "upper" => {
            arity(name, a, 1)?;
            Value::str(go_upper(&s(a, 0)?))
        }
        "lower" => {
            arity(name, a, 1)?;
            Value::str(go_lower(&s(a, 0)?))
        }
        "title" => {
            arity(name, a, 1)?;
            Value::str(title(&s(a, 0)?))
        }
        "untitle" => {
            arity(name, a, 1)?;
            let text = s(a, 0)?;
            let mut out = String::new();
            let mut at_start = true;
            for c in text.chars() {
                if at_start && !c.is_whitespace() {
                    out.extend(c.to_lowercase());
                } else {
                    out.push(c);
                }
                at_start = c.is_whitespace();
            }
            Value::str(out)
        }
        "swapcase" => {
            arity(name, a, 1)?;
            let text = s(a, 0)?;
            Value::str(
                text.chars()
                    .flat_map(|c| -> Vec<char> {
                        if c.is_uppercase() {
                            c.to_lowercase().collect()
                        } else if c.is_lowercase() {
                            c.to_uppercase().collect()
                        } else {
                            vec![c]
                        }
                    })
                    .collect::<String>(),
            )
        }
        "trim" => {
            arity(name, a, 1)?;
            Value::str(s(a, 0)?.trim())
        }
        "trimAll" | "trimall" => {
            arity(name, a, 2)?;
            let cut = s(a, 0)?;
            let text = s(a, 1)?;
            Value::str(text.trim_matches(|c| cut.contains(c)))
        }
        "trimPrefix" => {
            arity(name, a, 2)?;
            let p = s(a, 0)?;
            let text = s(a, 1)?;
            Value::str(text.strip_prefix(p.as_str()).unwrap_or(&text))
        }
        "trimSuffix" => {
            arity(name, a, 2)?;
            let p = s(a, 0)?;
            let text = s(a, 1)?;
            Value::str(text.strip_suffix(p.as_str()).unwrap_or(&text))
        }
        "nospace" => {
            arity(name, a, 1)?;
            Value::str(
                s(a, 0)?
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>(),
            )
        }
        "initials" => {
            arity(name, a, 1)?;
            Value::str(
                s(a, 0)?
                    .split_whitespace()
                    .filter_map(|w| w.chars().next())
                    .collect::<String>(),
            )
        }
        "trunc" => {
            arity(name, a, 2)?;
            let c = i(a, 0)?;
            let text = s(a, 1)?;
            let bytes = text.as_bytes();
            let len = bytes.len() as i64;
            let cut: &[u8] = if c < 0 && len + c > 0 {
                &bytes[(len + c) as usize..]
            } else if c >= 0 && len > c {
                &bytes[..c as usize]
            } else {
                bytes
            };
            Value::str(String::from_utf8_lossy(cut).as_ref())
        }
        "abbrev" => {
            arity(name, a, 2)?;
            Value::str(sprig_abbrev(i(a, 0)?, &s(a, 1)?))
        }
        "abbrevboth" => {
            arity(name, a, 3)?;
            let left = i(a, 0)?;
            let right = i(a, 1)?;
            let text = s(a, 2)?;
            let chars: Vec<char> = text.chars().collect();
            if right < 4 || (left > 0 && right < 7) {
                Value::str(text)
            } else {
                let mut off = left.max(0) as usize;
                if off > chars.len() {
                    off = chars.len();
                }
                let maxw = right as usize;
                if chars.len() <= maxw {
                    Value::str(text)
                } else if off <= 4 {
                    Value::str(sprig_abbrev(right, &text))
                } else {
                    if chars.len() - off < maxw - 3 {
                        off = chars.len() - (maxw - 3);
                    }
                    let rest: String = chars[off..].iter().collect();
                    if off + maxw - 3 < chars.len() {
                        Value::str(format!("...{}", sprig_abbrev(right - 3, &rest)))
                    } else {
                        Value::str(format!("...{rest}"))
                    }
                }
            }
        }
        "substr" => {
            arity(name, a, 3)?;
            let start = i(a, 0)?;
            let end = i(a, 1)?;
            let text = s(a, 2)?;
            let len = text.len() as i64;
            let (lo, hi) = if start < 0 {
                (0, end)
            } else if end < 0 || end > len {
                (start, len)
            } else {
                (start, end)
            };
            if hi > len || hi < 0 {
                return calling(format!(
                    "runtime error: slice bounds out of range [:{hi}] with length {len}"
                ));
            }
            if lo > hi {
                return calling(format!(
                    "runtime error: slice bounds out of range [{lo}:{hi}]"
                ));
            }
            Value::str(String::from_utf8_lossy(&text.as_bytes()[lo as usize..hi as usize]).as_ref())
        }
        "repeat" => {
            arity(name, a, 2)?;
            let count = i(a, 0)?;
            let text = s(a, 1)?;
            if count < 0 {
                return calling("strings: negative Repeat count");
            }
            if (count as u64).saturating_mul(text.len() as u64) > super::exec::MAX_OUTPUT as u64 {
                return calling("repeat: result too large");
            }
            Value::str(text.repeat(count as usize))
        }
        "wrap" | "wrapWith" => {
            let (width, sep, text) = if name == "wrap" {
                arity(name, a, 2)?;
                (i(a, 0)?, "\n".to_string(), s(a, 1)?)
            } else {
                arity(name, a, 3)?;
                (i(a, 0)?, s(a, 1)?, s(a, 2)?)
            };
            Value::str(wrap(&text, width.max(1) as usize, &sep))
        }
        "snakecase" | "kebabcase" | "camelcase" => {
            arity(name, a, 1)?;
            Value::str(case_convert(name, &s(a, 0)?))
        }
        "contains" => {
            arity(name, a, 2)?;
            Value::Bool(s(a, 1)?.contains(s(a, 0)?.as_str()))
        }
        "hasPrefix" => {
            arity(name, a, 2)?;
            Value::Bool(s(a, 1)?.starts_with(s(a, 0)?.as_str()))
        }
        "hasSuffix" => {
            arity(name, a, 2)?;
            Value::Bool(s(a, 1)?.ends_with(s(a, 0)?.as_str()))
        }
        "quote" => Value::str(
            a.iter()
                .filter(|v| !matches!(v, Value::Nil | Value::Invalid))
                .map(|v| gofmt::go_quote(&strval(v), false))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::str(
            a.iter()
                .filter(|v| !matches!(v, Value::Nil | Value::Invalid))
                .map(|v| format!("'{}'", gofmt::sprint_value(v)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "cat" => {
            let kept: Vec<Value> = a
                .iter()
                .filter(|v| !matches!(v, Value::Nil | Value::Invalid))
                .cloned()
                .collect();
            Value::str(
                kept.iter()
                    .map(gofmt::sprint_value)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
        "indent" | "nindent" => {
            arity(name, a, 2)?;
            let n = i(a, 0)?;
            let text = s(a, 1)?;
            if n < 0 {
                return calling("strings: negative Repeat count");
            }
            let lines = text.matches('\n').count() as u64 + 1;
            if (n as u64).saturating_mul(lines) > super::exec::MAX_OUTPUT as u64 {
                return calling("indent: result too large");
            }
            let pad = " ".repeat(n as usize);
            let body = format!("{pad}{}", text.replace('\n', &format!("\n{pad}")));
            Value::str(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "replace" => {
            arity(name, a, 3)?;
            let old = s(a, 0)?;
            let new = s(a, 1)?;
            let text = s(a, 2)?;
            let count = if old.is_empty() {
                text.chars().count() + 1
            } else {
                text.matches(old.as_str()).count()
            };
            if (count as u64).saturating_mul(new.len() as u64) > super::exec::MAX_OUTPUT as u64 {
                return calling("replace: result too large");
            }
            Value::str(go_replace(&text, &old, &new))
        }
        "plural" => {
            arity(name, a, 3)?;
            let one = s(a, 0)?;
            let many = s(a, 1)?;
            Value::str(if i(a, 2)? == 1 { one } else { many })
        }
        "sha1sum" => {
            arity(name, a, 1)?;
            Value::str(hex(&sha1::Sha1::digest(s(a, 0)?.as_bytes())))
        }
        "sha256sum" => {
            arity(name, a, 1)?;
            Value::str(hex(&sha2::Sha256::digest(s(a, 0)?.as_bytes())))
        }
        // Sprig 3.3.0, which Flux uses.
        "sha512sum" => {
            arity(name, a, 1)?;
            Value::str(hex(&sha2::Sha512::digest(s(a, 0)?.as_bytes())))
        }
        "adler32sum" => {
            arity(name, a, 1)?;
            Value::str(adler32(s(a, 0)?.as_bytes()).to_string())
        }
        "toString" => {
            arity(name, a, 1)?;
            Value::str(strval(&a[0]))
        }
        "atoi" => {
            arity(name, a, 1)?;
            Value::Int(s(a, 0)?.parse::<i64>().unwrap_or(0))
        }
        "int" => {
            arity(name, a, 1)?;
            Value::Int(to_int64(&a[0]))
        }
        "int64" => {
            arity(name, a, 1)?;
            Value::Int64(to_int64(&a[0]))
        }
        "float64" => {
            arity(name, a, 1)?;
            Value::Float(to_float64(&a[0]))
        }
        "toDecimal" => {
            arity(name, a, 1)?;
            let text = strval(&a[0]);
            Value::Int64(i64::from_str_radix(&text, 8).unwrap_or(0))
        }
        "split" | "splitn" => {
            let (sep, n, text) = if name == "split" {
                arity(name, a, 2)?;
                (s(a, 0)?, -1, s(a, 1)?)
            } else {
                arity(name, a, 3)?;
                (s(a, 0)?, i(a, 1)?, s(a, 2)?)
            };
            let parts = go_split(&text, &sep, n);
            Value::map(
                "map[string]string",
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(n, p)| (Value::str(format!("_{n}")), Value::str(p)))
                    .collect(),
                Value::str(""),
            )
        }
        "splitList" => {
            arity(name, a, 2)?;
            let sep = s(a, 0)?;
            let text = s(a, 1)?;
            strs(go_split(&text, &sep, -1))
        }
        "toStrings" => {
            arity(name, a, 1)?;
            strs(strslice(&a[0]))
        }
        "join" => {
            arity(name, a, 2)?;
            let sep = s(a, 0)?;
            Value::str(strslice(&a[1]).join(&sep))
        }
        "sortAlpha" => {
            arity(name, a, 1)?;
            let mut items = match &a[0] {
                Value::List(_) => strslice(&a[0]),
                other => vec![strval(other)],
            };
            items.sort();
            strs(items)
        }
        // --- Sprig: numbers
        "seq" => {
            let nums: Vec<i64> = (0..a.len()).map(|n| i(a, n)).collect::<Result<_, _>>()?;
            let (start, step, end) = match nums.as_slice() {
                [] => return Ok(Value::str("")),
                [end] => (1, if *end < 1 { -1 } else { 1 }, *end),
                [start, end] => (*start, if end < start { -1 } else { 1 }, *end),
                [start, step, end] => (*start, *step, *end),
                _ => return Ok(Value::str("")),
            };
            let mut out = Vec::new();
            if step != 0 {
                let mut n = start;
                while (step > 0 && n <= end) || (step < 0 && n >= end) {
                    out.push(n.to_string());
                    if out.len() > 1_000_000 {
                        return calling("seq: too many values");
                    }
                    n += step;
                }
            }
            Value::str(out.join(" "))
        }
        "until" | "untilStep" => {
            let (start, stop, step) = if name == "until" {
                arity(name, a, 1)?;
                let c = i(a, 0)?;
                (0, c, if c < 0 { -1 } else { 1 })
            } else {
                arity(name, a, 3)?;
                (i(a, 0)?, i(a, 1)?, i(a, 2)?)
            };
            let mut out = Vec::new();
            if step != 0 && !(step > 0 && start > stop) && !(step < 0 && start < stop) {
                let mut n = start;
                while (step > 0 && n < stop) || (step < 0 && n > stop) {
                    out.push(Value::Int(n));
                    if out.len() > 1_000_000 {
                        return calling("until: too many values");
                    }
                    n += step;
                }
            }
            Value::list("[]int", out)
        }
        "add1" => {
            arity(name, a, 1)?;
            Value::Int64(to_int64(&a[0]).wrapping_add(1))
        }
        "add" => Value::Int64(a.iter().map(to_int64).fold(0i64, i64::wrapping_add)),
        "sub" => {
            arity(name, a, 2)?;
            Value::Int64(to_int64(&a[0]).wrapping_sub(to_int64(&a[1])))
        }
        "mul" => {
            arity_min(name, a, 1)?;
            Value::Int64(a.iter().map(to_int64).fold(1i64, i64::wrapping_mul))
        }
        "div" | "mod" => {
            arity(name, a, 2)?;
            let (x, y) = (to_int64(&a[0]), to_int64(&a[1]));
            if y == 0 {
                return calling("runtime error: integer divide by zero");
            }
            Value::Int64(if name == "div" {
                x.wrapping_div(y)
            } else {
                x.wrapping_rem(y)
            })
        }
        "max" | "biggest" | "min" => {
            arity_min(name, a, 1)?;
            let nums = a.iter().map(to_int64);
            Value::Int64(if name == "min" {
                nums.min().unwrap_or(0)
            } else {
                nums.max().unwrap_or(0)
            })
        }
        // Seconds as Go's time.Duration prints them; only strings and int64 count (an int
        // literal is 0, as in Sprig).
        "duration" => {
            let secs = match &a[0] {
                Value::Str(s) => s.parse::<i64>().unwrap_or(0),
                Value::Int64(n) => *n,
                _ => 0,
            };
            Value::str(go_duration(secs.wrapping_mul(1_000_000_000)))
        }
        // Sprig's float math: shopspring/decimal on the shortest decimal form of each operand.
        "add1f" => Value::Float(decimal_op(&a[0], &[Value::Int(1)], DecOp::Add)?),
        "addf" => Value::Float(decimal_op(&Value::Float(0.0), a, DecOp::Add)?),
        "subf" => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Sub)?),
        "mulf" => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Mul)?),
        "divf" => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Div)?),
        "maxf" | "minf" => {
            let mut acc = to_float64(&a[0]);
            for v in &a[1..] {
                let x = to_float64(v);
                acc = if name == "maxf" {
                    acc.max(x)
                } else {
                    acc.min(x)
                };
            }
            Value::Float(acc)
        }
        "ceil" | "floor" | "round" => {
            arity_min(name, a, 1)?;
            let x = to_float64(&a[0]);
            Value::Float(match name {
                "ceil" => x.ceil(),
                "floor" => x.floor(),
                _ => {
                    let places = if a.len() > 1 { i(a, 1)? } else { 0 };
                    let round_on = a.get(2).map(to_float64).unwrap_or(0.5);
                    let pow = 10f64.powf(places as f64);
                    let digit = pow * x;
                    let r = if digit.fract() >= round_on {
                        digit.ceil()
                    } else {
                        digit.floor()
                    };
                    r / pow
                }
            })
        }
        // --- Sprig: defaults and JSON
        "default" => {
            arity_min(name, a, 1)?;
            match a.get(1) {
                Some(g) if !empty(g) => g.clone(),
                _ => unwrap_invalid(a[0].clone()),
            }
        }
        "empty" => {
            arity(name, a, 1)?;
            Value::Bool(empty(&a[0]))
        }
        "coalesce" => a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil),
        "all" => Value::Bool(a.iter().all(|v| !empty(v))),
        "any" => Value::Bool(a.iter().any(|v| !empty(v))),
        "compact" | "mustCompact" => {
            arity(name, a, 1)?;
            let items = list_items("compact", &a[0]).map_err(|_| {
                CallError::Calling(format!("Cannot compact on type {}", go_kind(&a[0])))
            })?;
            iface_list(items.into_iter().filter(|v| !empty(v)).collect())
        }
        "ternary" => {
            arity(name, a, 3)?;
            if b(a, 2)? {
                unwrap_invalid(a[0].clone())
            } else {
                unwrap_invalid(a[1].clone())
            }
        }
        "toJson" | "toPrettyJson" | "toRawJson" | "mustToJson" | "mustToPrettyJson"
        | "mustToRawJson" => {
            arity(name, a, 1)?;
            let pretty = name.contains("Pretty");
            let raw = name.contains("Raw");
            match to_json(&a[0]) {
                Some(j) => Value::str(json_text(&j, pretty, raw)),
                None if name.starts_with("must") => {
                    return calling(format!("json: unsupported type: {}", a[0].type_name()))
                }
                None => Value::str(""),
            }
        }
        "fromJson" | "mustFromJson" => {
            arity(name, a, 1)?;
            match serde_json::from_str::<serde_json::Value>(&s(a, 0)?) {
                Ok(j) => from_json(&j),
                Err(e) if name == "mustFromJson" => {
                    return calling(if e.is_eof() {
                        "unexpected end of JSON input".to_string()
                    } else {
                        e.to_string()
                    })
                }
                Err(_) => Value::Nil,
            }
        }
        "typeOf" => {
            arity(name, a, 1)?;
            Value::str(a[0].type_name())
        }
        "kindOf" => {
            arity(name, a, 1)?;
            Value::str(go_kind(&a[0]))
        }
        "typeIs" | "typeIsLike" => {
            arity(name, a, 2)?;
            let want = s(a, 0)?;
            let t = a[1].type_name();
            Value::Bool(t == want || (name == "typeIsLike" && format!("*{t}") == want))
        }
        "kindIs" => {
            arity(name, a, 2)?;
            Value::Bool(s(a, 0)? == go_kind(&a[1]))
        }
        "deepEqual" => {
            arity(name, a, 2)?;
            Value::Bool(deep_equal(&a[0], &a[1]))
        }
        // --- Sprig: paths
        "base" | "osBase" => {
            arity(name, a, 1)?;
            Value::str(path_base(&s(a, 0)?))
        }
        "dir" | "osDir" => {
            arity(name, a, 1)?;
            Value::str(path_dir(&s(a, 0)?))
        }
        "clean" | "osClean" => {
            arity(name, a, 1)?;
            Value::str(path_clean(&s(a, 0)?))
        }
        "ext" | "osExt" => {
            arity(name, a, 1)?;
            Value::str(path_ext(&s(a, 0)?))
        }
        "isAbs" | "osIsAbs" => {
            arity(name, a, 1)?;
            Value::Bool(s(a, 0)?.starts_with('/'))
        }
        // --- Sprig: encodings
        "b64enc" => {
            arity(name, a, 1)?;
            Value::str(base64::engine::general_purpose::STANDARD.encode(s(a, 0)?))
        }
        "b64dec" => {
            arity(name, a, 1)?;
            match base64::engine::general_purpose::STANDARD.decode(s(a, 0)?) {
                Ok(bytes) => Value::str(String::from_utf8_lossy(&bytes).as_ref()),
                Err(e) => Value::str(go_b64_error(&e)),
            }
        }
        "b32enc" => {
            arity(name, a, 1)?;
            Value::str(base32_encode(s(a, 0)?.as_bytes()))
        }
        "b32dec" => {
            arity(name, a, 1)?;
            match base32_decode(&s(a, 0)?) {
                Ok(bytes) => Value::str(String::from_utf8_lossy(&bytes).as_ref()),
                Err(at) => Value::str(format!("illegal base32 data at input byte {at}")),
            }
        }
        // --- Sprig: lists and dicts
        "list" | "tuple" => iface_list(a.to_vec()),
        "dict" => {
            let mut entries: Vec<(Value, Value)> = Vec::new();
            for pair in a.chunks(2) {
                let key = Value::str(strval(&pair[0]));
                let val = pair
                    .get(1)
                    .cloned()
                    .map(unwrap_invalid)
                    .unwrap_or(Value::str(""));
                entries.retain(|(k, _)| compare(k, &key) != Ordering::Equal);
                entries.push((key, val));
            }
            Value::map("map[string]interface {}", entries, Value::Nil)
        }
        "get" => {
            arity(name, a, 2)?;
            let d = want_dict(a, 0)?;
            let key = s(a, 1)?;
            d.map_get(&Value::str(key)).unwrap_or(Value::str(""))
        }
        "hasKey" => {
            arity(name, a, 2)?;
            let d = want_dict(a, 0)?;
            let key = s(a, 1)?;
            Value::Bool(d.map_get(&Value::str(key)).is_some())
        }
        "keys" => {
            let mut out = Vec::new();
            for n in 0..a.len() {
                let Value::Map(m) = want_dict(a, n)? else {
                    continue;
                };
                for (k, _) in &m.entries {
                    out.push(strval(k));
                }
            }
            strs(out)
        }
        "values" => {
            arity(name, a, 1)?;
            let Value::Map(m) = want_dict(a, 0)? else {
                return Ok(iface_list(Vec::new()));
            };
            iface_list(m.entries.iter().map(|(_, v)| v.clone()).collect())
        }
        "pluck" => {
            arity_min(name, a, 1)?;
            let key = Value::str(s(a, 0)?);
            let mut out = Vec::new();
            for n in 1..a.len() {
                if let Some(v) = want_dict(a, n)?.map_get(&key) {
                    out.push(v);
                }
            }
            iface_list(out)
        }
        "pick" | "omit" => {
            arity_min(name, a, 1)?;
            let Value::Map(m) = want_dict(a, 0)? else {
                return Ok(Value::Nil);
            };
            let wanted: Vec<String> = (1..a.len()).map(|n| s(a, n)).collect::<Result<_, _>>()?;
            let keep = |k: &Value| wanted.contains(&strval(k)) == (name == "pick");
            Value::map(
                "map[string]interface {}",
                m.entries.iter().filter(|(k, _)| keep(k)).cloned().collect(),
                Value::Nil,
            )
        }
        "dig" => {
            arity_min(name, a, 3)?;
            let n = a.len();
            let keys: Vec<String> = (0..n - 2).map(|k| s(a, k)).collect::<Result<_, _>>()?;
            let default = a[n - 2].clone();
            let mut cur = want_dict(a, n - 1)?;
            let mut found = true;
            for (ix, k) in keys.iter().enumerate() {
                match cur.map_get(&Value::str(k.as_str())) {
                    Some(v) if ix + 1 == keys.len() => {
                        cur = v;
                    }
                    Some(v @ Value::Map(_)) => cur = v,
                    Some(v) => {
                        return calling(format!(
                        "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
                        v.type_name()
                    ))
                    }
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                cur
            } else {
                default
            }
        }
        "first" | "mustFirst" => {
            arity(name, a, 1)?;
            list_items("first", &a[0])?
                .into_iter()
                .next()
                .unwrap_or(Value::Nil)
        }
        "last" | "mustLast" => {
            arity(name, a, 1)?;
            list_items("last", &a[0])?.pop().unwrap_or(Value::Nil)
        }
        "rest" | "mustRest" => {
            arity(name, a, 1)?;
            let items = list_items("rest", &a[0])?;
            if items.is_empty() {
                Value::Nil
            } else {
                iface_list(items[1..].to_vec())
            }
        }
        "initial" | "mustInitial" => {
            arity(name, a, 1)?;
            let items = list_items("initial", &a[0])?;
            if items.is_empty() {
                Value::Nil
            } else {
                iface_list(items[..items.len() - 1].to_vec())
            }
        }
        "reverse" | "mustReverse" => {
            arity(name, a, 1)?;
            let mut items = list_items("reverse", &a[0])?;
            items.reverse();
            iface_list(items)
        }
        "uniq" | "mustUniq" => {
            arity(name, a, 1)?;
            let items = list_items("uniq", &a[0])?;
            let mut out: Vec<Value> = Vec::new();
            for it in items {
                if !out.iter().any(|o| deep_equal(o, &it)) {
                    out.push(it);
                }
            }
            iface_list(out)
        }
        "without" | "mustWithout" => {
            arity_min(name, a, 1)?;
            let items = list_items("without", &a[0])?;
            iface_list(
                items
                    .into_iter()
                    .filter(|it| !a[1..].iter().any(|o| deep_equal(o, it)))
                    .collect(),
            )
        }
        "has" | "mustHas" => {
            arity(name, a, 2)?;
            match &a[1] {
                Value::Nil | Value::Invalid => Value::Bool(false),
                Value::List(l) => Value::Bool(l.items.iter().any(|it| deep_equal(&a[0], it))),
                other => return calling(format!("Cannot find has on type {}", go_kind(other))),
            }
        }
        "append" | "mustAppend" | "prepend" | "mustPrepend" => {
            arity(name, a, 2)?;
            let mut items = match &a[0] {
                Value::List(_) | Value::Nil | Value::Invalid => list_items(name, &a[0])?,
                other => return calling(format!("Cannot push on type {}", go_kind(other))),
            };
            if name == "append" || name == "mustAppend" {
                items.push(unwrap_invalid(a[1].clone()));
            } else {
                items.insert(0, unwrap_invalid(a[1].clone()));
            }
            iface_list(items)
        }
        "concat" => {
            let mut out = Vec::new();
            for l in a {
                out.extend(list_items("concat", l).map_err(|_| {
                    CallError::Calling(format!("Cannot concat type {} as list", go_kind(l)))
                })?);
            }
            iface_list(out)
        }
        "chunk" | "mustChunk" => {
            arity(name, a, 2)?;
            let size = i(a, 0)?;
            let items = list_items("chunk", &a[1])?;
            if size <= 0 {
                return calling("runtime error: makeslice: len out of range");
            }
            iface_list(
                items
                    .chunks(size as usize)
                    .map(|c| iface_list(c.to_vec()))
                    .collect(),
            )
        }
        "fail" => {
            arity(name, a, 1)?;
            return calling(s(a, 0)?);
        }
        // --- Sprig: regular expressions (Go RE2 syntax; Rust's regex is RE2-like)
        "regexMatch" | "mustRegexMatch" => {
            arity(name, a, 2)?;
            let text = s(a, 1)?;
            match regex(&s(a, 0)?) {
                Ok(re) => Value::Bool(re.is_match(&text)),
                Err(e) if name.starts_with("must") => return Err(e),
                Err(_) => Value::Bool(false),
            }
        }
        "regexFindAll" | "mustRegexFindAll" => {
            arity(name, a, 3)?;
            let text = s(a, 1)?;
            let n = i(a, 2)?;
            let re = regex(&s(a, 0)?)?;
            let found = re.find_iter(&text).map(|m| m.as_str().to_string());
            strs(if n < 0 {
                found.collect()
            } else {
                found.take(n as usize).collect()
            })
        }
        "regexFind" | "mustRegexFind" => {
            arity(name, a, 2)?;
            let text = s(a, 1)?;
            let re = regex(&s(a, 0)?)?;
            Value::str(re.find(&text).map(|m| m.as_str()).unwrap_or(""))
        }
        "regexReplaceAll" | "mustRegexReplaceAll" => {
            arity(name, a, 3)?;
            let re = regex(&s(a, 0)?)?;
            let text = s(a, 1)?;
            let repl = s(a, 2)?;
            Value::str(re.replace_all(&text, repl.as_str()).as_ref())
        }
        "regexReplaceAllLiteral" | "mustRegexReplaceAllLiteral" => {
            arity(name, a, 3)?;
            let re = regex(&s(a, 0)?)?;
            let text = s(a, 1)?;
            let repl = s(a, 2)?;
            Value::str(re.replace_all(&text, regex::NoExpand(&repl)).as_ref())
        }
        "regexSplit" | "mustRegexSplit" => {
            arity(name, a, 3)?;
            let re = regex(&s(a, 0)?)?;
            let text = s(a, 1)?;
            let n = i(a, 2)?;
            if n == 0 {
                return Ok(strs(Vec::new()));
            }
            let parts: Vec<String> = if n < 0 {
                re.split(&text).map(str::to_string).collect()
            } else {
                re.splitn(&text, n as usize).map(str::to_string).collect()
            };
            strs(parts)
        }
        "regexQuoteMeta" => {
            arity(name, a, 1)?;
            Value::str(regex::escape(&s(a, 0)?))
        }
        other => return msg(format!("function \"{other}\" not defined")),
    })
}

/// Argument `n` as a Go `map[string]interface {}` parameter (nil is an empty map).
fn want_dict(a: &[Value], n: usize) -> Result<Value, CallError> {
    match &a[n] {
        v @ Value::Map(m) if m.type_name == "map[string]interface {}" => Ok(v.clone()),
        Value::Invalid | Value::Nil => Ok(Value::map(
            "map[string]interface {}",
            Vec::new(),
            Value::Nil,
        )),
        _ => Err(CallError::ArgType {
            index: n,
            want: "map[string]interface {}",
        }),
    }
}

/// Go's `strings.Replace(s, old, new, -1)`: an empty `old` inserts `new` around every rune.
fn go_replace(text: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in text.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    text.replace(old, new)
}

/// Go's `strings.SplitN` (`n < 0`: all): an empty separator splits into runes.
fn go_split(text: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = text.chars().map(String::from).collect();
        if n > 0 && chars.len() > n as usize {
            let mut head: Vec<String> = chars[..n as usize - 1].to_vec();
            head.push(chars[n as usize - 1..].concat());
            return head;
        }
        return chars;
    }
    if n < 0 {
        text.split(sep).map(str::to_string).collect()
    } else {
        text.splitn(n as usize, sep).map(str::to_string).collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &d in data {
        a = (a + u32::from(d)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for k in 0..8 {
            if k < chars {
                out.push(B32[((n >> (35 - 5 * k)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base32; the error is the offset of the first bad byte.
fn base32_decode(text: &str) -> Result<Vec<u8>, usize> {
    let t = text.trim_end_matches('=');
    let mut bits = 0u64;
    let mut nbits = 0;
    let mut out = Vec::new();
    for (at, c) in t.bytes().enumerate() {
        let v = B32.iter().position(|x| *x == c).ok_or(at)? as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    if !matches!(t.len() % 8, 0 | 2 | 4 | 5 | 7) {
        return Err(t.len());
    }
    Ok(out)
}

/// Go's base64 error text (`illegal base64 data at input byte N`).
fn go_b64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, _) => {
            format!("illegal base64 data at input byte {at}")
        }
        base64::DecodeError::InvalidLastSymbol(at, _) => {
            format!("illegal base64 data at input byte {at}")
        }
        _ => "illegal base64 data at input byte 0".to_string(),
    }
}

/// Sprig's `wrap` (goutils.WrapCustom with long words not wrapped).
fn wrap(text: &str, width: usize, sep: &str) -> String {
    let mut out = String::new();
    for (ln, line) in text.split('\n').enumerate() {
        if ln > 0 {
            out.push_str(sep);
        }
        let mut cur = 0usize;
        for (wn, word) in line.split(' ').filter(|w| !w.is_empty()).enumerate() {
            let wl = word.chars().count();
            if wn > 0 {
                if cur + 1 + wl > width {
                    out.push_str(sep);
                    cur = 0;
                } else {
                    out.push(' ');
                    cur += 1;
                }
            }
            out.push_str(word);
            cur += wl;
        }
    }
    out
}

/// xstrings' `ToSnakeCase`, `ToKebabCase` and `ToCamelCase`.
fn case_convert(name: &str, text: &str) -> String {
    match name {
        "camelcase" => camel_case(text),
        "snakecase" => camel_to_lower(text, '_'),
        _ => camel_to_lower(text, '-'),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WordType {
    Invalid,
    Number,
    UpperCase,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// xstrings' `isAlphabet`: a letter, but not a CJK ideograph.
fn is_alphabet(c: char) -> bool {
    let u = c as u32;
    c.is_alphabetic()
        && !((0x4e00..=0x9fcc).contains(&u)
            || (0x3400..=0x4d85).contains(&u)
            || (0x20000..=0x2b81d).contains(&u))
}

/// Go's `unicode.IsPunct` for the characters commit templates meet (ASCII punctuation other
/// than the symbols `$+<=>^`|~`, and general punctuation).
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c);
    }
    matches!(c as u32, 0x2010..=0x2027 | 0x2030..=0x205e | 0x3001..=0x3003 | 0xff01..=0xff0f)
}

/// xstrings' `nextWord`: the type and length (in chars) of the word at the start of `s`.
fn next_word(s: &[char]) -> (WordType, usize) {
    let Some(&r) = s.first() else {
        return (WordType::Invalid, 0);
    };
    if r == '\u{FFFD}' {
        return (WordType::Invalid, 1);
    }
    let run = |start: usize, pred: &dyn Fn(char) -> bool| {
        let mut n = start;
        while n < s.len() && pred(s[n]) {
            n += 1;
        }
        n
    };
    if is_connector(r) {
        (WordType::Connector, run(1, &is_connector))
    } else if is_punct(r) {
        (WordType::Punct, run(1, &is_punct))
    } else if r.is_uppercase() {
        match s.get(1) {
            Some(&n) if n.is_uppercase() => {
                let end = run(1, &|c: char| c.is_uppercase());
                // "HTTPStatus": the last capital starts the next word.
                if end < s.len() && is_alphabet(s[end]) {
                    (WordType::UpperCase, end - 1)
                } else {
                    (WordType::UpperCase, end)
                }
            }
            Some(&n) if is_alphabet(n) => (
                WordType::UpperCase,
                run(1, &|c: char| is_alphabet(c) && !c.is_uppercase()),
            ),
            _ => (WordType::UpperCase, 1),
        }
    } else if is_alphabet(r) {
        (
            WordType::Alphabet,
            run(1, &|c: char| is_alphabet(c) && !c.is_uppercase()),
        )
    } else if r.is_numeric() {
        (WordType::Number, run(1, &|c: char| c.is_numeric()))
    } else {
        (
            WordType::Other,
            run(1, &|c: char| {
                !(is_connector(c) || is_alphabet(c) || c.is_numeric() || is_punct(c))
            }),
        )
    }
}

/// xstrings' `toLower`: upper-case words and connectors are rewritten, the rest kept.
fn word_to_lower(out: &mut String, wt: WordType, word: &[char], connector: char) {
    if wt != WordType::UpperCase && wt != WordType::Connector {
        out.extend(word);
        return;
    }
    for &c in word {
        if is_connector(c) {
            out.push(connector);
        } else if c.is_uppercase() {
            out.push(go_lower_char(c));
        } else {
            out.push(c);
        }
    }
}

/// xstrings' `camelCaseToLowerCase`, behind `snakecase` and `kebabcase`.
fn camel_to_lower(text: &str, connector: char) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    if chars.is_empty() {
        return out;
    }
    let mut pos = 0;
    let take = |pos: &mut usize| {
        let (wt, n) = next_word(&chars[*pos..]);
        let word = &chars[*pos..*pos + n];
        *pos += n;
        (wt, word)
    };
    let (mut wt, mut word) = take(&mut pos);
    while pos < chars.len() {
        if wt != WordType::Connector {
            word_to_lower(&mut out, wt, word, connector);
        }
        let prev = wt;
        let last = word;
        (wt, word) = take(&mut pos);
        match prev {
            WordType::Number => {
                while wt == WordType::Alphabet || wt == WordType::Number {
                    word_to_lower(&mut out, wt, word, connector);
                    (wt, word) = take(&mut pos);
                }
                if !matches!(
                    wt,
                    WordType::Invalid | WordType::Punct | WordType::Connector
                ) {
                    out.push(connector);
                }
            }
            WordType::Connector => word_to_lower(&mut out, prev, last, connector),
            WordType::Punct => {}
            _ => {
                if wt != WordType::Number {
                    if wt != WordType::Connector && wt != WordType::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                if pos >= chars.len() {
                    continue;
                }
                let number = word;
                (wt, word) = take(&mut pos);
                // "Bld4Floor" => "bld4_floor": a number belongs to the previous word.
                if wt != WordType::Alphabet {
                    word_to_lower(&mut out, WordType::Number, number, connector);
                    if wt != WordType::Connector && wt != WordType::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                // "HTTP2xx" => "http_2xx".
                out.push(connector);
                word_to_lower(&mut out, WordType::Number, number, connector);
                while wt == WordType::Alphabet || wt == WordType::Number {
                    word_to_lower(&mut out, wt, word, connector);
                    (wt, word) = take(&mut pos);
                }
                if !matches!(
                    wt,
                    WordType::Invalid | WordType::Connector | WordType::Punct
                ) {
                    out.push(connector);
                }
            }
        }
    }
    word_to_lower(&mut out, wt, word, connector);
    out
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// xstrings' `ToCamelCase`: connectors (`-`, `_`, spaces) are dropped and the next letter
/// upper-cased; other letters are lower-cased; leading connectors are kept.
fn camel_case(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    let mut r0 = None;
    for c in chars.by_ref() {
        if !is_connector(c) {
            r0 = Some(go_upper_char(c));
            break;
        }
        out.push(c);
        r0 = Some(c);
    }
    let Some(mut r0) = r0 else { return out };
    let rest: Vec<char> = chars.collect();
    if rest.is_empty() {
        out.push(r0);
        return out;
    }
    for c in rest {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            r0 = go_upper_char(r0);
        } else {
            r0 = go_lower_char(r0);
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

/// Go's `unicode.ToUpper`: the simple one-to-one mapping (`ß` stays `ß`).
fn go_upper_char(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Go's `unicode.ToLower`: the simple mapping (`İ` becomes `i`).
fn go_lower_char(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

fn go_upper(s: &str) -> String {
    s.chars().map(go_upper_char).collect()
}

fn go_lower(s: &str) -> String {
    s.chars().map(go_lower_char).collect()
}

/// Go's `time.Duration.String` for a whole number of seconds (`nanos` is a multiple of 1e9,
/// or what the multiplication wrapped to).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Under a second: Go prints ns, µs or ms with a fraction.
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        let whole = u / div;
        let frac = u % div;
        out.push_str(&whole.to_string());
        if frac > 0 {
            let width = (div as f64).log10() as usize;
            let digits = format!("{frac:0width$}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push_str(unit);
    } else {
        let frac = u % 1_000_000_000;
        u /= 1_000_000_000;
        let secs = u % 60;
        let mins = (u / 60) % 60;
        let hours = u / 3600;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || mins > 0 {
            out.push_str(&format!("{mins}m"));
        }
        out.push_str(&secs.to_string());
        if frac > 0 {
            let digits = format!("{frac:09}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}
