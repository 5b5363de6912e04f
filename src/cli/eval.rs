//! `tagline eval`: evaluates one ImagePolicy's choice on a tag list and prints the chosen tag.
//!
//! The tag list is read from a file or standard input, one tag per line (blank lines and
//! surrounding whitespace ignored). Exit status: 0 with the tag printed; 1 when no tag could be
//! chosen (the reason goes to standard error); an `Err` for an invalid policy or unreadable
//! input.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::policy::{Choice, Explanation, FilterTags, Order, Policy};

/// Evaluate an ImagePolicy on a tag list: prints the tag Flux would choose.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[command(group(
    clap::ArgGroup::new("policy").required(true).args(["semver", "alphabetical", "numerical"])
))]
pub struct EvalArgs {
    /// Semver policy: a Masterminds range, e.g. '>=1.0.0 <2.0.0', '^1.x', '>=1.0.0-0'.
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Alphabetical policy: asc picks the greatest tag, desc the least.
    #[arg(long, value_name = "asc|desc", num_args = 0..=1, default_missing_value = "asc")]
    pub alphabetical: Option<String>,
    /// Numerical policy: asc picks the greatest number, desc the least.
    #[arg(long, value_name = "asc|desc", num_args = 0..=1, default_missing_value = "asc")]
    pub numerical: Option<String>,
    /// filterTags.pattern: only tags this regex matches (anywhere) are considered.
    #[arg(long, value_name = "RE")]
    pub filter: Option<String>,
    /// filterTags.extract: the value to order, e.g. '$1' or '${ts}'.
    #[arg(long, value_name = "TEMPLATE")]
    pub extract: Option<String>,
    /// Where to read the tags, one per line; '-' is standard input.
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub tags_file: PathBuf,
    /// Show how the tag was chosen: counts at each step and the leading candidates.
    #[arg(long)]
    pub explain: bool,
    /// How many leading candidates --explain shows.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
}

impl EvalArgs {
    /// The policy these flags describe (semver wins over alphabetical over numerical, as in
    /// Flux, though the flags allow only one).
    pub fn policy(&self) -> anyhow::Result<Policy> {
        let choice = if let Some(range) = &self.semver {
            Choice::SemVer {
                range: range.clone(),
            }
        } else if let Some(order) = &self.alphabetical {
            Choice::Alphabetical {
                order: order.parse::<Order>()?,
            }
        } else if let Some(order) = &self.numerical {
            Choice::Numerical {
                order: order.parse::<Order>()?,
            }
        } else {
            anyhow::bail!("given ImagePolicyChoice object is invalid: choose --semver, --alphabetical or --numerical");
        };
        let filter = (self.filter.is_some() || self.extract.is_some()).then(|| FilterTags {
            pattern: self.filter.clone().unwrap_or_default(),
            extract: self.extract.clone().unwrap_or_default(),
        });
        Ok(Policy::new(&choice, filter.as_ref())?)
    }

    fn describe(&self) -> String {
        let mut s = if let Some(r) = &self.semver {
            format!("semver range '{r}'")
        } else if let Some(o) = &self.alphabetical {
            format!("alphabetical {}", o.to_ascii_lowercase())
        } else if let Some(o) = &self.numerical {
            format!("numerical {}", o.to_ascii_lowercase())
        } else {
            String::new()
        };
        if self.filter.is_some() || self.extract.is_some() {
            s.push_str(&format!(
                ", filter '{}'",
                self.filter.as_deref().unwrap_or_default()
            ));
            if let Some(x) = &self.extract {
                s.push_str(&format!(", extract '{x}'"));
            }
        }
        s
    }
}

/// Reads tags, one per line, trimmed, blank lines skipped.
pub fn read_tags(input: impl Read) -> std::io::Result<Vec<String>> {
    let mut tags = Vec::new();
    for line in BufReader::new(input).lines() {
        let line = line?;
        let t = line.trim();
        if !t.is_empty() {
            tags.push(t.to_string());
        }
    }
    Ok(tags)
}

/// Runs `tagline eval`; returns the exit code (0: chosen, 1: no candidate).
pub fn run(args: &EvalArgs, out: &mut dyn Write) -> anyhow::Result<i32> {
    let policy = args.policy()?;
    let tags = if args.tags_file.as_os_str() == "-" {
        read_tags(std::io::stdin().lock()).context("reading tags from standard input")?
    } else {
        let f = std::fs::File::open(&args.tags_file)
            .with_context(|| format!("opening tags file {}", args.tags_file.display()))?;
        read_tags(f).with_context(|| format!("reading tags file {}", args.tags_file.display()))?
    };
    evaluate(args, &policy, &tags, out)
}

/// The part of `run` after the tags are read (tests drive it directly).
pub fn evaluate(
    args: &EvalArgs,
    policy: &Policy,
    tags: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    if args.explain {
        let ex = policy.explain(tags, args.top);
        print_explanation(&args.describe(), &ex, out)?;
        return Ok(match ex.outcome {
            Ok(_) => 0,
            Err(_) => 1,
        });
    }
    match policy.latest(tags) {
        Ok(tag) => {
            writeln!(out, "{tag}")?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("tagline eval: no tag chosen: {e}");
            Ok(1)
        }
    }
}

fn print_explanation(policy: &str, ex: &Explanation, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "policy:   {policy}")?;
    writeln!(out, "seen:     {} tags", ex.seen)?;
    writeln!(
        out,
        "excluded: {} (the filter pattern does not match)",
        ex.excluded
    )?;
    if ex.merged > 0 {
        writeln!(
            out,
            "merged:   {} (another, smaller tag extracts the same value)",
            ex.merged
        )?;
    }
    writeln!(out, "filtered: {} candidates", ex.filtered)?;
    writeln!(
        out,
        "parsed:   {} ({} could not be read)",
        ex.parsed, ex.unparsed
    )?;
    if ex.outside_range > 0 {
        writeln!(
            out,
            "outside:  {} (do not satisfy the range)",
            ex.outside_range
        )?;
    }
    writeln!(out, "eligible: {}", ex.eligible)?;
    if !ex.top.is_empty() {
        writeln!(out, "top {}:", ex.top.len())?;
        let width = ex.top.iter().map(|r| r.tag.len()).max().unwrap_or(0);
        for (i, r) in ex.top.iter().enumerate() {
            if r.value == r.tag {
                writeln!(out, "  {:>3}. {}", i + 1, r.tag)?;
            } else {
                writeln!(
                    out,
                    "  {:>3}. {:<width$}  (value {})",
                    i + 1,
                    r.tag,
                    r.value
                )?;
            }
        }
    }
    match &ex.outcome {
        Ok(tag) => writeln!(out, "chosen:   {tag}"),
        Err(e) => writeln!(out, "no tag:   {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        eval: EvalArgs,
    }

    fn eval(argv: &[&str], tags: &str) -> (i32, String) {
        let cli = Cli::try_parse_from(std::iter::once("eval").chain(argv.iter().copied()))
            .expect("flags parse");
        let policy = cli.eval.policy().expect("valid policy");
        let tags = read_tags(tags.as_bytes()).unwrap();
        let mut out = Vec::new();
        let code = evaluate(&cli.eval, &policy, &tags, &mut out).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn prints_the_chosen_tag() {
        let (code, out) = eval(
            &["--semver", "^1.0.0"],
            "1.0.0\n v1.4.0 \n\n2.0.0\nlatest\n",
        );
        assert_eq!((code, out.as_str()), (0, "v1.4.0\n"));
    }

    #[test]
    fn no_candidate_exits_1_and_prints_nothing() {
        let (code, out) = eval(&["--semver", ">=3"], "1.0.0\n");
        assert_eq!((code, out.as_str()), (1, ""));
    }

    #[test]
    fn explains_counts_and_top_candidates() {
        let (code, out) = eval(
            &[
                "--numerical",
                "--filter",
                r"^main-(?P<ts>\d+)$",
                "--extract",
                "$ts",
                "--explain",
                "--top",
                "2",
            ],
            "main-10\nmain-30\nmain-20\ndev-99\n",
        );
        assert_eq!(code, 0);
        assert!(out.contains("seen:     4 tags"), "{out}");
        assert!(out.contains("excluded: 1 "), "{out}");
        assert!(out.contains("filtered: 3 candidates"), "{out}");
        assert!(
            out.contains("top 2:\n    1. main-30  (value 30)\n    2. main-20  (value 20)\n"),
            "{out}"
        );
        assert!(out.ends_with("chosen:   main-30\n"), "{out}");
    }

    #[test]
    fn explains_a_failure() {
        let (code, out) = eval(&["--semver", "1.x", "--explain"], "2.0.0\nfoo\n");
        assert_eq!(code, 1);
        assert!(out.contains("parsed:   1 (1 could not be read)"), "{out}");
        assert!(out.contains("outside:  1"), "{out}");
        assert!(
            out.contains("no tag:   unable to determine latest version"),
            "{out}"
        );
    }

    #[test]
    fn one_policy_is_required() {
        assert!(Cli::try_parse_from(["eval"]).is_err());
        assert!(Cli::try_parse_from(["eval", "--semver", "1", "--numerical", "asc"]).is_err());
        let cli = Cli::try_parse_from(["eval", "--alphabetical", "sideways"]).unwrap();
        let err = cli.eval.policy().unwrap_err().to_string();
        assert!(
            err.contains("invalid order argument provided: 'SIDEWAYS'"),
            "{err}"
        );
    }

    #[test]
    fn reads_the_tags_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tags.txt");
        std::fs::write(&path, "rel-1606234201\r\nrel-1606364286\nrel-1606334092\n").unwrap();
        let cli = Cli::try_parse_from([
            "eval",
            "--alphabetical",
            "--tags-file",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        assert_eq!(run(&cli.eval, &mut out).unwrap(), 0);
        assert_eq!(String::from_utf8(out).unwrap(), "rel-1606364286\n");
        let missing =
            Cli::try_parse_from(["eval", "--numerical", "--tags-file", "/nonexistent/tags"])
                .unwrap();
        let err = run(&missing.eval, &mut Vec::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("opening tags file /nonexistent/tags"),
            "{err:#}"
        );
    }

    #[test]
    fn invalid_range_is_an_error() {
        let cli = Cli::try_parse_from(["eval", "--semver", ">=1.0 <x1"]).unwrap();
        let err = cli.eval.policy().unwrap_err().to_string();
        assert!(err.contains("at column 8"), "{err}");
    }
}
