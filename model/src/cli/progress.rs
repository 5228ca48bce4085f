//! The check's progress on a terminal (indicatif): states, states/s, depth
//! and elapsed time, redrawn on standard error while the checker runs.

use std::io::IsTerminal;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use atmostonce_model::Progress;

/// A `--progress` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Draw it when standard error is a terminal (never into a pipe or a
    /// file, so logs and parsed output stay clean).
    Auto,
    /// Never draw it.
    Never,
}

/// The progress line: a spinner and [`describe`]'s words.
const TEMPLATE: &str = "{spinner} checking: {msg}";

/// How many times a second the progress line may be redrawn.
const REDRAWS_PER_SECOND: u8 = 10;

/// The progress line while a check runs; hidden unless it is drawn on a
/// terminal.
pub struct CheckProgress {
    bar: ProgressBar,
}

impl CheckProgress {
    /// A progress line for `mode`: drawn on standard error only when it is a
    /// terminal and `mode` allows it.
    pub fn new(mode: ProgressMode) -> CheckProgress {
        let shown = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        let target = if shown {
            ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        // The template is a literal checked by this module's test; a bad
        // one would fall back to the default style, not fail the check.
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style);
        }
        CheckProgress { bar }
    }

    /// Shows how far the check has got.
    pub fn update(&self, progress: Progress) {
        self.bar.set_message(describe(progress));
        self.bar.tick();
    }

    /// Removes the line, so the report starts on a clean screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The words of the progress line.
pub fn describe(progress: Progress) -> String {
    let seconds = progress.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        progress.unique_states as f64 / seconds
    } else {
        0.0
    };
    format!(
        "{} unique states ({} generated), {:.0} states/s, depth {}, {:.1} s",
        progress.unique_states, progress.states, rate, progress.max_depth, seconds
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_line_gives_states_rate_depth_and_elapsed() {
        let line = describe(Progress {
            states: 9_000,
            unique_states: 3_000,
            max_depth: 41,
            elapsed: Duration::from_secs(2),
        });
        assert_eq!(
            line,
            "3000 unique states (9000 generated), 1500 states/s, depth 41, 2.0 s"
        );
    }

    #[test]
    fn the_template_is_valid() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn never_draws_nothing() {
        assert!(CheckProgress::new(ProgressMode::Never).bar.is_hidden());
    }
}
