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

/// `tagline run`'s own log lines (outcomes, reloads, errors) go through `tracing`, to a
/// dispatcher of their own: they are written whatever `TAGLINE_LOG` filters, as today's
/// human lines (`<Kind> <ns>/<name>: <outcome>`, `tagline: <message>`) or as one JSON object
/// per line (`time`, `level`, and the event's fields: `kind`, `namespace`, `name`, `result`,
/// `message`, `warnings`; a service line names its object with `kind`, `namespace`, `name`
/// and `file` where they apply, and leaves out those that do not).
///
/// The same module formats the lines logged from anywhere else in the process (scanner, git,
/// notifications): [`Lines`] with `json` for `--log-format json`, [`Human`] otherwise. Both
/// take the object a line is about from the `tracing` spans it was logged in (the pipeline
/// enters one per object, with `kind`, `namespace`, `name`), unless the event names it itself.
pub(super) mod lines {
    use std::fmt;
    use std::sync::OnceLock;

    use chrono::Utc;
    use tracing::field::{Field, Visit};
    use tracing::{Dispatch, Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
    use tracing_subscriber::registry::LookupSpan;

    /// Formats events as the run's log lines.
    pub struct Lines {
        pub json: bool,
    }

    #[derive(Default)]
    struct Fields(serde_json::Map<String, serde_json::Value>);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            let v = if field.name() == "warnings" {
                serde_json::from_str(value).unwrap_or_else(|_| value.into())
            } else {
                value.into()
            };
            self.0.insert(field.name().to_string(), v);
        }

        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}").into());
        }
    }

    impl Fields {
        fn text(&self, key: &str) -> &str {
            self.0.get(key).and_then(|v| v.as_str()).unwrap_or_default()
        }

        /// Adds the fields of the tagline spans `event` was logged in (outermost first, an
        /// inner span's value winning), except those the event itself gives a value.
        fn add_spans<S, N>(&mut self, ctx: &FmtContext<'_, S, N>)
        where
            S: Subscriber + for<'a> LookupSpan<'a>,
            N: for<'a> FormatFields<'a> + 'static,
        {
            let Some(scope) = ctx.event_scope() else {
                return;
            };
            let mut from_spans = serde_json::Map::new();
            for span in scope.from_root() {
                if !span.metadata().target().starts_with("tagline") {
                    continue;
                }
                let extensions = span.extensions();
                let Some(formatted) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                // Span fields are recorded by `JsonFields`: one JSON object per span.
                if let Ok(serde_json::Value::Object(fields)) =
                    serde_json::from_str::<serde_json::Value>(&formatted.fields)
                {
                    from_spans.extend(fields);
                }
            }
            for (key, value) in from_spans {
                let value = match value {
                    serde_json::Value::String(_) => value,
                    other => other.to_string().into(),
                };
                let empty = self.0.get(&key).is_none_or(|v| v == "");
                if empty {
                    self.0.insert(key, value);
                }
            }
        }

        /// `Kind namespace/name` of the object a line is about, when it names one.
        fn object(&self) -> Option<String> {
            let (kind, namespace, name) =
                (self.text("kind"), self.text("namespace"), self.text("name"));
            match (kind, namespace, name) {
                ("", _, _) | (_, _, "") => None,
                (kind, "", name) => Some(format!("{kind} {name}")),
                (kind, namespace, name) => Some(format!("{kind} {namespace}/{name}")),
            }
        }
    }

    fn now() -> String {
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    impl<S, N> FormatEvent<S, N> for Lines
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut w: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let mut fields = Fields::default();
            event.record(&mut fields);
            if self.json {
                fields.add_spans(ctx);
                let mut line = serde_json::Map::new();
                line.insert("time".into(), now().into());
                line.insert(
                    "level".into(),
                    event.metadata().level().as_str().to_lowercase().into(),
                );
                // A field a line has no value for is left out.
                line.extend(fields.0.into_iter().filter(|(_, v)| v != ""));
                return writeln!(w, "{}", serde_json::Value::Object(line));
            }
            if fields.0.contains_key("result") {
                let word = match fields.text("result") {
                    "skipped" => "skipped: ",
                    "failed" => "failed: ",
                    _ => "",
                };
                writeln!(
                    w,
                    "{} {}/{}: {word}{}",
                    fields.text("kind"),
                    fields.text("namespace"),
                    fields.text("name"),
                    fields.text("message")
                )?;
                if let Some(warnings) = fields.0.get("warnings").and_then(|v| v.as_array()) {
                    for warning in warnings {
                        writeln!(w, "  warning: {}", warning.as_str().unwrap_or_default())?;
                    }
                }
                Ok(())
            } else {
                writeln!(w, "tagline: {}", fields.text("message"))
            }
        }
    }

    /// The human format of the lines logged from anywhere in the process: time, level,
    /// target, then `Kind namespace/name: ` when the line is about an object, the message,
    /// and the other fields as `key=value`.
    pub struct Human;

    impl<S, N> FormatEvent<S, N> for Human
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut w: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let mut fields = Fields::default();
            event.record(&mut fields);
            fields.add_spans(ctx);
            let meta = event.metadata();
            let level = meta.level();
            if w.has_ansi_escapes() {
                let colour = match *level {
                    tracing::Level::ERROR => "31",
                    tracing::Level::WARN => "33",
                    tracing::Level::INFO => "32",
                    tracing::Level::DEBUG => "34",
                    tracing::Level::TRACE => "35",
                };
                write!(w, "{} \x1b[{colour}m{level:>5}\x1b[0m ", now())?;
            } else {
                write!(w, "{} {level:>5} ", now())?;
            }
            write!(w, "{}: ", meta.target())?;
            if let Some(object) = fields.object() {
                write!(w, "{object}: ")?;
            }
            write!(w, "{}", fields.text("message"))?;
            for (key, value) in &fields.0 {
                if matches!(key.as_str(), "message" | "kind" | "namespace" | "name") {
                    continue;
                }
                match value {
                    serde_json::Value::String(text) => write!(w, " {key}={text}")?,
                    other => write!(w, " {key}={other}")?,
                }
            }
            writeln!(w)
        }
    }

    /// The dispatcher for one format (built once).
    pub fn dispatch(json: bool) -> &'static Dispatch {
        static TEXT: OnceLock<Dispatch> = OnceLock::new();
        static JSON: OnceLock<Dispatch> = OnceLock::new();
        let cell = if json { &JSON } else { &TEXT };
        cell.get_or_init(|| {
            Dispatch::new(
                tracing_subscriber::fmt()
                    .with_writer(super::super::progress::Stderr)
                    .with_max_level(tracing::Level::INFO)
                    .event_format(Lines { json })
                    .finish(),
            )
        })
    }
}

/// Writes each outcome of `report` as a log line: human (`json` false) or JSON.
fn log_outcomes(json: bool, report: &Report) {
    tracing::dispatcher::with_default(lines::dispatch(json), || {
        for o in &report.outcomes {
            let (result, message) = match &o.status {
                automation::Status::Ok(m) => ("ok", m),
                automation::Status::Skipped(m) => ("skipped", m),
                automation::Status::Failed(m) => ("failed", m),
            };
            let warnings = serde_json::to_string(&o.warnings).unwrap_or_default();
            let kind = o.kind.to_string();
            let (namespace, name) = (o.id.namespace.as_str(), o.id.name.as_str());
            if o.failed() {
                tracing::error!(
                    kind,
                    namespace,
                    name,
                    result,
                    message = message.as_str(),
                    warnings
                );
            } else {
                tracing::info!(
                    kind,
                    namespace,
                    name,
                    result,
                    message = message.as_str(),
                    warnings
                );
            }
        }
    });
}

fn print_outcomes(report: &Report) {
    log_outcomes(false, report);
}

/// `tagline run`: once, or as a long-running service (see `crate::daemon`).
pub async fn run(
    config_dir: &Path,
    state_dir: Option<&Path>,
    once: bool,
    listen: Option<SocketAddr>,
    log_format: LogFormat,
    base: Options,
) -> anyhow::Result<i32> {
    let json = log_format == LogFormat::Json;
    // One clone per Git remote kept between runs, when there is a state directory.
    let base = Options {
        cache_dir: state_dir.map(|d| d.join("git")),
        ..base
    };
    if once {
        let config = match api::load_dir(config_dir) {
            Ok(c) => c,
            Err(e) => {
                for problem in &e.problems {
                    if json {
                        log_line(
                            json,
                            "error",
                            &About::problem(problem),
                            &problem.to_string(),
                        );
                    } else {
                        eprintln!("tagline: config: {problem}");
                    }
                }
                return Ok(EXIT_USAGE);
            }
        };
        let mut store = open_store(state_dir)?;
        // A person at a terminal sees the run move; a pipe or a log file gets lines only.
        let total = config.repositories.len() + config.policies.len() + config.automations.len();
        let bar = (!json)
            .then(|| super::progress::Bar::start(total as u64))
            .flatten();
        let options = Options {
            progress: bar.as_ref().map(super::progress::Bar::progress),
            ..base
        };
        let report = automation::reconcile(&config, &mut store, &options).await;
        drop(bar);
        log_outcomes(json, &report);
        let deliveries =
            crate::notify::Notifier::new().prepare_stored(&config, &report, Utc::now(), &mut store);
        for e in crate::notify::deliver_all(deliveries).await {
            log_notify_error(json, &e);
        }
        if let Err(e) = store.save() {
            let about = state_dir.map(About::file).unwrap_or_default();
            log_line(json, "error", &about, &e.to_string());
            return Ok(EXIT_FAILED);
        }
        return Ok(if report.failed() { EXIT_FAILED } else { 0 });
    }

    let store = open_store(state_dir)?;
    let mut daemon = match Daemon::new(config_dir, store) {
        Ok(d) => d
            .with_schedules(|config| {
                config
                    .automations
                    .iter()
                    .map(|(id, a)| (id.clone(), a.schedule.clone()))
                    .collect()
            })
            .with_options(base),
        Err(daemon::DaemonError::LoadConfig { dir, problems }) => {
            log_problems(json, &dir, &problems, "");
            return Ok(EXIT_USAGE);
        }
        Err(e) => {
            log_line(json, "error", &About::file(config_dir), &e.to_string());
            return Ok(EXIT_USAGE);
        }
    };
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let webhooks = daemon::hook::Webhooks::new(daemon.config());
    let mut receivers = webhooks.statuses();
    let server = match listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            let board = daemon.board();
            log_receivers(json, &receivers);
            Some(tokio::spawn(daemon::http::serve_with_hooks(
                listener,
                board,
                webhooks.clone(),
                async {
                    let _ = http_stopped.await;
                },
            )))
        }
        None => None,
    };

    let code = loop {
        let now = Utc::now();
        if let Some(result) = daemon.tick(now).await {
            match result {
                Ok(report) if json => print_outcomes_json(&report, now),
                Ok(report) => print_outcomes(&report),
                Err(e) => {
                    let about = state_dir.map(About::file).unwrap_or_default();
                    log_line(json, "error", &about, &e.to_string());
                }
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
            ids = webhooks.requested() => {
                // The pass this asks for runs at once: `trigger` makes it due now.
                let unknown = daemon.trigger(&ids);
                for id in ids.iter().filter(|id| !unknown.contains(id)) {
                    let message = format!("webhook: scanning ImageRepository {id} now");
                    log_line(json, "info", &About::object("ImageRepository", id), &message);
                }
                for id in unknown {
                    let message = format!("webhook: ImageRepository {id} is not in the config");
                    log_line(json, "warn", &About::object("ImageRepository", &id), &message);
                }
                false
            }
            _ = terminate.recv() => break 0,
            _ = interrupt.recv() => break 0,
        };
        if reload {
            match daemon.reload() {
                Ok(()) => {
                    log_line(
                        json,
                        "info",
                        &About::file(config_dir),
                        &format!("config reloaded from {}", config_dir.display()),
                    );
                    webhooks.update(daemon.config());
                    let now_serving = webhooks.statuses();
                    if listen.is_some() && now_serving != receivers {
                        log_receivers(json, &now_serving);
                    }
                    receivers = now_serving;
                }
                Err(daemon::DaemonError::LoadConfig { dir, problems }) => {
                    log_problems(json, &dir, &problems, "; keeping the last good config");
                }
                Err(e) => log_line(
                    json,
                    "error",
                    &About::file(config_dir),
                    &format!("{e}; keeping the last good config"),
                ),
            }
        }
    };
    let _ = stop_http.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(code)
}

/// One line per Receiver: its webhook path (Flux's `status.webhookPath`), or why it has none.
fn log_receivers(json: bool, receivers: &[daemon::hook::ReceiverStatus]) {
    for r in receivers {
        let about = About::object("Receiver", &r.id);
        match &r.webhook_path {
            Some(path) if r.ready => log_line(
                json,
                "info",
                &about,
                &format!("Receiver {}: webhook path {path}", r.id),
            ),
            Some(path) => log_line(
                json,
                "warn",
                &about,
                &format!(
                    "Receiver {}: webhook path {path}, not ready: {}",
                    r.id, r.message
                ),
            ),
            None => log_line(
                json,
                "warn",
                &about,
                &format!("Receiver {}: no webhook path: {}", r.id, r.message),
            ),
        }
        for why in &r.ignored {
            log_line(json, "info", &about, &format!("Receiver {}: {why}", r.id));
        }
    }
}

/// What a service log line is about, as its structured fields: `kind`, `namespace`, `name`
/// of an object, and the `file` (or folder) concerned; empty ones are left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct About {
    kind: String,
    namespace: String,
    name: String,
    file: String,
}

impl About {
    fn object(kind: &str, id: &crate::api::NamespacedName) -> About {
        About {
            kind: kind.to_string(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            ..About::default()
        }
    }

    fn file(path: &Path) -> About {
        About {
            file: path.display().to_string(),
            ..About::default()
        }
    }

    /// A config problem: its file, and its object when the loader named one
    /// (`Kind namespace/name`).
    fn problem(problem: &crate::api::Problem) -> About {
        let mut about = About::file(&problem.file);
        if let Some((kind, id)) = problem.object.as_deref().and_then(|o| o.split_once(' ')) {
            about.kind = kind.to_string();
            match id.split_once('/') {
                Some((namespace, name)) => {
                    about.namespace = namespace.to_string();
                    about.name = name.to_string();
                }
                None => about.name = id.to_string(),
            }
        }
        about
    }
}

/// One service log line: `tagline: <message>`, or a JSON object with `about`'s fields.
fn log_line(json: bool, level: &str, about: &About, message: &str) {
    let (kind, namespace, name, file) = (
        about.kind.as_str(),
        about.namespace.as_str(),
        about.name.as_str(),
        about.file.as_str(),
    );
    tracing::dispatcher::with_default(lines::dispatch(json), || match level {
        "error" => tracing::error!(kind, namespace, name, file, message),
        "warn" => tracing::warn!(kind, namespace, name, file, message),
        _ => tracing::info!(kind, namespace, name, file, message),
    });
}

/// The lines for a config folder that did not load: one per problem, each naming its file
/// and object, with `suffix` after the problem.
fn log_problems(json: bool, dir: &Path, problems: &[crate::api::Problem], suffix: &str) {
    for problem in problems {
        let message = format!(
            "loading the config folder {}: {problem}{suffix}",
            dir.display()
        );
        log_line(json, "error", &About::problem(problem), &message);
    }
}

/// The line for a notification that could not be sent, naming its Provider (or Alert).
fn log_notify_error(json: bool, e: &crate::notify::NotifyError) {
    let (kind, id) = e.object();
    let message = format!("notification not sent: {e}");
    log_line(json, "error", &About::object(kind, id), &message);
}

/// `print_outcomes` as JSON lines, one object per outcome.
fn print_outcomes_json(report: &Report, _at: chrono::DateTime<Utc>) {
    log_outcomes(true, report);
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
    for r in config.receivers.values() {
        writeln!(out, "Receiver {} {} ({})", r.id, r.receiver_type, r.origin)?;
    }
    for p in config.providers.values() {
        writeln!(
            out,
            "Provider {} {} ({})",
            p.id,
            p.provider_type.as_str(),
            p.origin
        )?;
    }
    for a in config.alerts.values() {
        writeln!(
            out,
            "Alert {} -> Provider {} ({})",
            a.id, a.provider, a.origin
        )?;
    }
    Ok(0)
}
