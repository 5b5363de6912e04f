//! `tagline status`: a row per image (current value in Git, latest allowed, newest tag seen,
//! last and next scan, last error), from a config folder and its state, or from a running
//! service's `/api/v1/status`; `-o json` prints the whole status document.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::EXIT_USAGE;
use crate::api;
use crate::status::{Document, ImageRow};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Folder of Flux objects (YAML files, searched recursively).
    #[arg(
        long,
        short = 'c',
        required_unless_present = "server",
        conflicts_with = "server"
    )]
    config: Option<PathBuf>,
    /// Where the service keeps its state (without it, nothing has run yet).
    #[arg(long, requires = "config")]
    state_dir: Option<PathBuf>,
    /// A running service's base URL, e.g. http://127.0.0.1:9090; reads its /api/v1/status.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// A table for humans, or the status document as JSON.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

/// The table's header cells.
const HEADER: [&str; 9] = [
    "POLICY",
    "IMAGE",
    "IN GIT",
    "LATEST",
    "NEWEST",
    "LAST SCAN",
    "NEXT SCAN",
    "RATE LIMIT",
    "LAST ERROR",
];

/// `remaining/limit` of a registry's quota (`remaining` alone when it sends no limit).
fn quota_text(q: &crate::store::Quota) -> Option<String> {
    match (q.remaining, q.limit) {
        (Some(r), Some(l)) => Some(format!("{r}/{l}")),
        (Some(r), None) => Some(r.to_string()),
        (None, Some(l)) => Some(format!("?/{l}")),
        (None, None) => None,
    }
}

/// How many hex digits of a digest the table shows (the JSON has them all).
const DIGEST_HEX: usize = 12;

/// `tag@sha256:<64 hex>` → `tag@sha256:<12 hex>`.
fn short_digest(value: &str) -> String {
    match value.split_once("@sha256:") {
        Some((tag, hex)) => format!("{tag}@sha256:{}", &hex[..hex.len().min(DIGEST_HEX)]),
        None => value.to_string(),
    }
}

/// Renders the image rows as a table: one line per image, columns padded to their widest
/// cell, `-` for what is not known yet, digests shortened; the last error is the last
/// column, unpadded, on one line.
pub fn render_table(rows: &[ImageRow]) -> String {
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let or_dash = |v: &Option<String>| v.as_deref().map_or("-".into(), short_digest);
            [
                r.policy.clone(),
                r.image.clone(),
                or_dash(&r.in_git),
                or_dash(&r.latest),
                or_dash(&r.newest),
                or_dash(&r.last_scan),
                or_dash(&r.next_scan),
                or_dash(&r.rate_limit.as_ref().and_then(quota_text)),
                or_dash(&r.last_error).replace('\n', " "),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(String::from);
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

async fn fetch(server: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/api/v1/status", server.trim_end_matches('/'));
    let tls = crate::scanner::tls_client_config(None, None, true).map_err(anyhow::Error::msg)?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .context("building the HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("reading {url}"))?
        .error_for_status()
        .with_context(|| format!("reading {url}"))?;
    response
        .json()
        .await
        .with_context(|| format!("{url}: not a status document"))
}

/// Runs `tagline status`.
pub async fn run(args: &StatusArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let value = match (&args.server, &args.config) {
        (Some(server), _) => fetch(server).await?,
        (None, Some(dir)) => {
            let config = match api::load_dir(dir) {
                Ok(c) => c,
                Err(e) => {
                    for problem in &e.problems {
                        eprintln!("tagline: config: {problem}");
                    }
                    return Ok(EXIT_USAGE);
                }
            };
            let store = match &args.state_dir {
                Some(d) if !d.is_dir() => {
                    anyhow::bail!("state directory {} does not exist", d.display())
                }
                Some(d) => Store::open(d).context("opening the state directory")?,
                None => Store::in_memory(),
            };
            serde_json::to_value(crate::status::document(&config, &store))?
        }
        (None, None) => anyhow::bail!("give --config or --server"),
    };
    match args.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &value)?;
            writeln!(out)?;
        }
        Output::Table => {
            let document: Document =
                serde_json::from_value(value).context("the status document's images")?;
            out.write_all(render_table(&document.images).as_bytes())?;
        }
    }
    Ok(0)
}
