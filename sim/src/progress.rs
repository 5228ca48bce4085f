//! Progress on a terminal (indicatif): a bar of seeds for sweeps, a counter
//! of candidate runs while shrinking, a bar of the phases of a live run.
//! Silent with `--json` or when stderr is not a terminal, so logs and
//! pipes get only the reports.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a bar redraws at most, and how often a spinner ticks.
const REDRAW_PER_SECOND: u8 = 10;
const TICK_EVERY: Duration = Duration::from_millis(100);

/// True when progress should be drawn: a terminal on stderr and no `--json`.
#[must_use]
pub fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A progress display, or nothing when it is not wanted.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(bar: ProgressBar, enabled: bool, template: &str) -> Progress {
        if enabled {
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(REDRAW_PER_SECOND));
            // The templates are constants of this module, checked by its
            // tests; a bad one would only lose the styling.
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("#>."));
            }
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        Progress { bar }
    }

    /// A sweep of `total` seeds: done, failed, seeds per second, time left.
    #[must_use]
    pub fn seeds(total: u64, enabled: bool) -> Progress {
        Progress::new(ProgressBar::new(total), enabled, SEEDS_TEMPLATE)
    }

    /// Shrinking: candidate runs made, the current smallest failure.
    #[must_use]
    pub fn shrinking(enabled: bool) -> Progress {
        let progress = Progress::new(ProgressBar::no_length(), enabled, SHRINK_TEMPLATE);
        progress.bar.enable_steady_tick(TICK_EVERY);
        progress
    }

    /// A live run of `total` (main and quiet phase), advanced by the clock.
    #[must_use]
    pub fn timed(total: Duration, enabled: bool) -> Progress {
        let millis = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
        let progress = Progress::new(ProgressBar::new(millis), enabled, TIMED_TEMPLATE);
        progress.bar.enable_steady_tick(TICK_EVERY);
        progress
    }

    /// One seed done; `failed` counts it in the message.
    pub fn seed_done(&self, failed: u64) {
        self.bar.inc(1);
        if failed > 0 {
            self.bar.set_message(format!("{failed} failed"));
        }
    }

    /// Sets the position (runs made, milliseconds elapsed).
    pub fn set_position(&self, position: u64) {
        self.bar.set_position(position);
    }

    /// Sets the words after the bar.
    pub fn set_message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// Runs `print` with the bar cleared, so that report lines on stdout
    /// never mix with it.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.bar.suspend(print)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// True when it draws anything.
    #[must_use]
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

const SEEDS_TEMPLATE: &str =
    "[{bar:30}] {pos}/{len} seeds, {per_sec}, {elapsed} (about {eta} left) {msg}";
const SHRINK_TEMPLATE: &str = "{spinner} shrinking: {pos} candidate runs, {elapsed}; {msg}";
const TIMED_TEMPLATE: &str = "{spinner} [{bar:30}] {elapsed}/{duration} {msg}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_valid() {
        for template in [SEEDS_TEMPLATE, SHRINK_TEMPLATE, TIMED_TEMPLATE] {
            assert!(
                ProgressStyle::with_template(template).is_ok(),
                "bad template {template:?}"
            );
        }
    }

    #[test]
    fn json_output_or_no_terminal_draws_nothing() {
        assert!(!wanted(true));
        let hidden = Progress::seeds(10, false);
        assert!(!hidden.is_drawn());
        hidden.seed_done(1);
        assert!(!Progress::timed(Duration::from_secs(1), false).is_drawn());
    }
}
