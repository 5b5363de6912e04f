//! Command line: argument parsing and human output; the only code that prints to stdout.

pub mod eval;
mod progress;
mod run;
pub mod status;
mod tags;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Keeps container image references in Git up to date with what registries publish.
#[derive(Debug, Parser)]
#[command(name = "tagline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reconcile the Flux objects in a folder: scan, pick, update, commit, push.
    Run(RunArgs),
    /// Show, as a diff, what `run --once` would commit; pushes nothing.
    Plan(PlanArgs),
    /// Check a config folder and list the objects it holds.
    Check(ConfigArg),
    /// List a repository's tags (after the exclusion list), newest byte-wise first.
    Tags(tags::TagsArgs),
    /// Evaluate a policy on a tag list (a file or standard input) and print the chosen tag.
    Eval(eval::EvalArgs),
    /// Show each image's state: value in Git, latest allowed, newest seen, scans, last error.
    Status(status::StatusArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Folder of Flux objects (YAML files, searched recursively).
    #[arg(long, short = 'c')]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Reconcile every object once and exit: 0 when all succeeded, 1 when any failed.
    #[arg(long)]
    once: bool,
    /// Where state (tag lists, latest references) persists across runs.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Serve /healthz, /readyz, /metrics and /api/v1/status on this address (service only).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// How the service writes its log lines (outcomes, reloads) to standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Scans in flight at once against one registry host, across all repositories.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    registry_max_in_flight: u32,
    /// Requests started per second against one registry host (0: unpaced).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    registry_requests_per_second: f64,
}

/// `--log-format`: lines for humans, or one JSON object per line for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Where state persists (read; plan records scans and latest references like run does).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// Exit status when the config or the command line is wrong.
pub const EXIT_USAGE: i32 = 2;
/// Exit status when any object failed.
pub const EXIT_FAILED: i32 = 1;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    init_logging(matches!(&cli.command, Command::Run(a) if a.log_format == LogFormat::Json));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tagline: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Run(args) => {
                run::run(
                    &args.config.config,
                    args.state_dir.as_deref(),
                    args.once,
                    args.listen,
                    args.log_format,
                    crate::automation::Options {
                        manners: crate::scanner::Manners {
                            max_in_flight: args.registry_max_in_flight as usize,
                            requests_per_second: args.registry_requests_per_second,
                        },
                        ..crate::automation::Options::default()
                    },
                )
                .await
            }
            Command::Plan(args) => {
                run::plan(&args.config.config, args.state_dir.as_deref(), &mut out).await
            }
            Command::Check(args) => run::check(args, &mut out),
            Command::Tags(args) => tags::run(args, &mut out).await,
            Command::Eval(args) => eval::run(args, &mut out),
            Command::Status(args) => status::run(args, &mut out).await,
        }
    });
    let _ = out.flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tagline: {e:#}");
            EXIT_USAGE
        }
    }
}

/// The directive that keeps `automation::object_span` enabled under any `TAGLINE_LOG`: a
/// line logged inside a disabled span would lose the object it names. Nothing but that span
/// has this target, and a span is never printed itself, so it lets no line through.
const OBJECT_SPAN_DIRECTIVE: &str = "tagline::object=error";

/// The log filter: `TAGLINE_LOG` (`EnvFilter` syntax, `warn` when unset or unreadable), with
/// the object span always enabled.
fn log_filter(spec: Option<&str>) -> tracing_subscriber::EnvFilter {
    let filter = spec
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    match OBJECT_SPAN_DIRECTIVE.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

fn init_logging(json: bool) {
    let filter = log_filter(std::env::var("TAGLINE_LOG").ok().as_deref());
    // Colours only for a person at a terminal, never into a log file or a journal.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Span fields as JSON, so that the formatters can read back the object a span names.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(progress::Stderr)
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new());
    // JSON lines from anywhere in the process (webhooks, notifications, scanner, git) take
    // the shape of the run's own: `time`, `level`, then the event's fields and those of the
    // object it was logged for (`kind`, `namespace`, `name`), flat.
    let _ = if json {
        builder
            .event_format(run::lines::Lines { json: true })
            .try_init()
    } else {
        builder.event_format(run::lines::Human).try_init()
    };
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    use super::log_filter;
    use crate::api::{Kind, NamespacedName};

    #[test]
    fn the_object_span_is_enabled_whatever_the_filter_and_lets_no_line_through() {
        let id = NamespacedName::new("default", "app");
        for spec in [
            None,
            Some("tagline::scanner=debug"),
            Some("tagline::git=info"),
            Some("off"),
            Some("tagline::object=off"),
            Some("not a [filter"),
        ] {
            let subscriber = tracing_subscriber::registry().with(log_filter(spec));
            tracing::subscriber::with_default(subscriber, || {
                let span = crate::automation::object_span(Kind::ImageRepository, &id);
                assert!(!span.is_disabled(), "{spec:?}");
                let _inside = span.enter();
                // The lines the user's filter keeps or drops, inside the span as outside.
                let scanner_debug =
                    tracing::enabled!(target: "tagline::scanner::client", Level::DEBUG);
                assert_eq!(
                    scanner_debug,
                    spec == Some("tagline::scanner=debug"),
                    "{spec:?}"
                );
                let automation_info = tracing::enabled!(target: "tagline::automation", Level::INFO);
                assert!(!automation_info, "{spec:?}");
                let automation_warn = tracing::enabled!(target: "tagline::automation", Level::WARN);
                assert_eq!(
                    automation_warn,
                    matches!(spec, None | Some("not a [filter")),
                    "{spec:?}"
                );
                let object_line = tracing::enabled!(target: "tagline::object", Level::ERROR);
                assert!(object_line, "the directive's only target: {spec:?}");
            });
        }
    }
}
