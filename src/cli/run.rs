//! `tagline run`, `tagline plan` and `tagline check`: load the config, drive the pipeline,
//! print one line per object.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::signal::unix::{signal, SignalKind};

use super::{LogFormat, EXIT_FAILED, EXIT_USAGE};
use crate::api::{self, Config};
use crate::automation::{self, Options, Report};
use crate::daemon::{self, Daemon};
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

/// `tagline run`: once, or as a long-running service (see `crate::daemon`).
pub async fn run(
    config_dir: &Path,
    state_dir: Option<&Path>,
    once: bool,
    listen: Option<SocketAddr>,
    log_format: LogFormat,
) -> anyhow::Result<i32> {
    let json = log_format == LogFormat::Json;
    if once {
        let config = match load(config_dir) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        let mut store = open_store(state_dir)?;
        let options = Options {
            cache_dir: state_dir.map(|d| d.join("git")),
            ..Options::default()
        };
        let report = automation::reconcile(&config, &mut store, &options).await;
        print_outcomes(&report);
        if let Err(e) = store.save() {
            eprintln!("tagline: {e}");
            return Ok(EXIT_FAILED);
        }
        return Ok(if report.failed() { EXIT_FAILED } else { 0 });
    }

    let store = open_store(state_dir)?;
    let mut daemon = match Daemon::new(config_dir, store) {
        Ok(d) => d.with_schedules(|config| {
            config
                .automations
                .iter()
                .map(|(id, a)| (id.clone(), a.schedule.clone()))
                .collect()
        }),
        Err(e) => {
            log_line(json, "error", &e.to_string());
            return Ok(EXIT_USAGE);
        }
    };
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            let board = daemon.board();
            Some(tokio::spawn(daemon::http::serve(listener, board, async {
                let _ = http_stopped.await;
            })))
        }
        None => None,
    };

    let code = loop {
        let now = Utc::now();
        if let Some(result) = daemon.tick(now).await {
            match result {
                Ok(report) if json => print_outcomes_json(&report, now),
                Ok(report) => print_outcomes(&report),
                Err(e) => log_line(json, "error", &e.to_string()),
            }
        }
        // Wait for the next pass, a config change (polled), or a signal. A signal that
        // arrives during a pass waits here, so a pass in flight always finishes.
        let until_due = daemon
            .next_due()
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .unwrap_or(Duration::ZERO);
        let wait = until_due.min(daemon::CONFIG_POLL);
        let reload = tokio::select! {
            _ = tokio::time::sleep(wait) => daemon.config_changed(),
            _ = hangup.recv() => true,
            _ = terminate.recv() => break 0,
            _ = interrupt.recv() => break 0,
        };
        if reload {
            match daemon.reload() {
                Ok(()) => log_line(
                    json,
                    "info",
                    &format!("config reloaded from {}", config_dir.display()),
                ),
                Err(e) => log_line(json, "error", &format!("{e}; keeping the last good config")),
            }
        }
    };
    let _ = stop_http.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(code)
}

/// One service log line: `tagline: <message>`, or a JSON object.
fn log_line(json: bool, level: &str, message: &str) {
    if json {
        let line = serde_json::json!({
            "time": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": level,
            "message": message,
        });
        eprintln!("{line}");
    } else {
        eprintln!("tagline: {message}");
    }
}

/// `print_outcomes` as JSON lines, one object per outcome.
fn print_outcomes_json(report: &Report, at: chrono::DateTime<Utc>) {
    for o in &report.outcomes {
        let (result, message) = match &o.status {
            automation::Status::Ok(m) => ("ok", m),
            automation::Status::Skipped(m) => ("skipped", m),
            automation::Status::Failed(m) => ("failed", m),
        };
        let line = serde_json::json!({
            "time": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": if o.failed() { "error" } else { "info" },
            "kind": o.kind.to_string(),
            "namespace": o.id.namespace,
            "name": o.id.name,
            "result": result,
            "message": message,
            "warnings": o.warnings,
        });
        eprintln!("{line}");
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
