//! The command line (clap derive), shared by both builds so that each can
//! explain what to run for the mode it lacks. `args.rs` holds the
//! simulation's flags, `live.rs` live mode's, `help.rs` the prose of
//! `--help`; this module holds the subcommands and turns a parse into an
//! [`Action`].

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod args;
mod help;
mod live;

pub use args::{DEFAULT_CALIBRATION_SEEDS, Sim, SimArgs, SimMode, parse_range, parse_seed};
pub use help::{madsim_build_notice, ordinary_build_notice};
pub use live::{
    LIVE_DEFAULT_DURATION_MS, LIVE_DEFAULT_KEYS, LIVE_DEFAULT_PRODUCERS, LIVE_DEFAULT_THINK_MS,
    LIVE_MAX_DURATION_MS, LiveArgs, LiveFault, LiveFaultList, MAX_THINK_MS, Plant, StoreKind,
    parse_duration_ms,
};

/// The name completions and messages use.
pub const BINARY: &str = "atmostonce-sim";

/// The simulator's command line: simulation flags at the top level (as
/// `cargo sim -- --seeds 0..10000`), live mode and the tools as
/// subcommands.
#[derive(Debug, Parser)]
#[command(
    name = BINARY,
    about = "The deterministic simulator of the atmostonce engine, and its live mode",
    long_about = help::LONG_ABOUT,
    after_long_help = help::after_long_help(),
    args_conflicts_with_subcommands = true,
    disable_version_flag = true,
)]
pub struct Cli {
    /// A subcommand; without one, the simulation flags below.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The simulation's flags.
    #[command(flatten)]
    pub sim: SimArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Live mode (the ordinary build): the workload against a real store.
    #[command(long_about = help::LIVE_LONG_ABOUT, after_long_help = help::LIVE_AFTER_HELP)]
    Live(LiveArgs),
    /// Live mode's haematite server, the child process a live run kills and
    /// restarts (started by `live --store haematite`, not by hand).
    #[command(hide = true)]
    LiveServer {
        /// The database directory.
        #[arg(long, value_name = "DIR")]
        path: PathBuf,
    },
    /// Combine the JSON summaries of a sharded sweep (`--shard K/N --json`)
    /// into one verdict: exit 0 every seed passed, 1 a violation, 2 an
    /// internal error, nondeterminism, or summaries that do not belong
    /// together.
    #[command(long_about = help::MERGE_LONG_ABOUT)]
    Merge {
        /// The shards' `--json` outputs (the whole file, or its summary line).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print the merged summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script to stdout, e.g.
    /// `atmostonce-sim completions bash > ~/.local/share/bash-completion/completions/atmostonce-sim`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No mode was given: print the help.
    Help,
    /// A simulation mode (the madsim build).
    Simulate(Sim),
    /// Live mode (the ordinary build).
    Live(LiveArgs),
    /// Live mode's haematite server.
    LiveServer {
        /// The database directory.
        path: PathBuf,
    },
    /// `merge`.
    Merge {
        /// The summaries.
        files: Vec<PathBuf>,
        /// `--json`.
        json: bool,
    },
    /// `completions SHELL`.
    Completions(clap_complete::Shell),
}

/// Parses a command line (its first item is the program's name). A usage
/// error is a `clap::Error`, whose `exit()` prints it and exits with 2
/// (help: 0).
pub fn parse<I, T>(args: I) -> Result<Action, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let from_env = |id: &str| matches.value_source(id) == Some(ValueSource::EnvVariable);
    Ok(match cli.command {
        Some(Command::Live(live)) => {
            live.faults()?;
            Action::Live(live)
        }
        Some(Command::LiveServer { path }) => Action::LiveServer { path },
        Some(Command::Merge { files, json }) => Action::Merge { files, json },
        Some(Command::Completions { shell }) => Action::Completions(shell),
        None => match cli.sim.resolve(from_env("seeds"), from_env("shard"))? {
            Some(sim) => Action::Simulate(sim),
            None => Action::Help,
        },
    })
}

/// A usage error in clap's words and format (exit status 2).
pub(crate) fn usage_error(kind: ErrorKind, message: impl std::fmt::Display) -> clap::Error {
    Cli::command().error(kind, message)
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), BINARY, out);
}

/// The full `--help` text.
#[must_use]
pub fn long_help() -> String {
    Cli::command().render_long_help().to_string()
}

#[cfg(test)]
mod tests;
