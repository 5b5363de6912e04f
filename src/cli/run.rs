//! `tagline run`, `tagline plan` and `tagline check`: load the config, drive the pipeline,
//! print one line per object.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::api::{self, Config};
use crate::automation::{self, Options, Report};
use crate::store::Store;

fn load(dir: &Path) -> Result<Config, i32> {
    api::load_dir(dir).map_err(|e| {
        for problem in &e.problems {
            eprintln!("tagline: config: {problem}");
        }
        EXIT_USAGE
    })
}

fn open_store(state_dir: Option<&Path>) -> anyhow::Result<Store> {
    match state_dir {
        Some(dir) => Store::open(dir).context("opening the state directory"),
        None => Ok(Store::in_memory()),
    }
}

fn print_outcomes(report: &Report) {
    for outcome in &report.outcomes {
        eprintln!("{outcome}");
        for w in &outcome.warnings {
            eprintln!("  warning: {w}");
        }
    }
}

/// `tagline run`: once, or on a loop at the shortest interval.
pub async fn run(config_dir: &Path, state_dir: Option<&Path>, once: bool) -> anyhow::Result<i32> {
    let config = match load(config_dir) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let mut store = open_store(state_dir)?;
    loop {
        let report = automation::reconcile(&config, &mut store, &Options::default()).await;
        print_outcomes(&report);
        if let Err(e) = store.save() {
            eprintln!("tagline: {e}");
            return Ok(EXIT_FAILED);
        }
        if once {
            return Ok(if report.failed() { EXIT_FAILED } else { 0 });
        }
        let interval = config
            .repositories
            .values()
            .map(|r| r.interval)
            .chain(config.automations.values().map(|a| a.interval))
            .min()
            .unwrap_or(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

/// `tagline plan`: the diff `run --once` would commit.
pub async fn plan(
    config_dir: &Path,
    state_dir: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let config = match load(config_dir) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let mut store = open_store(state_dir)?;
    let options = Options {
        dry_run: true,
        ..Options::default()
    };
    let report = automation::reconcile(&config, &mut store, &options).await;
    print_outcomes(&report);
    for (id, update) in &report.updates {
        writeln!(out, "# ImageUpdateAutomation {id}")?;
        out.write_all(crate::writer::render_plan(update).as_bytes())?;
    }
    Ok(if report.failed() { EXIT_FAILED } else { 0 })
}

/// `tagline check`: load and list.
pub fn check(args: &super::ConfigArg, out: &mut dyn Write) -> anyhow::Result<i32> {
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    for r in config.repositories.values() {
        writeln!(out, "ImageRepository {} {} ({})", r.id, r.image, r.origin)?;
    }
    for p in config.policies.values() {
        writeln!(
            out,
            "ImagePolicy {} -> ImageRepository {} ({})",
            p.id, p.repository, p.origin
        )?;
    }
    for a in config.automations.values() {
        writeln!(
            out,
            "ImageUpdateAutomation {} -> GitRepository {} ({})",
            a.id, a.source, a.origin
        )?;
    }
    for g in config.git_repositories.values() {
        writeln!(out, "GitRepository {} {} ({})", g.id, g.url, g.origin)?;
    }
    Ok(0)
}
