//! Progress of `neqkin run` on stderr: an indicatif bar on a terminal (points done / total,
//! failures, elapsed time, ETA), plain lines at most every [`LINE_INTERVAL`] when stderr is
//! not a terminal and `--progress` was given (batch jobs, CI logs), nothing otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::run::schedule::{BatchReport, SweepProgress, SweepSummary};

/// Shortest time between two plain progress lines (the first batch and the end are
/// always reported).
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown.
enum Mode {
    Bar(indicatif::ProgressBar),
    Lines { last: Mutex<Option<Instant>> },
    Silent,
}

/// The CLI's reporter (also the run layer's default when the caller gives none).
pub struct TerminalProgress {
    mode: Mode,
    started: Instant,
}

impl TerminalProgress {
    /// A bar when stderr is a terminal; plain lines when it is not and `forced`; else silent.
    pub fn new(forced: bool) -> TerminalProgress {
        let mode = if std::io::stderr().is_terminal() {
            Mode::Bar(indicatif::ProgressBar::hidden())
        } else if forced {
            Mode::Lines { last: Mutex::new(None) }
        } else {
            Mode::Silent
        };
        TerminalProgress { mode, started: Instant::now() }
    }

    /// Plain lines whatever stderr is (tests, logs).
    pub fn lines() -> TerminalProgress {
        TerminalProgress { mode: Mode::Lines { last: Mutex::new(None) }, started: Instant::now() }
    }
}

/// `1h 02m`, `3m 05s`, `12s`.
pub fn fmt_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// One progress line: done / total, failures, elapsed, ETA from the mean rate so far.
pub fn progress_line(r: &BatchReport, elapsed_s: f64) -> String {
    let pct = 100.0 * r.points_done as f64 / r.points_to_run.max(1) as f64;
    let remaining = r.points_to_run.saturating_sub(r.points_done);
    let eta = if r.points_done == 0 {
        "?".to_string()
    } else {
        fmt_duration(elapsed_s / r.points_done as f64 * remaining as f64)
    };
    let mut line = format!(
        "neqkin: {}/{} points ({pct:.1} %), {} failed, {} elapsed, ETA {eta}",
        r.points_done,
        r.points_to_run,
        r.points_failed,
        fmt_duration(elapsed_s)
    );
    if let Some(e) = &r.batch_error {
        line.push_str(&format!("; last batch failed: {e}"));
    }
    line
}

impl SweepProgress for TerminalProgress {
    fn start(&self, points_to_run: usize, points_skipped: usize) {
        match &self.mode {
            Mode::Bar(bar) => {
                // Style first, then the terminal: the first draw already has the template.
                // Under 80 columns, so a narrow terminal does not wrap (and re-draw) it.
                bar.set_length(points_to_run as u64);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:28.cyan/blue}] {pos}/{len} points, {msg}, ETA {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message("0 failed");
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                if points_skipped > 0 {
                    bar.println(format!("resuming: {points_skipped} points already done"));
                }
            }
            Mode::Lines { .. } => {
                let skipped =
                    if points_skipped > 0 { format!(" ({points_skipped} already done)") } else { String::new() };
                eprintln!("neqkin: {points_to_run} points to run{skipped}");
            }
            Mode::Silent => {}
        }
    }

    fn batch_done(&self, r: &BatchReport) {
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_position(r.points_done as u64);
                bar.set_message(format!("{} failed", r.points_failed));
                if let Some(e) = &r.batch_error {
                    bar.println(format!("batch failed: {e}"));
                }
            }
            Mode::Lines { last } => {
                let now = Instant::now();
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                let due = last.is_none_or(|t| now.duration_since(t) >= LINE_INTERVAL);
                if due || r.batch_error.is_some() || r.points_done == r.points_to_run {
                    eprintln!("{}", progress_line(r, self.started.elapsed().as_secs_f64()));
                    *last = Some(now);
                }
            }
            Mode::Silent => {}
        }
    }

    fn finish(&self, _summary: &SweepSummary) {
        // The bar goes: the CLI's summary line (points run, failed) takes its place, and
        // nothing is left half-drawn on the line the next output starts on.
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_failures_and_extrapolates_the_eta() {
        let r = BatchReport {
            points_done: 25,
            points_to_run: 100,
            points_failed: 3,
            batch_points: 25,
            batch_failed: 3,
            batch_wall_s: 10.0,
            batch_error: None,
        };
        // 25 points in 30 s: the other 75 take 90 s.
        assert_eq!(progress_line(&r, 30.0), "neqkin: 25/100 points (25.0 %), 3 failed, 30s elapsed, ETA 1m 30s");
        assert_eq!(fmt_duration(3725.0), "1h 02m");
    }
}
