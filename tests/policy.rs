//! Policies end to end: tag lists in, the chosen tag (or Flux's error) out, one table row per
//! rule, including every example of FLUX-REFERENCE §2.8 and Flux's ImagePolicy examples.

use tagline::policy::{Choice, FilterTags, Order, Policy, Version};

/// A row: name, tags (comma-separated; OCI tags hold no comma), policy, filter, expectation.
/// Policy: `semver:<range>`, `alpha:asc|desc`, `num:asc|desc`.
/// Filter: `""` for none, else `pattern` or `pattern => extract` (split on ` => `).
/// Expectation: `=tag` for a choice, `!text` for a `NoCandidate` whose message contains text.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const ROWS: &[Row] = &[
    // FLUX-REFERENCE §2.8, in order.
    ("2.8#1 four parts and 1.0.0p skipped", "1.0.0,1.0.0.1,1.0.0p,1.0.1,1.2.0,0.1.0", "semver:1.0.x", "", "=1.0.1"),
    ("2.8#2 v prefix kept in output", "v1.2.3,v1.0.0,v0.1.0", "semver:1.0.x", "", "=v1.0.0"),
    ("2.8#3 b prefix: none parse", "b1.2.3,b1.0.0,b0.1.0", "semver:1.0.x", "", "!unable to determine latest version from provided list: none of the 3 tags is a version"),
    ("2.8#4 none satisfies", "1.2.0", "semver:1.0.x", "", "!unable to determine latest version from provided list: none of the 1 version satisfies the range '1.0.x'"),
    ("2.8#5 empty list, semver", "", "semver:1.0.x", "", "!version list argument cannot be empty"),
    ("2.8#5 empty list, alphabetical", "", "alpha:asc", "", "!version list argument cannot be empty"),
    ("2.8#5 empty list, numerical", "", "num:asc", "", "!version list argument cannot be empty"),
    ("2.8#6 patch line", "0.1.0,0.1.1,0.2.0,1.0.0,1.0.1,1.0.2,1.1.0-alpha", "semver:1.0.x", "", "=1.0.2"),
    ("2.8#7 prerelease excluded", "1.0.1,1.0.2,1.1.0-alpha", "semver:1.x", "", "=1.0.2"),
    ("2.8#8 -0 admits prereleases", "1.0.1,1.0.2,1.1.0-alpha", "semver:>=1.0.0-0", "", "=1.1.0-alpha"),
    ("2.8#9 extract then semver, original reported", "test-0.1.0,test-0.1.1,dev-0.2.0,1.0.0,1.0.1,1.0.2,1.1.0-alpha", "semver:>=0.x", "^test-(.*)$ => $1", "=test-0.1.1"),
    ("2.8#11 rc9 beats rc10 (ASCII)", "v1.0.1-rc9,v1.0.1-rc10", "semver:>=v0.0.1-0", ".*-rc.*", "=v1.0.1-rc9"),
    ("2.8#12 rc.10 beats rc.9 (numeric)", "v1.0.1-rc.9,v1.0.1-rc.10", "semver:>=v0.0.1-0", ".*-rc.*", "=v1.0.1-rc.10"),
    ("2.8#13 git describe tag is a prerelease", "2.0.330-63-gc1cfb6864", "semver:>=2.0.300", "", "!prereleases only match a range with a prerelease"),
    ("2.8#13 ... and -0 admits it", "2.0.330-63-gc1cfb6864", "semver:>=2.0.300-0", "", "=2.0.330-63-gc1cfb6864"),
    ("2.8#14 partials rejected", "1.2,1.2.3,v1", "semver:*", "", "=1.2.3"),
    ("2.8#15 CalVer with leading zeros", "v2025.07.03,v2025.10.01", "semver:>=2025.0.0", "", "=v2025.10.01"),
    ("2.8#16 build metadata ignored, greatest string of equals", "1.0.0+build.2,1.0.0+build.10", "semver:1.0.0", "", "=1.0.0+build.2"),
    ("2.8#17 alphabetical asc", "16.04,16.04.1,16.10,20.04,20.10", "alpha:asc", "", "=20.10"),
    ("2.8#17 alphabetical desc", "16.04,16.04.1,16.10,20.04,20.10", "alpha:desc", "", "=16.04"),
    ("2.8#18 names asc", "xenial,yakkety,zesty,artful,bionic", "alpha:asc", "", "=zesty"),
    ("2.8#18 names desc", "xenial,yakkety,zesty,artful,bionic", "alpha:desc", "", "=artful"),
    ("2.8#19 RFC3339-ish", "2021-01-08T21-18-21Z,2020-05-08T21-18-21Z,2021-01-08T19-20-00Z,1990-01-08T00-20-00Z,2023-05-08T00-20-00Z", "alpha:asc", "", "=2023-05-08T00-20-00Z"),
    ("2.8#20 prefixed timestamps", "rel-1606234201,rel-1606364286,rel-1606334092", "alpha:asc", "", "=rel-1606364286"),
    ("2.8#21 lexical trap", "3d-dev-1.0.9,3d-dev-1.0.63,3d-dev-1.0.10", "alpha:asc", r"^(?P<version>3d-dev-[0-9]+?(\.[0-9]+?)+?)$ => $version", "=3d-dev-1.0.9"),
    ("2.8#22 numerical asc", "-62,-88,73,72,15,16,15,29,-33,-91", "num:asc", "", "=73"),
    ("2.8#23 numerical desc", "5,-8,-78,25,70,-4,80,92,-20,-24", "num:desc", "", "=-78"),
    ("2.8#24 floats", "19.40896689283219,53.47333823144817,-81.34141210713927,-12.5", "num:asc", "", "=53.47333823144817"),
    ("2.8#25 one non-number fails", "0,1a,b", "num:asc", "", "!failed to parse invalid numeric value '1a'"),
    ("2.8#26 extract timestamp", "main-ab12cd3-1606234201,main-ef45ab6-1606364286,dev-aa11bb2-1606999999", "num:asc", r"^main-[a-fA-F0-9]+-(?P<ts>.*) => $ts", "=main-ef45ab6-1606364286"),
    ("2.8#27 hyphen is not numeric", "20220209-04,20220209-22", "num:asc", r"^(?P<version>[0-9]+-[0-9]+)$ => $version", "!failed to parse invalid numeric value '20220209-04'"),
    ("2.8#28 concatenated groups", "20220209-04,20220209-22", "num:asc", r"^(?P<ts>[0-9]+)-(?P<inc>[0-9]+)$ => $ts$inc", "=20220209-22"),
    ("2.8#29 whole tag is not a number", "sandbox-1214bc9i,sandbox-cd14bcbc", "num:asc", "^sandbox-[0-9a-z]+", "!failed to parse invalid numeric value 'sandbox-1214bc9i'"),
    ("2.8#30 minio RELEASE", "RELEASE.2023-05-04T21-44-30Z,RELEASE.2022-10-24T18-35-07Z,RELEASE.2023-01-02T09-40-09Z", "alpha:asc", r"^RELEASE\.(?P<timestamp>.*)Z$ => $timestamp", "=RELEASE.2023-05-04T21-44-30Z"),
    ("2.8#31 alpine suffix", "7.0.11-alpine3.17,7.2.1-alpine3.18,7.2.1", "semver:>=1.0.0", r"^(?P<semver>[0-9]*\.[0-9]*\.[0-9]*)-(alpine[0-9]*\.[0-9]*) => $semver", "=7.2.1-alpine3.18"),
    ("2.8#32 ver(\\d+)", "ver1,ver2,ver3,rel1", "num:asc", r"ver(\d+) => $1", "=ver3"),
    ("2.8#32 ver(\\d+) desc", "ver1,ver2,ver3,rel1", "num:desc", r"ver(\d+) => $1", "=ver1"),
    // Flux's ImagePolicy documentation examples.
    ("doc semver 5.0.x", "5.0.1,5.0.3,5.1.0,4.9.9", "semver:5.0.x", "", "=5.0.3"),
    ("doc semver >=1.0.0", "0.9.0,1.0.0,1.2.3,2.0.0-rc.1", "semver:>=1.0.0", "", "=1.2.3"),
    ("doc semver >=1.0.0-0", "0.9.0,1.0.0,1.2.3,2.0.0-rc.1", "semver:>=1.0.0-0", "", "=2.0.0-rc.1"),
    ("doc semver ^1.x-0 for prereleases", "1.0.0,1.1.0-rc.1,2.0.0-rc.1", "semver:^1.x-0", "", "=1.1.0-rc.1"),
    ("doc numerical main-<sha>-<ts>", "main-3f2a1c0-1690000000,main-aa00ff1-1700000000,feature-x-1800000000", "num:asc", r"^main-[a-fA-F0-9]+-(?P<ts>.*) => $ts", "=main-aa00ff1-1700000000"),
    ("doc alphabetical RELEASE desc", "RELEASE.2023-05-04T21-44-30Z,RELEASE.2022-10-24T18-35-07Z", "alpha:desc", r"^RELEASE\.(?P<timestamp>.*)Z$ => $timestamp", "=RELEASE.2022-10-24T18-35-07Z"),
    ("doc filter with extract semver", "1.0.0-alpine,1.1.0-alpine,1.2.0,1.1.0", "semver:>=1.0.0", r"^(?P<v>[0-9.]+)-alpine$ => $v", "=1.1.0-alpine"),
    // Tags as versions.
    ("uppercase V rejected", "V9.9.9,1.0.0", "semver:*", "", "=1.0.0"),
    ("two parts rejected", "2.0,1.0.0", "semver:*", "", "=1.0.0"),
    ("one part rejected", "3,1.0.0", "semver:*", "", "=1.0.0"),
    ("v1.0 rejected", "v2.0,v1.0.0", "semver:*", "", "=v1.0.0"),
    ("four parts rejected", "v1.2.3.4,1.0.0", "semver:*", "", "=1.0.0"),
    ("suffix letters rejected", "1.2.3p,1.0.0", "semver:*", "", "=1.0.0"),
    ("quirk: 1.2-beta.1 is 1.2.0-beta.1", "1.2-beta.1,1.1.0", "semver:>=1.0.0-0", "", "=1.2-beta.1"),
    ("quirk: 1.2-beta5 rejected", "1.2-beta5,1.1.0", "semver:>=1.0.0-0", "", "=1.1.0"),
    ("quirk: v1.2-5 rejected", "v1.2-5,v1.1.0", "semver:>=1.0.0-0", "", "=v1.1.0"),
    ("quirk: 1.2-rc.1.0 accepted", "1.2-rc.1.0,1.1.0", "semver:>=1.0.0-0", "", "=1.2-rc.1.0"),
    ("quirk: 1.2+b.c is 1.2.0", "1.2+b.c,1.1.0", "semver:*", "", "=1.2+b.c"),
    ("leading zero numeric prerelease invalid", "1.2.0-01,1.1.0", "semver:>=1.0.0-0", "", "=1.1.0"),
    ("leading zero alnum prerelease valid", "1.2.0-0a,1.1.0", "semver:>=1.0.0-0", "", "=1.2.0-0a"),
    ("zero prerelease valid", "1.2.0-0,1.1.0", "semver:>=1.0.0-0", "", "=1.2.0-0"),
    ("hyphens in prerelease and metadata", "v1.2.0-x.Y.0+metadata-width-hypen,v1.1.0", "semver:>=1.0.0-0", "", "=v1.2.0-x.Y.0+metadata-width-hypen"),
    ("empty prerelease identifier invalid", "1.2.0-a..b,1.1.0", "semver:>=1.0.0-0", "", "=1.1.0"),
    ("empty build invalid", "1.2.0+,1.1.0", "semver:*", "", "=1.1.0"),
    ("underscore in prerelease invalid", "1.2.0-a_b,1.1.0", "semver:>=1.0.0-0", "", "=1.1.0"),
    ("leading zeros in numbers", "01.02.03,1.2.2", "semver:*", "", "=01.02.03"),
    ("number above u64 rejected", "18446744073709551616.0.0,1.0.0", "semver:*", "", "=1.0.0"),
    ("u64 max accepted", "18446744073709551615.0.0,1.0.0", "semver:*", "", "=18446744073709551615.0.0"),
    ("commit hashes and latest skipped", "latest,a1b2c3d,sha-4f5e6d7,1.0.0,main", "semver:*", "", "=1.0.0"),
    ("signature tags skipped", "sha256-abc.sig,1.0.0", "semver:*", "", "=1.0.0"),
    ("non-versions are skipped, not errors", "foo,bar,1.0.0", "semver:>=1", "", "=1.0.0"),
    ("unicode tag skipped", "1.0.0é,1.0.0", "semver:*", "", "=1.0.0"),
    ("space inside rejected", "1.0.0 ,0.9.0", "semver:*", "", "=0.9.0"),
    // Ordering.
    ("release above its prereleases", "1.0.0-rc.1,1.0.0,1.0.0-beta", "semver:>=0.0.0-0", "", "=1.0.0"),
    ("numeric vs alnum identifiers", "1.0.0-1,1.0.0-alpha", "semver:>=0.0.0-0", "", "=1.0.0-alpha"),
    ("more identifiers greater", "1.0.0-alpha,1.0.0-alpha.1", "semver:>=0.0.0-0", "", "=1.0.0-alpha.1"),
    ("uppercase before lowercase", "1.0.0-Beta,1.0.0-alpha", "semver:>=0.0.0-0", "", "=1.0.0-alpha"),
    ("numbers compared as numbers", "1.10.0,1.9.0,1.2.0", "semver:*", "", "=1.10.0"),
    ("patch compared as number", "1.0.10,1.0.9", "semver:*", "", "=1.0.10"),
    ("major dominates", "2.0.0,1.99.99", "semver:*", "", "=2.0.0"),
    ("v prefix tie: greatest string", "1.2.3,v1.2.3", "semver:*", "", "=v1.2.3"),
    ("v prefix tie, other order", "v1.2.3,1.2.3", "semver:*", "", "=v1.2.3"),
    ("metadata tie: greatest string", "1.0.0+a,1.0.0+b,1.0.0", "semver:*", "", "=1.0.0+b"),
    ("leading zero tie", "2025.7.3,2025.07.03", "semver:*", "", "=2025.7.3"),
    // Ranges on tag lists.
    ("caret", "1.0.0,1.4.2,2.0.0,0.9.9", "semver:^1.0.0", "", "=1.4.2"),
    ("and range", "1.0.0,1.9.9,2.0.0", "semver:>=1.0.0 <2.0.0", "", "=1.9.9"),
    ("comma and range", "1.0.0,1.9.9,2.0.0", "semver:>=1.0.0, <2.0.0", "", "=1.9.9"),
    ("tilde partial", "1.2.0,1.2.7,1.3.0", "semver:~1.2", "", "=1.2.7"),
    ("x wildcard", "1.0.0,1.8.0,2.0.0", "semver:1.x", "", "=1.8.0"),
    ("star wildcard", "0.1.0,3.0.0,4.0.0-rc.1", "semver:*", "", "=3.0.0"),
    ("or groups", "1.5.0,3.5.0,4.3.0", "semver:>= 1.2 < 3.0.0 || >= 4.2.3", "", "=4.3.0"),
    ("or groups, second empty", "1.5.0,3.5.0,4.2.0", "semver:>= 1.2 < 3.0.0 || >= 4.2.3", "", "=1.5.0"),
    ("hyphen range", "1.2.0,1.4.5,1.4.6", "semver:1.2 - 1.4.5", "", "=1.4.5"),
    ("not-equal line", "1.2.9,1.3.0,1.1.0", "semver:!=1.3.x", "", "=1.2.9"),
    ("greater than partial minor", "11.1.5,11.1.9", "semver:>11.1", "", "!none of the 2 versions satisfies"),
    ("<=2.x", "2.9.0,3.0.0", "semver:<=2.x", "", "=2.9.0"),
    ("^0.2.3", "0.2.3,0.2.9,0.3.0", "semver:^0.2.3", "", "=0.2.9"),
    ("^0.0.3", "0.0.3,0.0.4", "semver:^0.0.3", "", "=0.0.3"),
    ("v in constraint", "v1.0.0,v1.1.0", "semver:>=v1.1.0", "", "=v1.1.0"),
    ("prerelease group scope", "1.1.0-rc.1,0.5.0", "semver:>=1.0.0-0 <2 || <1", "", "=1.1.0-rc.1"),
    ("prerelease not admitted by other group", "0.6.0-rc.1,0.5.0", "semver:>=1.0.0-0 || <1", "", "=0.5.0"),
    ("upper bound admits its own prereleases", "1.0.0,2.0.0-rc.1", "semver:>=1.0.0-0 <2.0.0", "", "=2.0.0-rc.1"),
    ("prerelease of the upper bound", "1.0.0,2.0.0-rc.1", "semver:>=1.0.0-0 <2.0.0-0", "", "=1.0.0"),
    // Alphabetical.
    ("byte order: uppercase first", "Zeta,alpha", "alpha:asc", "", "=alpha"),
    ("byte order desc", "Zeta,alpha", "alpha:desc", "", "=Zeta"),
    ("no numeric awareness", "9,10,100", "alpha:asc", "", "=9"),
    ("prefix is less", "abc,ab", "alpha:desc", "", "=ab"),
    ("single tag", "only", "alpha:desc", "", "=only"),
    ("utf-8 bytes", "é,z", "alpha:asc", "", "=é"),
    ("alphabetical filter only", "a-1,b-2,a-3", "alpha:asc", "^a-", "=a-3"),
    ("same extracted value: least tag", "x-1-b,x-1-a,y-0", "alpha:asc", r"-(\d)- => $1", "=x-1-a"),
    ("same extracted value, desc", "x-1-b,x-1-a,y-2-z", "alpha:desc", r"-(\d)- => $1", "=x-1-a"),
    // Numerical.
    ("negatives", "-1,-2,-10", "num:asc", "", "=-1"),
    ("exponent", "1e3,999,1001", "num:asc", "", "=1001"),
    ("exponent wins", "1e4,9999", "num:asc", "", "=1e4"),
    ("hex float", "0x1p4,15", "num:asc", "", "=0x1p4"),
    ("plus sign", "+7,6", "num:asc", "", "=+7"),
    ("inf", "inf,1e300", "num:asc", "", "=inf"),
    ("-Infinity desc", "-Infinity,-1e300", "num:desc", "", "=-Infinity"),
    ("NaN never wins asc", "NaN,1", "num:asc", "", "=1"),
    ("NaN never wins desc", "NaN,1", "num:desc", "", "=1"),
    ("all NaN", "NaN,nan", "num:asc", "", "=NaN"),
    ("decimal point forms", ".5,5.,0.25", "num:asc", "", "=5."),
    ("underscores between digits", "1_000,999", "num:asc", "", "=1_000"),
    ("trailing underscore invalid", "1_,2", "num:asc", "", "!failed to parse invalid numeric value '1_'"),
    ("signed nan invalid", "-nan,2", "num:asc", "", "!failed to parse invalid numeric value '-nan'"),
    ("overflow invalid", "1e400,2", "num:asc", "", "!failed to parse invalid numeric value '1e400'"),
    ("hex without exponent invalid", "0x10,2", "num:asc", "", "!failed to parse invalid numeric value '0x10'"),
    ("names the least invalid value", "b,a,1", "num:asc", "", "!failed to parse invalid numeric value 'a'; 2 of the 3 tags are not numbers"),
    ("equal numbers: least string", "1.0,1,01", "num:asc", "", "=01"),
    ("equal numbers desc: least string", "2.0,2,1.5e0,1.50", "num:desc", "", "=1.50"),
    ("zero and minus zero", "0,-0", "num:asc", "", "=-0"),
    ("timestamps", "1606234201,1606364286,1606334092", "num:asc", "", "=1606364286"),
    ("14-digit dates", "20240101120000,20231231235959", "num:asc", "", "=20240101120000"),
    ("extracted empty value is not a number", "build-,build-5", "num:asc", r"^build-(\d*)$ => $1", "!failed to parse invalid numeric value '' (extracted from tag 'build-')"),
    // filterTags.
    ("pattern is unanchored", "xv1.0.0y,v1.0.0", "alpha:asc", "v1", "=xv1.0.0y"),
    ("no tag matches the filter", "1.0.0,2.0.0", "semver:*", "^v", "!version list argument cannot be empty: none of the 2 tags matches the filter pattern '^v'"),
    ("empty pattern matches all", "a,b", "alpha:asc", "", "=b"),
    ("extract named group ${name}", "app-12_x,app-9_x", "num:asc", r"^app-(?P<n>\d+)_x$ => ${n}", "=app-12_x"),
    ("$name_x is one name (absent): all empty", "app-12_x", "alpha:asc", r"^app-(?P<n>\d+)_x$ => $n_x", "=app-12_x"),
    ("unknown group is empty then semver fails", "app-1.0.0", "semver:*", r"^app-(.*)$ => $2", "!none of the 1 extracted value is a version"),
    ("$$ is a dollar", "a-1", "alpha:asc", r"^a-(\d)$ => $$1", "=a-1"),
    ("extract literal text around", "r7", "semver:1.x", r"^r(\d+)$ => 1.$1.0", "=r7"),
    ("Go (?<name>) groups", "x-3,x-11", "num:asc", r"^x-(?<n>\d+)$ => $n", "=x-11"),
    ("optional group not taking part", "a,b1", "alpha:desc", r"^[ab](\d)?$ => z$1", "=a"),
    ("filter then semver prerelease", "app-1.0.0-rc.1,app-0.9.0,other-5.0.0", "semver:>=0.0.0-0", r"^app-(?P<v>.+)$ => $v", "=app-1.0.0-rc.1"),
    ("extract without pattern groups", "v1.0.0,v2.0.0", "semver:*", r"^v => 1.0.0", "=v1.0.0"),
];

fn choice(spec: &str) -> Choice {
    let (kind, arg) = spec.split_once(':').expect("policy spec");
    match kind {
        "semver" => Choice::SemVer {
            range: arg.to_string(),
        },
        "alpha" => Choice::Alphabetical {
            order: arg.parse().expect("order"),
        },
        "num" => Choice::Numerical {
            order: arg.parse().expect("order"),
        },
        _ => panic!("unknown policy kind {kind}"),
    }
}

fn filter(spec: &str) -> Option<FilterTags> {
    if spec.is_empty() {
        return None;
    }
    let (pattern, extract) = spec.split_once(" => ").unwrap_or((spec, ""));
    Some(FilterTags {
        pattern: pattern.to_string(),
        extract: extract.to_string(),
    })
}

fn tags(list: &str) -> Vec<String> {
    if list.is_empty() {
        Vec::new()
    } else {
        list.split(',').map(str::to_string).collect()
    }
}

fn run(row: &Row) -> Result<String, String> {
    let (_, list, policy, filter_spec, _) = *row;
    let p = Policy::new(&choice(policy), filter(filter_spec).as_ref())
        .map_err(|e| format!("invalid policy: {e}"))?;
    p.latest(&tags(list)).map_err(|e| e.0)
}

#[test]
fn table() {
    let mut failures = Vec::new();
    for row in ROWS {
        let (name, _, _, _, want) = *row;
        let got = run(row);
        let ok = match (want.strip_prefix('='), want.strip_prefix('!'), &got) {
            (Some(tag), _, Ok(g)) => g == tag,
            (_, Some(text), Err(e)) => e.contains(text),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: want {want}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
}

#[test]
fn table_results_do_not_depend_on_input_order() {
    for row in ROWS {
        let (name, list, policy, filter_spec, _) = *row;
        let p = match Policy::new(&choice(policy), filter(filter_spec).as_ref()) {
            Ok(p) => p,
            Err(_) => continue,
        };
        let mut t = tags(list);
        let want = p.latest(&t);
        t.reverse();
        assert_eq!(p.latest(&t), want, "{name}: reversed");
        let half = t.len() / 2;
        t.rotate_left(half);
        assert_eq!(p.latest(&t), want, "{name}: rotated");
    }
}

#[test]
fn explain_agrees_with_latest_on_every_row() {
    for row in ROWS {
        let (name, list, policy, filter_spec, _) = *row;
        let Ok(p) = Policy::new(&choice(policy), filter(filter_spec).as_ref()) else {
            continue;
        };
        let t = tags(list);
        let ex = p.explain(&t, 3);
        assert_eq!(ex.outcome, p.latest(&t), "{name}");
        if let Ok(tag) = &ex.outcome {
            assert_eq!(&ex.top[0].tag, tag, "{name}");
        }
        assert_eq!(ex.seen, ex.excluded + ex.merged + ex.filtered, "{name}");
        assert_eq!(ex.filtered, ex.parsed + ex.unparsed, "{name}");
    }
}

#[test]
fn invalid_policies() {
    let bad: &[(Choice, Option<FilterTags>, &str)] = &[
        (
            choice("semver:1.0.0p"),
            None,
            "invalid semver range \"1.0.0p\": at column 6",
        ),
        (
            choice("semver:"),
            None,
            "invalid semver range \"\": at column 1",
        ),
        (choice("semver:*-*"), None, "at column 2"),
        (
            choice("alpha:asc"),
            filter("^test-(.*"),
            "invalid regular expression pattern '^test-(.*'",
        ),
        (
            choice("num:asc"),
            filter(r"(?=x)"),
            "invalid regular expression pattern",
        ),
        (
            choice("num:asc"),
            filter(r"(a)\1"),
            "invalid regular expression pattern",
        ),
    ];
    for (c, f, want) in bad {
        let err = Policy::new(c, f.as_ref()).expect_err(want);
        assert!(err.0.contains(want), "{c:?} {f:?}: {err}");
        assert!(!err.0.contains('\n'), "one line: {err}");
    }
}

#[test]
fn orders_parse_as_flux_does() {
    assert_eq!("asc".parse::<Order>(), Ok(Order::Asc));
    assert_eq!("ASC".parse::<Order>(), Ok(Order::Asc));
    assert_eq!("".parse::<Order>(), Ok(Order::Asc));
    assert_eq!("Desc".parse::<Order>(), Ok(Order::Desc));
    let err = "up".parse::<Order>().unwrap_err();
    assert_eq!(
        err.0,
        "invalid order argument provided: 'UP', must be one of: ASC, DESC"
    );
}

#[test]
fn versions_parse_as_flux_does() {
    type Parsed = (&'static str, (u64, u64, u64), &'static str, &'static str);
    let ok: &[Parsed] = &[
        ("1.2.3", (1, 2, 3), "", ""),
        ("v1.2.3", (1, 2, 3), "", ""),
        ("v2025.07.03", (2025, 7, 3), "", ""),
        ("1.2.3-rc.1+b.5", (1, 2, 3), "rc.1", "b.5"),
        ("1.2-beta.1", (1, 2, 0), "beta.1", ""),
        ("1-a.b.c", (1, 0, 0), "a.b.c", ""),
        ("1.0.0--", (1, 0, 0), "-", ""),
        ("0.0.0+0.0", (0, 0, 0), "", "0.0"),
        ("1.2.3+01", (1, 2, 3), "", "01"),
    ];
    for &(tag, triple, pre, build) in ok {
        let v = Version::parse(tag).unwrap_or_else(|| panic!("{tag} should parse"));
        assert_eq!((v.triple(), v.pre, v.build), (triple, pre, build), "{tag}");
    }
    for tag in [
        "",
        "v",
        "1",
        "1.2",
        "v1.0",
        "1.0.0.1",
        "1.0.0p",
        "V1.2.3",
        "b1.2.3",
        "1.2-beta5",
        "v1.2-5",
        "1..2.3",
        ".1.2.3",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-01",
        "1.2.3-a..b",
        "1.2.3-a_b",
        "-1.2.3",
        "vv1.2.3",
        "1.2.3 ",
        " 1.2.3",
        "1.2.3-a+b+c",
        "1.-2.3",
    ] {
        assert_eq!(Version::parse(tag), None, "{tag:?} should not parse");
    }
}
