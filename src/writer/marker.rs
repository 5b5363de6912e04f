//! Markers: the `# {"$imagepolicy": "<ns>:<policy>[:tag|:name|:digest]"}` comment, as Flux reads it.

use std::collections::BTreeMap;

use crate::image::ImageRef;

/// The JSON key that makes a comment a marker.
pub const KEY: &str = "$imagepolicy";

/// Which part of the policy's latest reference a marker writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `name:tag[@digest]`
    Full,
    Name,
    Tag,
    Digest,
}

/// A parsed marker: the setter name as written and what it refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Marker {
    /// The setter exactly as written, e.g. `flux-system:podinfo:tag`.
    pub setter: String,
    /// The policy, `<namespace>:<name>`, when the setter has that shape.
    pub policy: Option<String>,
    pub field: Field,
}

impl Marker {
    /// The value this marker writes for the policy's latest reference.
    pub fn value(&self, image: &ImageRef) -> String {
        match self.field {
            Field::Full => image.to_string(),
            Field::Name => image.name.clone(),
            Field::Tag => image.tag.clone(),
            Field::Digest => image.digest.clone().unwrap_or_default(),
        }
    }
}

/// Reads a comment (starting at its `#`, without the line break) as a marker, as kyaml does:
/// all leading `#` stripped, the rest one JSON object whose values are all strings, holding
/// `$imagepolicy`. Anything else is an ordinary comment (None).
pub fn parse(comment: &str) -> Option<Marker> {
    let body = comment.trim_start_matches('#');
    if !body.contains(KEY) {
        return None;
    }
    let object: BTreeMap<String, String> = serde_json::from_str(body.trim()).ok()?;
    let setter = object.get(KEY)?.clone();
    Some(split_setter(setter))
}

/// Splits a setter name into policy and field; a name that is not `<ns>:<name>[:suffix]`
/// keeps `policy: None` (it can match nothing).
fn split_setter(setter: String) -> Marker {
    let parts: Vec<&str> = setter.split(':').collect();
    let (policy, field) = match parts.as_slice() {
        [ns, name] if !ns.is_empty() && !name.is_empty() => {
            (Some(format!("{ns}:{name}")), Field::Full)
        }
        [ns, name, suffix] if !ns.is_empty() && !name.is_empty() => {
            let field = match *suffix {
                "tag" => Some(Field::Tag),
                "name" => Some(Field::Name),
                "digest" => Some(Field::Digest),
                _ => None,
            };
            match field {
                Some(f) => (Some(format!("{ns}:{name}")), f),
                None => (None, Field::Full),
            }
        }
        _ => (None, Field::Full),
    };
    Marker {
        setter,
        policy,
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_markers_as_kyaml_does() {
        let m = parse(r#"# {"$imagepolicy": "ns:app"}"#).unwrap();
        assert_eq!(
            (m.policy.as_deref(), m.field),
            (Some("ns:app"), Field::Full)
        );
        let m = parse(r#"#{"$imagepolicy":"ns:app:tag"}"#).unwrap();
        assert_eq!((m.policy.as_deref(), m.field), (Some("ns:app"), Field::Tag));
        let m = parse(r#"## {"$imagepolicy": "ns:app:name"}  "#).unwrap();
        assert_eq!(m.field, Field::Name);
        let m = parse(r#"# {"$imagepolicy": "ns:app:digest", "other": "x"}"#).unwrap();
        assert_eq!(m.field, Field::Digest);
        assert_eq!(m.setter, "ns:app:digest");
    }

    #[test]
    fn ordinary_comments_are_not_markers() {
        assert_eq!(parse(r#"# bump me {"$imagepolicy": "ns:app"}"#), None);
        assert_eq!(parse(r#"# {'$imagepolicy': 'ns:app'}"#), None);
        assert_eq!(parse(r#"# {"$imagepolicy": "ns:app", "n": 1}"#), None);
        assert_eq!(parse(r#"# {"$imagepolicy": "ns:app"} trailing"#), None);
        assert_eq!(parse("# just a comment"), None);
    }

    #[test]
    fn malformed_setters_match_no_policy() {
        assert_eq!(parse(r#"# {"$imagepolicy": "app"}"#).unwrap().policy, None);
        assert_eq!(
            parse(r#"# {"$imagepolicy": "ns:app:version"}"#)
                .unwrap()
                .policy,
            None
        );
        assert_eq!(
            parse(r#"# {"$imagepolicy": "ns:a:b:c"}"#).unwrap().policy,
            None
        );
    }

    #[test]
    fn values_per_field() {
        let image = ImageRef {
            name: "ghcr.io/org/app".into(),
            tag: "1.2.3".into(),
            digest: Some("sha256:abc".into()),
        };
        let m = |s: &str| parse(&format!(r#"# {{"$imagepolicy": "{s}"}}"#)).unwrap();
        assert_eq!(m("n:p").value(&image), "ghcr.io/org/app:1.2.3@sha256:abc");
        assert_eq!(m("n:p:name").value(&image), "ghcr.io/org/app");
        assert_eq!(m("n:p:tag").value(&image), "1.2.3");
        assert_eq!(m("n:p:digest").value(&image), "sha256:abc");
        let no_digest = ImageRef {
            digest: None,
            ..image
        };
        assert_eq!(m("n:p:digest").value(&no_digest), "");
    }
}
