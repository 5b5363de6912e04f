//! Properties of policies over generated tag lists: the choice satisfies the range and nothing
//! better does; the result does not depend on the order of the list; `explain` agrees.

use std::cmp::Ordering;

use proptest::prelude::*;
use tagline::policy::{Choice, FilterTags, Order, Policy, Range, Version};

/// Tags like registries hold: versions (with `v`, prereleases, metadata, leading zeros),
/// partial and four-part versions, numbers, hashes, words.
fn tag() -> impl Strategy<Value = String> {
    let num = || prop_oneof![4 => 0u64..4, 1 => 0u64..30, 1 => Just(10u64)];
    let pre = prop_oneof![
        Just(String::new()),
        Just("-rc.1".to_string()),
        Just("-rc.10".to_string()),
        Just("-rc9".to_string()),
        Just("-alpha".to_string()),
        Just("-0".to_string()),
        Just("-beta.2.x".to_string()),
    ];
    let build = prop_oneof![
        4 => Just(String::new()),
        1 => Just("+b1".to_string()),
        1 => Just("+b2".to_string())
    ];
    let version = (
        prop::bool::ANY,
        num(),
        num(),
        num(),
        pre,
        build,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(v, a, b, c, pre, build, zero)| {
            let z = if zero { "0" } else { "" };
            format!("{}{a}.{z}{b}.{c}{pre}{build}", if v { "v" } else { "" })
        });
    prop_oneof![
        6 => version,
        1 => (0u64..4, 0u64..4).prop_map(|(a, b)| format!("{a}.{b}")),
        1 => (0u64..4, 0u64..4).prop_map(|(a, b)| format!("{a}.{b}-beta.1")),
        1 => (0u64..3, 0u64..3, 0u64..3, 0u64..3).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        1 => "[0-9]{1,4}",
        1 => "[0-9a-f]{7}",
        1 => "[a-z]{1,6}(-[0-9]{1,3})?",
        1 => "[-+.0-9a-zA-Z_]{0,8}",
    ]
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(tag(), 0..40)
}

/// Ranges built from the operators, partial versions and wildcards Masterminds knows.
fn range() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec![
        "", "=", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^",
    ]);
    let part = prop_oneof![4 => (0u64..4).prop_map(|n| n.to_string()), 1 => Just("x".to_string()), 1 => Just("*".to_string())];
    let cv = (
        prop::bool::weighted(0.2),
        part.clone(),
        prop::option::of(part.clone()),
        prop::option::of(part),
        prop::sample::select(vec!["", "", "", "-0", "-rc.1"]),
    )
        .prop_map(|(v, a, b, c, pre)| {
            let mut s = format!("{}{a}", if v { "v" } else { "" });
            if let Some(b) = b {
                s.push('.');
                s.push_str(&b);
                if let Some(c) = c {
                    s.push('.');
                    s.push_str(&c);
                }
            }
            s.push_str(pre);
            s
        });
    let constraint = prop_oneof![
        4 => (op, cv.clone()).prop_map(|(op, cv)| format!("{op}{cv}")),
        1 => (cv.clone(), cv).prop_map(|(a, b)| format!("{a} - {b}")),
    ];
    let group = prop::collection::vec(constraint, 1..4).prop_map(|cs| cs.join(", "));
    prop::collection::vec(group, 1..3).prop_map(|gs| gs.join(" || "))
}

fn greater(a: &str, b: &str) -> bool {
    let (va, vb) = (Version::parse(a).unwrap(), Version::parse(b).unwrap());
    va.precedence(&vb) == Ordering::Greater
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn semver_choice_satisfies_and_is_greatest(tags in tags(), range in range()) {
        let r = Range::parse(&range).expect("generated ranges are valid");
        let p = Policy::new(&Choice::SemVer { range: range.clone() }, None).unwrap();
        match p.latest(&tags) {
            Ok(chosen) => {
                prop_assert!(tags.contains(&chosen));
                let v = Version::parse(&chosen).expect("the choice is a version");
                prop_assert!(r.satisfies(&v), "{chosen} does not satisfy {range}");
                for t in &tags {
                    if let Some(tv) = Version::parse(t) {
                        if r.satisfies(&tv) {
                            prop_assert!(!greater(t, &chosen), "{t} > {chosen} satisfies {range}");
                        }
                    }
                }
            }
            Err(e) => {
                let any = tags.iter().any(|t| Version::parse(t).is_some_and(|v| r.satisfies(&v)));
                prop_assert!(!any, "no choice ({e}) though a tag satisfies {range}");
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_order(
        mut tags in tags(),
        range in range(),
        kind in 0..3u8,
        desc in prop::bool::ANY,
        filter in prop::sample::select(vec![None, Some((r"^v", "")), Some((r"^v?(\d+)", "$1")), Some((r"(?P<x>[0-9])", "${x}.0.0")), Some((r"[a-z]", ""))]),
        seed in any::<u64>(),
    ) {
        let order = if desc { Order::Desc } else { Order::Asc };
        let choice = match kind {
            0 => Choice::SemVer { range },
            1 => Choice::Alphabetical { order },
            _ => Choice::Numerical { order },
        };
        let filter = filter.map(|(p, x)| FilterTags { pattern: p.to_string(), extract: x.to_string() });
        let p = Policy::new(&choice, filter.as_ref()).unwrap();
        let want = p.latest(&tags);
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..tags.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            tags.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&p.latest(&tags), &want);
        tags.reverse();
        prop_assert_eq!(&p.latest(&tags), &want);
        let ex = p.explain(&tags, 5);
        prop_assert_eq!(&ex.outcome, &want);
        prop_assert_eq!(ex.seen, ex.excluded + ex.merged + ex.filtered);
    }

    #[test]
    fn numerical_choice_is_the_extreme(nums in prop::collection::vec(-1000i64..1000, 1..30), desc in prop::bool::ANY) {
        let tags: Vec<String> = nums.iter().map(|n| n.to_string()).collect();
        let order = if desc { Order::Desc } else { Order::Asc };
        let p = Policy::new(&Choice::Numerical { order }, None).unwrap();
        let chosen: i64 = p.latest(&tags).unwrap().parse().unwrap();
        let want = if desc { *nums.iter().min().unwrap() } else { *nums.iter().max().unwrap() };
        prop_assert_eq!(chosen, want);
    }

    #[test]
    fn alphabetical_choice_is_the_extreme(tags in prop::collection::vec(".{0,6}", 1..30), desc in prop::bool::ANY) {
        let order = if desc { Order::Desc } else { Order::Asc };
        let p = Policy::new(&Choice::Alphabetical { order }, None).unwrap();
        let chosen = p.latest(&tags).unwrap();
        let want = if desc { tags.iter().min() } else { tags.iter().max() };
        prop_assert_eq!(Some(&chosen), want);
    }

    /// The quick bounds on major.minor.patch never exclude a version that satisfies.
    #[test]
    fn range_bounds_are_sound(range in range(), tags in tags()) {
        let r = Range::parse(&range).unwrap();
        for t in &tags {
            if let Some(v) = Version::parse(t) {
                if r.satisfies(&v) {
                    prop_assert!(r.may_admit(v.triple()), "{range} excludes {t} by its bounds");
                }
            }
        }
    }

    /// `>=a.b.c <d.e.f` against a plain tuple comparison, releases only.
    #[test]
    fn simple_interval_matches_tuple_order(lo in (0u64..5, 0u64..5, 0u64..5), hi in (0u64..5, 0u64..5, 0u64..5), v in (0u64..5, 0u64..5, 0u64..5)) {
        let range = format!(">={}.{}.{} <{}.{}.{}", lo.0, lo.1, lo.2, hi.0, hi.1, hi.2);
        let r = Range::parse(&range).unwrap();
        let tag = format!("{}.{}.{}", v.0, v.1, v.2);
        prop_assert_eq!(r.satisfies(&Version::parse(&tag).unwrap()), lo <= v && v < hi);
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,24}", t in "[-+.,|<>=~^ vxX*0-9a-z]{0,24}") {
        let _ = Version::parse(&s);
        let _ = Version::parse(&t);
        let _ = Range::parse(&s);
        if let Err(e) = Range::parse(&t) {
            prop_assert!(e.offset <= t.len());
        }
    }

    /// A version printed back from its parts parses to the same parts.
    #[test]
    fn version_round_trip(v in tag()) {
        if let Some(p) = Version::parse(&v) {
            let mut s = format!("{}.{}.{}", p.major, p.minor, p.patch);
            if !p.pre.is_empty() { s.push('-'); s.push_str(p.pre); }
            if !p.build.is_empty() { s.push('+'); s.push_str(p.build); }
            let q = Version::parse(&s).unwrap();
            prop_assert_eq!(p.precedence(&q), Ordering::Equal);
            prop_assert_eq!((p.pre, p.build), (q.pre, q.build));
        }
    }
}
