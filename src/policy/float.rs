//! Numbers as Go's `strconv.ParseFloat(s, 64)` reads them: the numerical policy's parser.
//!
//! Accepted: an optional sign; decimal digits with an optional point and `e` exponent;
//! hexadecimal `0x` mantissas with a mandatory `p` exponent; `_` between digits (or after a
//! base prefix); `inf`, `infinity` (signed or not) and `nan` (unsigned), any case. A finite
//! input whose value overflows f64 is rejected, as Go returns an error for it.

/// Parses `s` as Go's `strconv.ParseFloat(s, 64)` does; `None` where Go returns an error.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if let Some(v) = special(b) {
        return Some(v);
    }
    let mut i = 0;
    let neg = match b.first() {
        Some(b'+') => {
            i = 1;
            false
        }
        Some(b'-') => {
            i = 1;
            true
        }
        _ => false,
    };
    let hex = b.len() > i + 2 && b[i] == b'0' && (b[i + 1] | 0x20) == b'x';
    let value = if hex {
        parse_hex(&b[i + 2..])?
    } else {
        parse_decimal(&b[i..])?
    };
    if b.contains(&b'_') && !underscores_ok(b) {
        return None;
    }
    if value.is_infinite() {
        return None; // Go: value out of range.
    }
    Some(if neg { -value } else { value })
}

/// Fast path for plain digit strings (the common tag: a timestamp or a build number).
#[inline]
pub(crate) fn parse_go_float_fast(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 15 && b.iter().all(u8::is_ascii_digit) {
        let mut n: u64 = 0;
        for &c in b {
            n = n * 10 + u64::from(c - b'0');
        }
        // Below 10^15 < 2^53: exact.
        return Some(n as f64);
    }
    parse_go_float(s)
}

fn eq_ignore_case(a: &[u8], word: &[u8]) -> bool {
    a.len() == word.len()
        && a.iter()
            .zip(word)
            .all(|(x, y)| x.to_ascii_lowercase() == *y)
}

fn special(b: &[u8]) -> Option<f64> {
    let (sign, rest) = match b.first() {
        Some(b'+') => (1.0, &b[1..]),
        Some(b'-') => (-1.0, &b[1..]),
        _ => {
            if eq_ignore_case(b, b"nan") {
                return Some(f64::NAN);
            }
            (1.0, b)
        }
    };
    if eq_ignore_case(rest, b"inf") || eq_ignore_case(rest, b"infinity") {
        return Some(sign * f64::INFINITY);
    }
    None
}

/// Decimal syntax check, then the exact conversion of the digits with `_` removed.
fn parse_decimal(b: &[u8]) -> Option<f64> {
    let mut i = 0;
    let mut digits = false;
    let mut dot = false;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => digits = true,
            b'_' => {}
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if !digits {
        return None;
    }
    if i < b.len() && (b[i] | 0x20) == b'e' {
        i += 1;
        if matches!(b.get(i), Some(b'+') | Some(b'-')) {
            i += 1;
        }
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    if i != b.len() {
        return None;
    }
    let clean: String = b
        .iter()
        .filter(|&&c| c != b'_')
        .map(|&c| c as char)
        .collect();
    clean.parse::<f64>().ok()
}

/// Hexadecimal mantissa (after `0x`) and binary exponent, rounded to nearest even.
fn parse_hex(b: &[u8]) -> Option<f64> {
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut exp: i64 = 0; // binary exponent adjustment
    let mut digits = false;
    let mut dot = false;
    let mut sticky = false;
    while i < b.len() {
        let c = b[i];
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b'_' => {
                i += 1;
                continue;
            }
            b'.' if !dot => {
                dot = true;
                i += 1;
                continue;
            }
            _ => break,
        };
        digits = true;
        if mant >> 60 == 0 {
            mant = (mant << 4) | u64::from(d);
            if dot {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !dot {
                exp += 4;
            }
        }
        i += 1;
    }
    if !digits || i >= b.len() || (b[i] | 0x20) != b'p' {
        return None;
    }
    i += 1;
    let mut eneg = false;
    match b.get(i) {
        Some(b'+') => i += 1,
        Some(b'-') => {
            eneg = true;
            i += 1
        }
        _ => {}
    }
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut e: i64 = 0;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        if b[i] != b'_' && e < 100_000 {
            e = e * 10 + i64::from(b[i] - b'0');
        }
        i += 1;
    }
    if i != b.len() {
        return None;
    }
    exp += if eneg { -e } else { e };
    Some(compose(mant, exp, sticky))
}

/// `mant * 2^exp`, with `sticky` set when nonzero bits were dropped below `mant`; rounded to
/// nearest, ties to even, with subnormals and overflow to infinity.
fn compose(mant: u64, exp: i64, sticky: bool) -> f64 {
    if mant == 0 {
        return 0.0;
    }
    // Normalise so the top bit is bit 63: value = m * 2^(e - 63), with m in [2^63, 2^64).
    let lz = mant.leading_zeros();
    let m = mant << lz;
    let e = exp + 63 - i64::from(lz); // value = 1.xxx * 2^e
    if e > 1023 {
        return f64::INFINITY;
    }
    // Number of mantissa bits kept: 53 for normals, fewer for subnormals.
    let keep: i64 = if e >= -1022 { 53 } else { 53 - (-1022 - e) };
    if keep <= 0 {
        // Below half the smallest subnormal, or exactly around it.
        if keep == 0 {
            // value in [2^-1075, 2^-1074): rounds to the smallest subnormal unless exactly half.
            let half = m == 1 << 63 && !sticky;
            return if half { 0.0 } else { f64::from_bits(1) };
        }
        return 0.0;
    }
    let drop = 64 - keep as u32;
    let mut top = m >> drop;
    let rem = m & ((1u64 << drop) - 1);
    let half = 1u64 << (drop - 1);
    if rem > half || (rem == half && (sticky || top & 1 == 1)) {
        top += 1;
    }
    // top has `keep` bits (or keep+1 after a carry).
    let mut e = e;
    if top >> keep != 0 {
        top >>= 1;
        e += 1;
        if e > 1023 {
            return f64::INFINITY;
        }
    }
    if e >= -1022 {
        let frac = top & ((1u64 << 52) - 1);
        f64::from_bits((((e + 1023) as u64) << 52) | frac)
    } else {
        // Subnormal: top holds the significand at scale 2^-1074.
        // A carry into 2^52 makes it the smallest normal, which from_bits handles.
        f64::from_bits(top)
    }
}

/// Go's `underscoreOK`: `_` only between digits, or between a base prefix and a digit.
fn underscores_ok(s: &[u8]) -> bool {
    let mut saw = b'^';
    let mut b = s;
    if matches!(b.first(), Some(b'+') | Some(b'-')) {
        b = &b[1..];
    }
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = (b[1] | 0x20) == b'x';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && (c | 0x20).is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples() {
        let ok = [
            ("1", 1.0),
            ("-62", -62.0),
            ("+5", 5.0),
            ("53.47333823144817", 53.47333823144817),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            (".5", 0.5),
            ("5.", 5.0),
            ("0x1p4", 16.0),
            ("0X1.8P1", 3.0),
            ("0x_1_2.3_4_5p+1_2", 74565.0),
            ("1_23.50_0_0e+1_2", 1.235e14),
            ("0x1p-1074", f64::from_bits(1)),
            ("0x1.fffffffffffffp1023", f64::MAX),
            ("1e-400", 0.0),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_float(s), Some(want), "{s}");
        }
        for s in ["inf", "+Inf", "-INFINITY", "NaN"] {
            assert!(parse_go_float(s).is_some(), "{s}");
        }
        let bad = [
            "",
            "1a",
            "b",
            "-nan",
            "+nan",
            "infin",
            ".",
            "e5",
            "1e",
            "1e+",
            "0x1",
            "0x",
            "1__2",
            "_1",
            "1_",
            "1_.5",
            "1e400",
            "0x1p1024",
            "1.2.3",
            "20220209-04",
            " 1",
            "0b101",
        ];
        for s in bad {
            assert_eq!(parse_go_float(s), None, "{s}");
        }
    }

    #[test]
    fn fast_path_agrees() {
        for s in ["0", "1606234201", "999999999999999", "20220209041512"] {
            assert_eq!(parse_go_float_fast(s), parse_go_float(s));
        }
    }
}
