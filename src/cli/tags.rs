//! `tagline tags`: list a repository's tags the way an ImageRepository would see them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use regex::Regex;

use crate::api::parse_duration;
use crate::image::ImageName;
use crate::scanner::{self, Credentials, ScanOptions, DEFAULT_EXCLUSION};

#[derive(Debug, clap::Args)]
pub struct TagsArgs {
    /// Repository, as `spec.image` names it (e.g. `ghcr.io/org/app`, `alpine`).
    image: String,
    /// Plain HTTP.
    #[arg(long)]
    insecure: bool,
    /// PEM file with extra CA certificates.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// A Docker config JSON file (`~/.docker/config.json` or a Secret's `.dockerconfigjson`).
    #[arg(long)]
    docker_config: Option<PathBuf>,
    /// Exclusion regexes (repeatable); default `^.*\.sig$` as Flux.
    #[arg(long = "exclude")]
    exclusion: Vec<String>,
    /// Bound on the whole listing.
    #[arg(long, default_value = "1m")]
    timeout: String,
}

pub async fn run(args: &TagsArgs, out: &mut dyn Write) -> anyhow::Result<i32> {
    let image = ImageName::parse(&args.image)?;
    let credentials = match &args.docker_config {
        Some(path) => {
            let json =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Credentials::from_docker_config(&json, &image.registry)?
        }
        None => None,
    };
    let ca_pem = match &args.ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let patterns = if args.exclusion.is_empty() {
        vec![DEFAULT_EXCLUSION.to_string()]
    } else {
        args.exclusion.clone()
    };
    let exclusion = patterns
        .iter()
        .map(|p| Regex::new(p).with_context(|| format!("--exclude '{p}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let timeout: Duration = parse_duration(&args.timeout).map_err(anyhow::Error::msg)?;
    let options = ScanOptions {
        credentials,
        ca_pem,
        insecure: args.insecure,
        timeout,
        exclusion,
        ..ScanOptions::default()
    };
    let result = scanner::scan(&image, &options).await?;
    for tag in &result.tags {
        writeln!(out, "{tag}")?;
    }
    Ok(0)
}
