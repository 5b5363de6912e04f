//! Property test of the writer: for generated YAML with markers, the output differs from the
//! input only inside the marked scalars, each new scalar reads back (with a second, independent
//! YAML reader) as the value the marker asks for, and a second apply changes nothing.

use proptest::prelude::*;

use tagline::image::ImageRef;
use tagline::writer::{apply, Setters};

/// A piece of the generated file: fixed bytes, or a marked scalar with the value it should get
/// (None when the marker must not change it).
#[derive(Debug, Clone)]
enum Seg {
    Fixed(String),
    Slot { old: String, new: Option<String> },
}

const TAGS: &[&str] = &[
    "1.10",
    "123",
    "true",
    "yes",
    "1e3",
    "0x1F",
    "null",
    "v1.2.3",
    "1.0.0",
    "2024-01-01",
    "~",
    "a b",
    "x: y",
    "#x",
    "-",
    "it's",
    "q\"d",
    "back\\slash",
    "ünï",
    "",
    "on",
];

fn policies() -> impl Strategy<Value = Vec<ImageRef>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["reg/a", "ghcr.io/o/b", "c", "1.5"]),
            prop::sample::select(TAGS.to_vec()),
            prop::option::of(prop::sample::select(vec!["sha256:abc", "sha256:0"])),
        )
            .prop_map(|(n, t, d)| ImageRef {
                name: n.to_string(),
                tag: t.to_string(),
                digest: d.map(str::to_string),
            }),
        4,
    )
}

fn setters(refs: &[ImageRef]) -> Setters {
    refs.iter()
        .enumerate()
        .map(|(i, r)| (format!("default:p{i}"), r.clone()))
        .collect()
}

/// A marker choice: policy index (4 and 5 are unknown, 6 is another namespace) and suffix.
#[derive(Debug, Clone)]
struct MarkerChoice {
    policy: usize,
    suffix: usize,
    hashes: usize,
}

fn marker_choice() -> impl Strategy<Value = MarkerChoice> {
    (0usize..7, 0usize..4, 1usize..3).prop_map(|(policy, suffix, hashes)| MarkerChoice {
        policy,
        suffix,
        hashes,
    })
}

impl MarkerChoice {
    fn comment(&self) -> String {
        let ns = if self.policy == 6 { "other" } else { "default" };
        let suffix = ["", ":tag", ":name", ":digest"][self.suffix];
        format!(
            "{} {{\"$imagepolicy\": \"{ns}:p{}{suffix}\"}}",
            "#".repeat(self.hashes),
            self.policy % 6
        )
    }

    fn value(&self, refs: &[ImageRef]) -> Option<String> {
        if self.policy >= 4 {
            return None;
        }
        let r = &refs[self.policy];
        Some(match self.suffix {
            0 => r.to_string(),
            1 => r.tag.clone(),
            2 => r.name.clone(),
            _ => r.digest.clone().unwrap_or_default(),
        })
    }
}

/// An old scalar: (text as written, value).
fn old_scalar() -> impl Strategy<Value = (String, String)> {
    prop::sample::select(vec![
        ("reg/a:1.0.0", "reg/a:1.0.0"),
        ("1.0", "1.0"),
        ("old", "old"),
        ("\"reg/a:1.0.0\"", "reg/a:1.0.0"),
        ("'it''s'", "it's"),
        ("\"q\\\"d\"", "q\"d"),
        ("'1.10'", "1.10"),
        ("v1.2.3", "v1.2.3"),
    ])
    .prop_map(|(t, v)| (t.to_string(), v.to_string()))
}

/// One entry of a block mapping or sequence.
#[derive(Debug, Clone)]
enum Entry {
    Marked((String, String), MarkerChoice),
    Plain(String, Option<String>),
    HeadItem((String, String), MarkerChoice),
    Block(Vec<String>),
    Flow(Vec<String>),
    Nested(Vec<Entry>, bool),
    Blank(String),
}

fn entry() -> impl Strategy<Value = Entry> {
    let leaf = prop_oneof![
        3 => (old_scalar(), marker_choice()).prop_map(|(o, m)| Entry::Marked(o, m)),
        2 => (
            prop::sample::select(vec!["x", "\"q # not\"", "'s'", "1", "a b c", "ünï # 注释"]),
            prop::option::of(prop::sample::select(vec![
                "# plain comment",
                "# {\"other\": \"x\"}",
                "# {'$imagepolicy': 'default:p0'}",
            ]))
        )
            .prop_map(|(v, c)| Entry::Plain(v.to_string(), c.map(str::to_string))),
        1 => (old_scalar(), marker_choice()).prop_map(|(o, m)| Entry::HeadItem(o, m)),
        1 => prop::collection::vec(
            prop::sample::select(vec![
                "text\twith tab",
                "trailing   ",
                "# {\"$imagepolicy\": \"default:p0\"}",
                "- item: 1 # {\"$imagepolicy\": \"default:p1\"}",
                "",
            ]),
            1..4
        )
        .prop_map(|l| Entry::Block(l.into_iter().map(str::to_string).collect())),
        1 => prop::collection::vec(prop::sample::select(vec!["a", "\"b, c\"", "'d'"]), 0..3)
            .prop_map(|l| Entry::Flow(l.into_iter().map(str::to_string).collect())),
        1 => prop::sample::select(vec!["", "  ", "# standalone comment"])
            .prop_map(|s| Entry::Blank(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        (prop::collection::vec(inner, 1..5), any::<bool>())
            .prop_map(|(entries, seq)| Entry::Nested(entries, seq))
    })
}

struct Gen<'a> {
    segs: Vec<Seg>,
    nl: &'a str,
    refs: &'a [ImageRef],
    keys: usize,
}

impl Gen<'_> {
    fn fixed(&mut self, s: &str) {
        match self.segs.last_mut() {
            Some(Seg::Fixed(f)) => f.push_str(s),
            _ => self.segs.push(Seg::Fixed(s.to_string())),
        }
    }

    fn slot(&mut self, old: &(String, String), m: &MarkerChoice) {
        let new = m.value(self.refs).filter(|v| *v != old.1);
        self.segs.push(Seg::Slot {
            old: old.0.clone(),
            new,
        });
    }

    fn key(&mut self) -> String {
        self.keys += 1;
        format!("k{}", self.keys)
    }

    /// Writes entries as a block mapping (seq = false) or sequence at `indent`.
    fn entries(&mut self, entries: &[Entry], indent: usize, seq: bool) {
        let pad = " ".repeat(indent);
        let nl = self.nl.to_string();
        for e in entries {
            let lead = if seq {
                format!("{pad}- ")
            } else {
                let k = self.key();
                format!("{pad}{k}: ")
            };
            match e {
                Entry::Marked(old, m) => {
                    self.fixed(&lead);
                    self.slot(old, m);
                    self.fixed(&format!(" {}{nl}", m.comment()));
                }
                Entry::Plain(v, c) => {
                    let c = c.as_ref().map(|c| format!(" {c}")).unwrap_or_default();
                    self.fixed(&format!("{lead}{v}{c}{nl}"));
                }
                Entry::HeadItem(old, m) => {
                    if seq {
                        self.fixed(&format!("{pad}{}{nl}{pad}- ", m.comment()));
                    } else {
                        self.fixed(&format!("{lead}{nl}{pad}  {}{nl}{pad}  - ", m.comment()));
                    }
                    self.slot(old, m);
                    self.fixed(&nl);
                }
                Entry::Block(lines) => {
                    self.fixed(&format!("{lead}|{nl}"));
                    for (i, l) in lines.iter().enumerate() {
                        // The first line sets the indentation; it must not be empty.
                        let l = if i == 0 && l.trim().is_empty() {
                            "first"
                        } else {
                            l
                        };
                        if l.is_empty() {
                            self.fixed(&nl);
                        } else {
                            self.fixed(&format!("{pad}    {l}{nl}"));
                        }
                    }
                }
                Entry::Flow(items) => {
                    self.fixed(&format!("{lead}[{}]{nl}", items.join(", ")));
                }
                Entry::Nested(inner, inner_seq) => {
                    if seq {
                        // A nested collection as a sequence item: a mapping item.
                        self.fixed(&format!("{lead}nested: x{nl}"));
                        self.entries(inner, indent + 2, false);
                    } else {
                        self.fixed(&format!("{}{nl}", lead.trim_end()));
                        self.entries(inner, indent + 2, *inner_seq);
                    }
                }
                Entry::Blank(s) => self.fixed(&format!("{s}{nl}")),
            }
        }
    }
}

fn document() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(entry(), 1..6)
}

/// Checks the output against the segments; returns the new slot texts.
fn match_segments(segs: &[Seg], out: &str) -> Result<Vec<String>, String> {
    let mut pos = 0;
    let mut slots = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Seg::Fixed(f) => {
                if !out[pos..].starts_with(f.as_str()) {
                    return Err(format!("fixed text changed at byte {pos}: {f:?}"));
                }
                pos += f.len();
            }
            Seg::Slot { .. } => {
                let end = match segs.get(i + 1) {
                    Some(Seg::Fixed(next)) => {
                        let probe: String = next.chars().take(12).collect();
                        out[pos..]
                            .find(&probe)
                            .map(|e| pos + e)
                            .ok_or("next fixed text not found")?
                    }
                    _ => out.len(),
                };
                slots.push(out[pos..end].to_string());
                pos = end;
            }
        }
    }
    if pos != out.len() {
        return Err("trailing bytes".into());
    }
    Ok(slots)
}

/// Reads one scalar's text with serde_yaml_ng (libyaml), as a string.
fn read_back(text: &str) -> Option<String> {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&format!("v: {text}\n")).ok()? {
        serde_yaml_ng::Value::Mapping(m) => match m.get("v")? {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        .. ProptestConfig::default()
    })]

    #[test]
    fn only_marked_scalars_change_and_apply_is_idempotent(
        docs in prop::collection::vec(document(), 1..3),
        refs in policies(),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        leading_start in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut g = Gen { segs: Vec::new(), nl, refs: &refs, keys: 0 };
        if bom {
            g.fixed("\u{feff}");
        }
        for (i, d) in docs.iter().enumerate() {
            if i > 0 || leading_start {
                g.fixed(&format!("---{nl}"));
            }
            g.entries(d, 0, false);
        }
        let segs = g.segs;
        let input: String = segs.iter().map(|s| match s {
            Seg::Fixed(f) => f.as_str(),
            Seg::Slot { old, .. } => old.as_str(),
        }).collect();
        let setters = setters(&refs);
        let applied = apply(input.as_bytes(), &setters)
            .map_err(|p| TestCaseError::fail(format!("{p}\n{input}")))?;
        let expect_change = segs.iter().any(|s| matches!(s, Seg::Slot { new: Some(_), .. }));
        prop_assert_eq!(applied.output.is_some(), expect_change, "{}", input);
        let Some(out) = applied.output else { return Ok(()); };
        let out = String::from_utf8(out).unwrap();
        let slots = match_segments(&segs, &out)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- in\n{input}\n--- out\n{out}")))?;
        let mut k = 0;
        for seg in &segs {
            if let Seg::Slot { old, new } = seg {
                let got = &slots[k];
                k += 1;
                match new {
                    None => prop_assert_eq!(got, old),
                    Some(v) => {
                        prop_assert!(!got.contains('\n'));
                        let read = read_back(got);
                        prop_assert_eq!(read.as_ref(), Some(v), "{} in\n{}", got, out);
                    }
                }
            }
        }
        prop_assert_eq!(applied.changes.len(), segs.iter().filter(|s| matches!(s, Seg::Slot { new: Some(_), .. })).count());
        let again = apply(out.as_bytes(), &setters).map_err(|p| TestCaseError::fail(p.to_string()))?;
        prop_assert!(again.output.is_none(), "second apply changed\n{}", out);
    }
}
