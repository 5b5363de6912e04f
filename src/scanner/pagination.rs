//! Pagination of `tags/list`: RFC 8288 `Link: <...>; rel="next"`, `n`/`last`, and the budget
//! that bounds one listing (pages, tags, bytes).

/// Per-repository listing budget. A listing that would exceed it is reported as truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `n` asked for on the first page (Flux: 1000; ECR rejects more).
    pub page_size: u32,
    /// Most pages fetched for one listing.
    pub max_pages: u32,
    /// Most distinct tags accepted for one listing.
    pub max_tags: usize,
    /// Most body bytes read for one listing (all pages together).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            page_size: 1000,
            max_pages: 1000,
            max_tags: 1_000_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The target of the `rel="next"` link in one `Link` header value, if any.
pub(super) fn next_link(header: &str) -> Option<&str> {
    // Link values: `<uri>; param; param, <uri>; ...`. URIs may hold commas, so split on '<'.
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let uri = &after[..end];
        let params_end = after[end + 1..]
            .find('<')
            .map_or(after.len(), |i| end + 1 + i);
        let params = &after[end + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(uri);
        }
        rest = &after[end + 1..];
    }
    None
}

/// Whether a string is a valid OCI tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_forms() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://r.example/v2/a/tags/list?last=b&n=2>; rel=next"#),
            Some("https://r.example/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"</x?a=1,2>; rel="prev", </y>; rel="next""#),
            Some("/y")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            next_link(r#"</x>; title="next"; rel="last next""#),
            Some("/x")
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn tag_syntax() {
        for t in ["latest", "1.2.3", "_x", "v1.0-rc.1_b", &"a".repeat(128)] {
            assert!(is_valid_tag(t), "{t}");
        }
        for t in ["", ".x", "-x", "a b", "a\nb", "a:b", "ü", &"a".repeat(129)] {
            assert!(!is_valid_tag(t), "{t:?}");
        }
    }
}
