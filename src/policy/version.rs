//! Tags as versions: Flux's reading of a tag as a semantic version, and SemVer 2.0 precedence.
//!
//! Flux (`fluxcd/pkg/version.ParseVersion`) first asks for three parts on the first two dots,
//! then hands the tag to Masterminds' coercing parser. The grammar that results, and that
//! [`Version::parse`] implements by hand (no allocation, one pass):
//!
//! ```text
//! tag     = ["v"] num ["." num ["." num]] ["-" ident *("." ident)] ["+" build *("." build)]
//! num     = 1*DIGIT                 ; leading zeros allowed, must fit in 64 bits
//! ident   = 1*[0-9A-Za-z-]          ; all digits: no leading zero unless "0"
//! build   = 1*[0-9A-Za-z-]
//! ```
//!
//! plus the condition that the tag holds at least two dots somewhere. That condition is what
//! rejects `1.2` and `v1`, and it is also Flux's quirk: `1.2-beta.1` has two dots (one in
//! the prerelease), so it is read as `1.2.0-beta.1`; `1-rc.1.0` is `1.0.0-rc.1.0`; while
//! `1.2-beta5` (one dot) is not a version.

use std::cmp::Ordering;

/// A tag read as a version. Borrows the prerelease and build parts from the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Prerelease without its `-`; empty for a release.
    pub pre: &'a str,
    /// Build metadata without its `+`; empty when absent. Ignored by precedence.
    pub build: &'a str,
}

/// The numeric head of a tag: `[v]major[.minor[.patch]]` and where it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub triple: (u64, u64, u64),
    pub end: usize,
    pub dots: u8,
}

/// Eight bytes of `b` from `i`, little-endian, zero-padded past the end (zero is not a digit).
#[inline(always)]
fn load8(b: &[u8], i: usize) -> u64 {
    match b.get(i..i + 8) {
        Some(chunk) => u64::from_le_bytes(chunk.try_into().expect("eight bytes")),
        None => {
            let mut buf = [0u8; 8];
            for (k, &c) in b.get(i..).unwrap_or_default().iter().enumerate() {
                buf[k] = c;
            }
            u64::from_le_bytes(buf)
        }
    }
}

/// Parses decimal digits at `*i`, advancing it; `None` when there are none or they overflow
/// u64. Up to eight digits are read at once, without a branch per digit: the digits of a
/// version are short, and their lengths are what a branch predictor cannot guess.
#[inline(always)]
fn parse_num(b: &[u8], i: &mut usize) -> Option<u64> {
    let t = load8(b, *i) ^ 0x3030_3030_3030_3030; // digit bytes become 0..=9
                                                  // A byte is a digit iff it is below 10: adding 0x76 sets its top bit otherwise. A carry
                                                  // out of a byte can only come from a non-digit, and only disturbs the bytes after it.
    let non_digit = (t.wrapping_add(0x7676_7676_7676_7676) | t) & 0x8080_8080_8080_8080;
    let len = (non_digit.trailing_zeros() / 8) as usize;
    if len == 0 {
        return None;
    }
    // Align the digits to the top, so the missing ones are leading zeros, then combine
    // pairs, quads and octets (the classic eight-digit multiply).
    let v = t << (8 * (8 - len));
    let v = (v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561) >> 8;
    let v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
    let mut n = (v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32;
    *i += len;
    if len == 8 {
        // Longer numbers (rare): carry on a digit at a time.
        while let Some(&c) = b.get(*i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(d))?;
            *i += 1;
        }
    }
    Some(n)
}

/// Reads `[v]major[.minor[.patch]]`. Rejects fast anything that does not start like a version.
#[inline(always)]
pub(crate) fn parse_head(b: &[u8]) -> Option<Head> {
    let (major, i) = parse_major(b)?;
    parse_head_after_major(b, major, i)
}

/// The first step of [`parse_head`]: `[v]major`, and where it ends. Callers that can rule a
/// tag out on its major alone stop here.
#[inline(always)]
pub(crate) fn parse_major(b: &[u8]) -> Option<(u64, usize)> {
    let mut i = usize::from(b.first() == Some(&b'v'));
    let major = parse_num(b, &mut i)?;
    Some((major, i))
}

/// The rest of [`parse_head`], after [`parse_major`].
#[inline(always)]
pub(crate) fn parse_head_after_major(b: &[u8], major: u64, mut i: usize) -> Option<Head> {
    let (mut minor, mut patch, mut dots) = (0, 0, 0);
    if b.get(i) == Some(&b'.') {
        i += 1;
        minor = parse_num(b, &mut i)?;
        dots = 1;
        if b.get(i) == Some(&b'.') {
            i += 1;
            patch = parse_num(b, &mut i)?;
            dots = 2;
        }
    }
    Some(Head {
        triple: (major, minor, patch),
        end: i,
        dots,
    })
}

#[inline(always)]
fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// Validates dot-separated identifiers in `s`; returns the number of dots, or `None`.
/// `numeric_rule` applies SemVer's "no leading zero in a numeric identifier".
#[inline]
fn idents(s: &[u8], numeric_rule: bool) -> Option<u32> {
    let mut dots = 0;
    for part in s.split(|&c| c == b'.') {
        if part.is_empty() || !part.iter().all(|&c| ident_byte(c)) {
            return None;
        }
        if numeric_rule && part.len() > 1 && part[0] == b'0' && part.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        dots += 1;
    }
    Some(dots - 1)
}

/// Reads what follows the head: `[-pre][+build]` to the end, and applies the two-dot rule.
#[inline]
pub(crate) fn parse_tail<'a>(tag: &'a str, head: Head) -> Option<Version<'a>> {
    parse_rest(tag, head, 2)
}

#[inline(always)]
fn parse_rest<'a>(tag: &'a str, head: Head, min_dots: u32) -> Option<Version<'a>> {
    let b = tag.as_bytes();
    let rest = &b[head.end..];
    let mut dots = u32::from(head.dots);
    let (mut pre, mut build) = ("", "");
    if !rest.is_empty() {
        let (pre_part, build_part) = match rest[0] {
            b'-' => {
                let plus = rest.iter().position(|&c| c == b'+');
                match plus {
                    Some(p) => (&rest[1..p], Some(&rest[p + 1..])),
                    None => (&rest[1..], None),
                }
            }
            b'+' => (&rest[..0], Some(&rest[1..])),
            _ => return None,
        };
        if rest[0] == b'-' {
            dots += idents(pre_part, true)?;
            let start = head.end + 1;
            pre = &tag[start..start + pre_part.len()];
        }
        if let Some(bp) = build_part {
            dots += idents(bp, false)?;
            build = &tag[tag.len() - bp.len()..];
        }
    }
    if dots < min_dots {
        return None;
    }
    let (major, minor, patch) = head.triple;
    Some(Version {
        major,
        minor,
        patch,
        pre,
        build,
    })
}

impl<'a> Version<'a> {
    /// Reads a tag as Flux does; `None` when the tag is not a version (Flux skips it).
    pub fn parse(tag: &'a str) -> Option<Version<'a>> {
        let head = parse_head(tag.as_bytes())?;
        parse_tail(tag, head)
    }

    /// Reads a version as Masterminds' coercing `NewVersion` does, without Flux's two-dot rule:
    /// `1.2` is `1.2.0`, `1` is `1.0.0`. (Constraints and tests use it; tags use `parse`.)
    pub fn parse_coerce(text: &'a str) -> Option<Version<'a>> {
        let head = parse_head(text.as_bytes())?;
        parse_rest(text, head, 0)
    }

    /// SemVer 2.0 precedence (build metadata ignored), as Masterminds implements it.
    pub fn precedence(&self, other: &Version<'_>) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(self.pre, other.pre))
    }

    pub fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

/// Is this prerelease identifier numeric in Masterminds' sense (digits that fit in a u64)?
#[inline]
fn numeric(id: &[u8]) -> bool {
    !id.is_empty()
        && id.iter().all(u8::is_ascii_digit)
        && (id.len() < 20 || (id.len() == 20 && id <= b"18446744073709551615".as_slice()))
}

/// Compares two prereleases (without `-`); empty means a release, which ranks above.
pub(crate) fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    if a == b {
        return Ordering::Equal;
    }
    let mut xs = a.as_bytes().split(|&c| c == b'.');
    let mut ys = b.as_bytes().split(|&c| c == b'.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = compare_ident(x, y);
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

fn compare_ident(x: &[u8], y: &[u8]) -> Ordering {
    if x == y {
        return Ordering::Equal;
    }
    match (numeric(x), numeric(y)) {
        // No leading zeros (validated), so length first, then bytes, is numeric order;
        // a lone "0" has length 1 and sorts first.
        (true, true) => strip_zeros(x)
            .len()
            .cmp(&strip_zeros(y).len())
            .then_with(|| strip_zeros(x).cmp(strip_zeros(y))),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

fn strip_zeros(x: &[u8]) -> &[u8] {
    let n = x.iter().take_while(|&&c| c == b'0').count();
    &x[n.min(x.len() - 1)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version<'_> {
        Version::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn parses_flux_quirks() {
        assert_eq!(v("1.2-beta.1").triple(), (1, 2, 0));
        assert_eq!(v("1.2-beta.1").pre, "beta.1");
        assert_eq!(v("1-rc.1.0").triple(), (1, 0, 0));
        assert_eq!(v("1+a.b.c").build, "a.b.c");
        assert!(Version::parse("1.2-beta5").is_none());
        assert!(Version::parse("1.2+b.c").is_some());
    }

    #[test]
    fn parses_numbers_of_every_length() {
        for s in [
            "0",
            "7",
            "42",
            "007",
            "123",
            "4096",
            "65535",
            "1234567",
            "12345678",
            "123456789",
            "99999999999",
            "18446744073709551615",
            "00000000000000000000001",
        ] {
            for suffix in ["", ".", "-x", "abcdefghij", "/"] {
                let text = format!("{s}{suffix}");
                let mut i = 0;
                assert_eq!(parse_num(text.as_bytes(), &mut i), s.parse().ok(), "{text}");
                assert_eq!(i, s.len(), "{text}");
            }
        }
        for s in ["18446744073709551616", "99999999999999999999"] {
            assert_eq!(parse_num(s.as_bytes(), &mut 0), None, "{s}");
        }
        for s in ["", "x1", ".1", "/", ":"] {
            assert_eq!(parse_num(s.as_bytes(), &mut 0), None, "{s}");
        }
        // Mid-string, with bytes that carry in the digit test (0xFF, 0x8A..).
        let b = b"v12\xff\x8a34";
        let mut i = 1;
        assert_eq!(parse_num(b, &mut i), Some(12));
        assert_eq!(i, 3);
    }

    #[test]
    fn compares_prerelease_identifiers() {
        assert_eq!(compare_pre("rc.10", "rc.9"), Ordering::Greater);
        assert_eq!(compare_pre("rc10", "rc9"), Ordering::Less);
        assert_eq!(compare_pre("alpha", "alpha.1"), Ordering::Less);
        assert_eq!(compare_pre("1", "alpha"), Ordering::Less);
        assert_eq!(compare_pre("0", "1"), Ordering::Less);
        assert_eq!(compare_pre("", "x"), Ordering::Greater);
        // Above u64, Masterminds compares digits as text: "99..." vs "100..." by bytes.
        let big = "100000000000000000000";
        assert_eq!(compare_pre(big, "99"), Ordering::Greater); // text vs number: text is greater
    }
}
