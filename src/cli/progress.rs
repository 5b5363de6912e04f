//! The progress bar of long interactive runs: drawn on standard error when it is a terminal,
//! never otherwise; log lines written while it shows go above it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::automation::Progress;

/// The bar on screen, if any: log lines are written around it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A progress bar over the objects of one run, removed from the screen when dropped.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for `total` objects when standard error is a terminal; None when it is not (a
    /// pipe, a file, a journal) or there is nothing to count.
    pub fn start(total: u64) -> Option<Bar> {
        if total == 0 || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} objects, {elapsed} {wide_msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bar.clone());
        }
        Some(Bar(bar))
    }

    /// The pipeline's listener that moves the bar: one step per object done, its name as
    /// the message.
    pub fn progress(&self) -> Progress {
        let bar = self.0.clone();
        Progress::new(move |kind, id| {
            bar.set_message(format!("{kind} {id}"));
            bar.inc(1);
        })
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Ok(mut shown) = SHOWN.lock() {
            shown.take();
        }
        self.0.finish_and_clear();
    }
}

/// Standard error for log lines: each event is written whole, above the bar while one
/// shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One log event's bytes, written out when the event is formatted.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.0);
        let write = || {
            let _ = std::io::stderr().lock().write_all(&bytes);
        };
        let shown = SHOWN.lock().ok().and_then(|s| s.clone());
        match shown {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}
