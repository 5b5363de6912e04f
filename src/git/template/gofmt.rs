//! Go's `fmt` printing for template values: `%v`, `Sprint`, `Sprintln` and `Sprintf` with the
//! verbs and flags commit templates use.

use super::value::Value;

/// `fmt.Sprint(v)` for one value, i.e. `%v`.
pub(crate) fn sprint_value(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 'v', false, 0);
    out
}

/// `fmt.Sprint(args...)`: spaces between operands when neither side is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::Str(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        write_value(&mut out, a, 'v', false, 0);
    }
    out
}

/// `fmt.Sprintln(args...)`: always spaces, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(&mut out, a, 'v', false, 0);
    }
    out.push('\n');
    out
}

/// The value as printed with `%v` (or `%+v` when `plus`), or with another verb applied to each
/// element of a container, as Go's `printValue` does.
fn write_value(out: &mut String, v: &Value, verb: char, plus: bool, depth: usize) {
    let spec = Spec {
        plus_v: plus,
        ..Spec::default()
    };
    print_arg(out, v, verb, &spec, depth);
}

/// Go's float formatting for `%v`: `strconv.FormatFloat(f, 'g', -1, 64)`, the shortest digits
/// that round-trip, in exponent form when the exponent is below -4 or at least 6.
pub(crate) fn format_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and exponent from Rust's `{:e}`.
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    // strconv's shortest %g: exponent form when exp < -4 or exp >= 6.
    if !(-4..6).contains(&exp) {
        return format_exp(sign, &digits, exp);
    }
    format_fixed(sign, &digits, exp)
}

fn format_exp(sign: &str, digits: &str, exp: i32) -> String {
    let mut s = String::from(sign);
    s.push_str(&digits[..1]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.abs()));
    s
}

fn format_fixed(sign: &str, digits: &str, exp: i32) -> String {
    let mut s = String::from(sign);
    if exp < 0 {
        s.push_str("0.");
        for _ in 0..(-exp - 1) {
            s.push('0');
        }
        s.push_str(digits);
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            s.push_str(digits);
            for _ in digits.len()..point {
                s.push('0');
            }
        } else {
            s.push_str(&digits[..point]);
            s.push('.');
            s.push_str(&digits[point..]);
        }
    }
    s
}

/// Go's fmt refuses widths and precisions above a million.
const MAX_WIDTH: usize = 1_000_000;

fn parse_width(digits: &[char]) -> Option<usize> {
    let mut n = 0usize;
    for d in digits {
        if n > MAX_WIDTH {
            return None;
        }
        n = n * 10 + d.to_digit(10)? as usize;
    }
    (!digits.is_empty()).then_some(n)
}

/// A parsed `%` directive.
#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
    /// `%+v`: field names in structs.
    plus_v: bool,
}

/// `fmt.Sprintf(format, args...)`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0usize;
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut reordered = false;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        // flags
        while i < chars.len() {
            match chars[i] {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            i += 1;
        }
        // width
        if i < chars.len() && chars[i] == '*' {
            i += 1;
            match args.get(argi) {
                Some(v @ (Value::Int(_) | Value::Int64(_) | Value::Byte(_)))
                    if v.as_i64().unwrap_or(0).unsigned_abs() <= MAX_WIDTH as u64 =>
                {
                    let n = v.as_i64().unwrap_or(0);
                    if n < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(n.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i > start {
                match parse_width(&chars[start..i]) {
                    Some(w) => spec.width = Some(w),
                    None => {
                        // Go gives up on the rest of the format.
                        out.push_str("%!(NOVERB)");
                        break;
                    }
                }
            }
        }
        // precision
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            if i < chars.len() && chars[i] == '*' {
                i += 1;
                match args.get(argi) {
                    Some(v @ (Value::Int(_) | Value::Int64(_) | Value::Byte(_)))
                        if (0..=MAX_WIDTH as i64).contains(&v.as_i64().unwrap_or(-1)) =>
                    {
                        spec.prec = Some(v.as_i64().unwrap_or(0) as usize)
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                match parse_width(&chars[start..i]) {
                    Some(p) => spec.prec = Some(p),
                    None if i == start => spec.prec = Some(0),
                    None => {
                        out.push_str("%!(NOVERB)");
                        break;
                    }
                }
            }
        }
        if i >= chars.len() {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = chars[i];
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == '[' {
            // An explicit argument index: `%[n]verb`.
            reordered = true;
            let close = chars[i..].iter().position(|c| *c == ']');
            let n: Option<usize> =
                close.and_then(|c| chars[i..i + c].iter().collect::<String>().parse().ok());
            let Some(c) = close.filter(|c| i + c + 1 < chars.len()) else {
                out.push_str("%!(BADINDEX)");
                continue;
            };
            let verb = chars[i + c + 1];
            i += c + 2;
            match n {
                Some(n) if n >= 1 && n <= args.len() => {
                    argi = n;
                    print_directive(&mut out, &args[n - 1], verb, spec);
                }
                _ => {
                    out.push_str("%!");
                    out.push(verb);
                    out.push_str("(BADINDEX)");
                }
            }
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
            continue;
        };
        argi += 1;
        print_directive(&mut out, arg, verb, spec);
    }
    if !reordered && argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (n, a) in args[argi..].iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            if matches!(a, Value::Nil | Value::Invalid) {
                out.push_str("<nil>");
                continue;
            }
            out.push_str(a.type_name());
            out.push('=');
            write_value(&mut out, a, 'v', false, 0);
        }
        out.push(')');
    }
    out
}

fn print_directive(out: &mut String, arg: &Value, verb: char, mut spec: Spec) {
    if verb == 'v' && spec.plus {
        spec.plus_v = true;
        spec.plus = false;
    }
    if verb == 'v' && spec.sharp {
        let inner = Spec {
            sharp: false,
            ..spec
        };
        go_syntax(out, arg, &inner, true);
        return;
    }
    if verb == 'T' {
        let t: String = match spec.prec {
            Some(p) => arg.type_name().chars().take(p).collect(),
            None => arg.type_name().to_string(),
        };
        if matches!(arg, Value::Nil | Value::Invalid) {
            pad_text(out, "<nil>", &Spec { prec: None, ..spec });
            return;
        }
        pad_text(out, &t, &spec);
        return;
    }
    print_arg(out, arg, verb, &spec, 0);
}

/// `%#v`: the value in Go syntax; the flags, width and precision apply to each scalar.
fn go_syntax(out: &mut String, v: &Value, spec: &Spec, top: bool) {
    match v {
        Value::Invalid | Value::Nil if top => pad_text(out, "<nil>", spec),
        Value::Invalid | Value::Nil => out.push_str("interface {}(nil)"),
        Value::Bool(b) => pad_text(out, if *b { "true" } else { "false" }, spec),
        Value::Int(i) | Value::Int64(i) => fmt_int(out, *i, 'd', spec, v),
        Value::Byte(b) => fmt_int(
            out,
            i64::from(*b),
            'x',
            &Spec {
                sharp: true,
                ..spec.clone()
            },
            v,
        ),
        Value::Float(f) => fmt_float(out, *f, 'g', spec, v),
        Value::Str(s) => {
            let t: String = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            pad_text(out, &go_quote(&t, spec.plus), spec)
        }
        Value::List(l) => {
            out.push_str(l.type_name);
            out.push('{');
            for (n, it) in l.items.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                go_syntax(out, it, spec, false);
            }
            out.push('}');
        }
        Value::Map(m) => {
            out.push_str(m.type_name);
            out.push('{');
            for (n, (k, it)) in m.entries.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                go_syntax(out, k, spec, false);
                out.push(':');
                go_syntax(out, it, spec, false);
            }
            out.push('}');
        }
        Value::Struct(st) => {
            out.push_str(st.type_name);
            out.push('{');
            for (n, f) in st.fields.iter().filter(|f| !f.method).enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                out.push_str(f.name);
                out.push(':');
                go_syntax(out, &f.value, spec, false);
            }
            out.push('}');
        }
    }
}

fn pad(out: &mut String, s: &str, spec: &Spec) {
    pad_with(out, s, spec, spec.zero && !spec.minus)
}

/// Pads text (no sign to keep in front): Go pads with zeros when the `0` flag is set.
fn pad_text(out: &mut String, s: &str, spec: &Spec) {
    let len = s.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(s);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        let c = if spec.zero { '0' } else { ' ' };
        out.extend(std::iter::repeat_n(c, fill));
        out.push_str(s);
    }
}

fn pad_with(out: &mut String, s: &str, spec: &Spec, zeros: bool) {
    let len = s.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(s);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if zeros {
        // Zero padding goes after the sign.
        let (sign, rest) = match s.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), &s[1..]),
            _ => (None, s),
        };
        if let Some(c) = sign {
            out.push(c);
        }
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

fn bad_verb(out: &mut String, v: &Value, verb: char, spec: &Spec) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        Value::Nil | Value::Invalid => out.push_str("<nil>"),
        // Go prints the value with `v` and the directive's flags, width and precision.
        _ => {
            out.push_str(v.type_name());
            out.push('=');
            let plain = Spec {
                plus_v: false,
                ..spec.clone()
            };
            print_arg(out, v, 'v', &plain, 1);
        }
    }
    out.push(')');
}

/// Go's `printArg` / `printValue` for one argument and verb.
fn print_arg(out: &mut String, v: &Value, verb: char, spec: &Spec, depth: usize) {
    match v {
        Value::Invalid => {
            if depth == 0 {
                // fmt prints an invalid reflect.Value as <invalid reflect.Value>; a template
                // hands printf nil in its place.
                fmt_nil(out, verb, spec);
            } else {
                pad(out, "<invalid reflect.Value>", spec);
            }
        }
        Value::Nil => fmt_nil(out, verb, spec),
        Value::Bool(b) => match verb {
            'v' | 't' => pad_text(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(out, v, verb, spec),
        },
        Value::Int(i) | Value::Int64(i) => fmt_int(out, *i, verb, spec, v),
        Value::Byte(b) => fmt_int(out, i64::from(*b), verb, spec, v),
        Value::Float(f) => fmt_float(out, *f, verb, spec, v),
        Value::Str(s) => fmt_str(out, s, verb, spec, v),
        Value::Struct(s) => {
            if let Some(text) = &s.stringer {
                if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
                    fmt_str(out, text, verb, spec, v);
                    return;
                }
            }
            out.push('{');
            let mut first = true;
            for f in s.fields.iter().filter(|f| !f.method) {
                if !first {
                    out.push(' ');
                }
                first = false;
                if spec.plus_v {
                    out.push_str(f.name);
                    out.push(':');
                }
                print_arg(out, &f.value, verb, spec, depth + 1);
            }
            out.push('}');
        }
        Value::List(l) => {
            if matches!(verb, 's' | 'q' | 'x' | 'X') && l.type_name == "[]uint8" {
                // []byte prints as a string for these verbs.
                let bytes: Vec<u8> = l
                    .items
                    .iter()
                    .map(|i| match i {
                        Value::Byte(b) => *b,
                        _ => 0,
                    })
                    .collect();
                fmt_str(out, &String::from_utf8_lossy(&bytes), verb, spec, v);
                return;
            }
            out.push('[');
            for (n, item) in l.items.iter().enumerate() {
                if n > 0 {
                    out.push(' ');
                }
                print_arg(out, item, verb, spec, depth + 1);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (n, (k, val)) in m.entries.iter().enumerate() {
                if n > 0 {
                    out.push(' ');
                }
                print_arg(out, k, verb, spec, depth + 1);
                out.push(':');
                print_arg(out, val, verb, spec, depth + 1);
            }
            out.push(']');
        }
    }
}

fn fmt_nil(out: &mut String, verb: char, spec: &Spec) {
    match verb {
        'v' => pad_text(out, "<nil>", spec),
        _ => {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(<nil>)");
        }
    }
}

fn fmt_int(out: &mut String, i: i64, verb: char, spec: &Spec, v: &Value) {
    let neg = i < 0;
    let mag = i.unsigned_abs();
    let mut digits = match verb {
        'v' | 'd' => mag.to_string(),
        'b' => format!("{mag:b}"),
        'o' | 'O' => format!("{mag:o}"),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        'c' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            pad_text(out, &c.to_string(), spec);
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            pad_text(out, &quote_rune(c, spec.plus), spec);
            return;
        }
        'U' => {
            let digits = spec.prec.unwrap_or(4).max(4);
            let mut s = format!("U+{:0digits$X}", i);
            if spec.sharp {
                if let Some(c) = char::from_u32(i as u32).filter(|c| is_go_printable(*c)) {
                    s.push_str(&format!(" '{c}'"));
                }
            }
            // Go never zero-pads %U.
            pad_text(
                out,
                &s,
                &Spec {
                    zero: false,
                    ..spec.clone()
                },
            );
            return;
        }
        _ => {
            bad_verb(out, v, verb, spec);
            return;
        }
    };
    let has_sign = neg || spec.plus || spec.space;
    // Go zero-pads by raising the precision to the width (less the sign), before the prefix.
    let prec = match spec.prec {
        Some(p) => Some(p),
        None if spec.zero && !spec.minus && spec.width.is_some() => Some(
            spec.width
                .unwrap_or(0)
                .saturating_sub(usize::from(has_sign)),
        ),
        None => None,
    };
    if let Some(p) = prec {
        while digits.len() < p {
            digits.insert(0, '0');
        }
        if p == 0 && mag == 0 && spec.prec.is_some() {
            // Go writes only the padding: no sign, no prefix.
            let width = spec.width.unwrap_or(0);
            out.extend(std::iter::repeat_n(' ', width));
            return;
        }
    }
    let mut prefix = String::new();
    if spec.sharp {
        match verb {
            'x' => prefix.push_str("0x"),
            'X' => prefix.push_str("0X"),
            'b' => prefix.push_str("0b"),
            // `%#o` adds a leading zero unless there already is one.
            'o' | 'O' if !digits.starts_with('0') => prefix.push('0'),
            _ => {}
        }
    }
    if verb == 'O' {
        prefix.insert_str(0, "0o");
    }
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    pad_with(out, &format!("{sign}{prefix}{digits}"), spec, false);
}

/// Go's `fmt.fmtFloat`: strconv's text for the verb and precision, then the sign, the `#`
/// flag's decimal point and trailing zeros, and padding (zeros go after the sign).
fn fmt_float(out: &mut String, f: f64, verb: char, spec: &Spec, v: &Value) {
    let (conv, default_prec) = match verb {
        'v' => ('g', None),
        'g' | 'G' | 'x' | 'X' | 'b' => (verb, None),
        'e' | 'E' | 'f' | 'F' => (verb, Some(6)),
        _ => {
            bad_verb(out, v, verb, spec);
            return;
        }
    };
    let prec = spec.prec.or(default_prec);
    let text = strconv_float(f, conv, prec);
    let (mut sign, mut num) = match text.strip_prefix('-') {
        Some(rest) => ('-', rest.to_string()),
        None => ('+', text.trim_start_matches('+').to_string()),
    };
    if spec.space && sign == '+' && !spec.plus {
        sign = ' ';
    }
    if f.is_nan() || f.is_infinite() {
        let shown = if f.is_nan() && !spec.space && !spec.plus {
            num
        } else {
            format!("{sign}{num}")
        };
        pad_text(
            out,
            &shown,
            &Spec {
                zero: false,
                ..spec.clone()
            },
        );
        return;
    }
    if spec.sharp && conv != 'b' {
        let mut digits: i64 = match conv {
            'g' | 'G' | 'x' | 'X' => prec.map(|p| p as i64).unwrap_or(6),
            _ => 0,
        };
        let mut tail = String::new();
        let mut body = String::new();
        let mut has_point = false;
        let mut saw_nonzero = false;
        let chars: Vec<char> = num.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '.' => {
                    has_point = true;
                    body.push(c);
                }
                'p' | 'P' => {
                    tail = chars[i..].iter().collect();
                    break;
                }
                'e' | 'E' if !matches!(conv, 'x' | 'X') => {
                    tail = chars[i..].iter().collect();
                    break;
                }
                _ => {
                    if c != '0' {
                        saw_nonzero = true;
                    }
                    if saw_nonzero {
                        digits -= 1;
                    }
                    body.push(c);
                }
            }
            i += 1;
        }
        if !has_point {
            if body == "0" {
                digits -= 1;
            }
            body.push('.');
        }
        while digits > 0 {
            body.push('0');
            digits -= 1;
        }
        body.push_str(&tail);
        num = body;
    }
    if spec.plus || sign != '+' {
        let width = spec.width.unwrap_or(0);
        let len = num.chars().count() + 1;
        if spec.zero && !spec.minus && width > len {
            out.push(sign);
            out.extend(std::iter::repeat_n('0', width - len));
            out.push_str(&num);
            return;
        }
        pad_text(
            out,
            &format!("{sign}{num}"),
            &Spec {
                zero: spec.zero && !spec.minus,
                ..spec.clone()
            },
        );
        return;
    }
    pad_with(out, &num, spec, spec.zero && !spec.minus);
}

/// `strconv.FormatFloat(f, verb, prec, 64)`; `prec` None is Go's -1 (shortest).
fn strconv_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let upper = verb.is_ascii_uppercase();
    let text = match verb.to_ascii_lowercase() {
        'e' => match prec {
            Some(p) => go_exp(&format!("{f:.p$e}")),
            None => go_exp(&format!("{f:e}")),
        },
        'f' => match prec {
            Some(p) => format!("{f:.p$}"),
            None => format!("{f}"),
        },
        'g' => match prec {
            None => format_float_g(f),
            Some(p) => {
                let p = p.max(1);
                let e = format!("{:.*e}", p - 1, f);
                let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
                let exp: i32 = exp.parse().unwrap_or(0);
                let mant = trim_zeros(mant);
                if exp < -4 || exp >= p as i32 {
                    go_exp(&format!("{mant}e{exp}"))
                } else {
                    let decimals = (p as i32 - 1 - exp).max(0) as usize;
                    trim_zeros(&format!("{f:.decimals$}"))
                }
            }
        },
        'x' => hex_float(f, prec),
        _ => {
            // 'b': decimal mantissa and binary exponent.
            let bits = f.to_bits();
            let neg = bits >> 63 == 1;
            let exp = ((bits >> 52) & 0x7ff) as i64;
            let mut mant = bits & ((1 << 52) - 1);
            let e = if exp == 0 {
                -1074
            } else {
                mant |= 1 << 52;
                exp - 1075
            };
            format!(
                "{}{mant}p{}{}",
                if neg { "-" } else { "" },
                if e < 0 { '-' } else { '+' },
                e.abs()
            )
        }
    };
    if upper {
        text.to_uppercase()
    } else {
        text
    }
}

/// Rust's `1.5e3` / `1.5e-7` as Go's `1.5e+03` / `1.5e-07`.
fn go_exp(s: &str) -> String {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// strconv's `%x` float: `-0x1.8p+01`, shortest or rounded (half to even) to `prec` digits.
fn hex_float(f: f64, prec: Option<usize>) -> String {
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let sign = if neg { "-" } else { "" };
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1u64 << 52) - 1);
    let mut exp;
    if biased == 0 {
        if mant == 0 {
            let digits = prec
                .map(|p| format!(".{}", "0".repeat(p)))
                .unwrap_or_default();
            let digits = if digits == "." { String::new() } else { digits };
            return format!("{sign}0x0{digits}p+00");
        }
        // Subnormal: normalise so the leading 1 is at bit 52.
        exp = -1022;
        while mant & (1 << 52) == 0 {
            mant <<= 1;
            exp -= 1;
        }
        mant &= (1 << 52) - 1;
    } else {
        exp = biased - 1023;
    }
    // 52 fraction bits = 13 hex digits.
    let mut frac = mant;
    let mut ndigits = 13usize;
    if let Some(p) = prec.filter(|p| *p < 13) {
        let shift = (13 - p) * 4;
        let rem = frac & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        frac >>= shift;
        if rem > half || (rem == half && frac & 1 == 1) {
            frac += 1;
        }
        if frac >> (p * 4) == 1 {
            // Rounded up to 2.0: 1.0 times the next power of two.
            frac = 0;
            exp += 1;
        }
        ndigits = p;
    }
    let mut digits = if ndigits == 0 {
        String::new()
    } else {
        format!("{frac:0ndigits$x}")
    };
    if prec.is_none() {
        digits = digits.trim_end_matches('0').to_string();
    } else if let Some(p) = prec.filter(|p| *p > 13) {
        digits.push_str(&"0".repeat(p - 13));
    }
    let point = if digits.is_empty() {
        String::new()
    } else {
        format!(".{digits}")
    };
    format!(
        "{sign}0x1{point}p{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn fmt_str(out: &mut String, s: &str, verb: char, spec: &Spec, v: &Value) {
    let truncated: String = match spec.prec {
        Some(p) if matches!(verb, 'v' | 's' | 'q') => s.chars().take(p).collect(),
        _ => s.to_string(),
    };
    match verb {
        'v' | 's' => pad_text(out, &truncated, spec),
        'q' => {
            let q = if spec.sharp && !truncated.contains('`') {
                format!("`{truncated}`")
            } else {
                go_quote(&truncated, spec.plus)
            };
            pad_text(out, &q, spec)
        }
        'x' | 'X' => {
            let bytes = match spec.prec {
                Some(p) => &s.as_bytes()[..p.min(s.len())],
                None => s.as_bytes(),
            };
            let mut h = String::new();
            for (n, b) in bytes.iter().enumerate() {
                if spec.space && n > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || n == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            pad_text(out, &h, spec)
        }
        _ => bad_verb(out, v, verb, spec),
    }
}

/// Go's `strconv.Quote` (or `QuoteToASCII` when `ascii`).
pub(crate) fn go_quote(s: &str, ascii: bool) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        push_escaped(&mut q, c, '"', ascii);
    }
    q.push('"');
    q
}

fn quote_rune(c: char, ascii: bool) -> String {
    let mut q = String::from("'");
    push_escaped(&mut q, c, '\'', ascii);
    q.push('\'');
    q
}

fn push_escaped(q: &mut String, c: char, quote: char, ascii: bool) {
    match c {
        '\x07' => q.push_str("\\a"),
        '\x08' => q.push_str("\\b"),
        '\x0c' => q.push_str("\\f"),
        '\n' => q.push_str("\\n"),
        '\r' => q.push_str("\\r"),
        '\t' => q.push_str("\\t"),
        '\x0b' => q.push_str("\\v"),
        '\\' => q.push_str("\\\\"),
        c if c == quote => {
            q.push('\\');
            q.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => q.push_str(&format!("\\x{:02x}", c as u32)),
        c if ascii && (c as u32) > 0x7e => {
            if (c as u32) < 0x10000 {
                q.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                q.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c if !is_go_printable(c) => {
            if (c as u32) < 0x10000 {
                q.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                q.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => q.push(c),
    }
}

/// An approximation of Go's `strconv.IsPrint`: control and format characters, separators other
/// than U+0020 and private-use characters are escaped.
pub(crate) fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    // Controls, separators (Zs, Zl, Zp), format characters and private use are not printable.
    !(c.is_control()
        || c.is_whitespace()
        || u == 0xad
        || (0x600..=0x605).contains(&u)
        || u == 0x61c
        || u == 0x6dd
        || u == 0x70f
        || u == 0x180e
        || (0x200b..=0x200f).contains(&u)
        || (0x202a..=0x202e).contains(&u)
        || (0x2060..=0x206f).contains(&u)
        || u == 0xfeff
        || (0xfff9..=0xfffb).contains(&u)
        || (0xe000..=0xf8ff).contains(&u)
        || (0xf0000..=0x10ffff).contains(&u)
        || (0xe0001..=0xe007f).contains(&u))
}
