//! The command line of `atmostonce-model`: its commands and flags (clap
//! derive), their help, and the environment defaults CI can set.
//!
//! `faults.rs` turns `--faults` (the harness's one grammar,
//! `atmostonce_verify::faults`) into the model's fault set, `progress.rs`
//! draws the check's progress on a terminal, `run.rs` runs a command and
//! gives its exit status.

mod faults;
mod progress;
mod run;

use clap::{Args, Parser, Subcommand, ValueEnum};

use atmostonce_model::{
    Api, DEFAULT_MAX_TICK, DEFAULT_SKEW_MS, FENCED_TOTAL_FAULTS, GRACE_MS, MAX_FAULT_BOUND,
    MAX_KEYS, MAX_PRODUCERS, MAX_SKEW_MS, MAX_TOTAL_FAULTS,
};

pub use faults::FaultChoice;
pub use progress::ProgressMode;
pub use run::run;

/// The environment variable that sets `--threads` when the flag is absent.
pub const THREADS_ENV: &str = "ATMOSTONCE_MODEL_THREADS";
/// The environment variable that sets `--faults` when the flag is absent.
pub const FAULTS_ENV: &str = "ATMOSTONCE_MODEL_FAULTS";
/// The environment variable that sets `--api` when the flag is absent.
pub const API_ENV: &str = "ATMOSTONCE_MODEL_API";
/// `--producers` when it is not given.
pub const SEED_PRODUCERS: u64 = 3;
/// `--producers` with `--api fenced` when it is not given.
pub const FENCED_PRODUCERS: u64 = 2;

const ABOUT: &str = "Exhaustive model checking of the atmostonce protocol";

const LONG_ABOUT: &str = "\
Exhaustive model checking of the atmostonce protocol.

The model runs the engine's own operation state machines (the values the \
async DedupCache drives) for N producers, each handling one message per key, \
plus the TTL sweeper, against a store that can crash, and explores every \
interleaving of their store calls and of the faults of --faults. It checks \
the invariants S1-S7 of docs/spec.md (Invariants) as `always` properties, A1 \
under its timing assumption, that the model can explain every step \
(`internal`), and `sometimes` witnesses that every interesting branch was \
reached (an applicable witness never reached is a failure).

Without options, `check` runs the standard configuration: 3 producers, 1 key, \
the seed API, the faults producer-crash, store-crash, indeterminate and \
delivery-failure, one of each, the clock at ticks 0..=2, producer symmetry \
reduction, 2 threads. `--api fenced` changes two defaults: 2 producers, and \
at most one fault of the bounded kinds per run in all (--total-faults 1), so \
that `check --api fenced --faults all` (the fenced gate) is exhaustive in a few \
minutes. With `pause`, a tick that overtakes a live producer's claim is a \
pause, bounded by --bound as every fault kind is. Fenced ticks that would \
change nothing (no operation under way, nothing stamped at the current tick) \
are left out: every run taking one is matched by a run without it. \
`atmostonce-model check --help` lists every option.";

const AFTER_LONG_HELP: &str = "\
OUTPUT (check): the configuration, unique states, states per second, elapsed \
time, each property's verdict (HOLDS / VIOLATED, witnessed / NOT WITNESSED / \
not applicable), any fault `all` brought in that cannot happen in the \
configuration (not applicable, left out), and for each violated invariant a \
shortest counterexample as numbered steps: who did what, what the engine \
answered, and what the store held afterwards: each stream's records \
`seq:kind(key, tick)`, with `|` where the durable prefix ends (what follows it \
a store crash drops). The last line is `verdict: PASS` or `verdict: FAIL (..)` \
with the violated invariants. On a terminal, the check shows its progress on \
standard error while it runs (states, states/s, depth, elapsed).

ENVIRONMENT: ATMOSTONCE_MODEL_THREADS, ATMOSTONCE_MODEL_FAULTS and \
ATMOSTONCE_MODEL_API set --threads, --faults and --api when the flag is not \
given (a flag wins).

EXIT STATUS: 0 when every invariant holds and every applicable witness was \
reached, 1 otherwise, 2 for a usage error.";

const FAULTS_HELP_HEAD: &str = "\
The faults the checker may inject, in the harness's one fault vocabulary and \
list grammar (the simulator's): a start word `all` (every fault the model \
supports, pause included), `standard` (the default: all but pause, \
collisions, clock-skew, stale-reads, compaction and corruption) or `none`, then fault names to add (`x` or `+x`) or remove \
(`-x`), comma-separated: `all,-pause`, `none,store-crash`. `indeterminate` \
stands for error-applied,error-lost, which the model injects together; \
`crash` and `collision` are accepted for producer-crash and collisions. A \
fault `all` brings in that cannot happen in the configuration (collisions \
with --keys 1) is reported not applicable and left out; named, it is a usage \
error. The model's faults:";

/// The `atmostonce-model` command line.
#[derive(Debug, Parser)]
#[command(
    name = "atmostonce-model",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    subcommand_required = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every reachable state of a configuration and report each
    /// property's verdict (exit 0 pass, 1 fail).
    #[command(after_long_help = AFTER_LONG_HELP)]
    Check(CheckArgs),
    /// Serve stateright's Explorer (a web page that walks the model's
    /// states step by step) until stopped with Ctrl-C.
    Explore(ExploreArgs),
    /// Print a completion script for SHELL to standard output, e.g.
    /// `atmostonce-model completions bash > /etc/bash_completion.d/atmostonce-model`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The flags of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration and the search.
    #[command(flatten)]
    pub model: ModelArgs,
    /// When to draw the check's progress (states, states/s, depth, elapsed)
    /// on standard error.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// The flags of `explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The configuration and the search.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where to serve the Explorer.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub addr: String,
}

/// The configuration both `check` and `explore` take.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Concurrent producers (default: 3, or 2 with `--api fenced`).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..=MAX_PRODUCERS as u64),
        long_help = format!(
            "Concurrent producers (1-{MAX_PRODUCERS}; default {SEED_PRODUCERS}, or \
             {FENCED_PRODUCERS} with --api fenced, whose runs are longer: each \
             zombie claims again). The state space grows about tenfold per producer."
        )
    )]
    pub producers: Option<u64>,
    /// Idempotency keys; each producer handles one message per key, in order.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..=MAX_KEYS as u64),
        long_help = format!(
            "Idempotency keys (1-{MAX_KEYS}); each producer handles one message per \
             key, in order."
        )
    )]
    pub keys: u64,
    /// The API the producers use.
    #[arg(long, value_enum, env = API_ENV, default_value_t = ApiChoice::Seed)]
    pub api: ApiChoice,
    /// The faults the checker may inject (see --help for the list).
    #[arg(
        long,
        value_name = "LIST",
        env = FAULTS_ENV,
        default_value = "standard",
        value_parser = faults::parse,
        long_help = faults::long_help(FAULTS_HELP_HEAD)
    )]
    pub faults: FaultChoice,
    /// How many faults of each kind one run may inject.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(0..=i64::from(MAX_FAULT_BOUND)),
        long_help = format!(
            "How many faults of each kind one run may inject (0-{MAX_FAULT_BOUND}). \
             Every fault multiplies the state space several times over."
        )
    )]
    pub bound: u8,
    /// How many faults one run may inject in all (default: 1 with `--api
    /// fenced`, no total with the seed API).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_TOTAL_FAULTS)),
        long_help = format!(
            "How many faults of the bounded kinds (producer-crash, store-crash, corruption, \
             indeterminate, delivery-failure) one run may inject in all \
             (1-{MAX_TOTAL_FAULTS}), on top of --bound per kind; pause, collisions and \
             compaction are not counted. Default: {FENCED_TOTAL_FAULTS} with --api fenced (every \
             witness needs at most one, and pause, not counted, meets each), no \
             total with the seed API (its standard configuration)."
        )
    )]
    pub total_faults: Option<u8>,
    /// The clock's last tick (1-4; an entry expires one tick after its
    /// timestamp).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAX_TICK,
        value_parser = clap::value_parser!(u8).range(1..=4)
    )]
    pub ticks: u8,
    /// How far the sweeper's clock is off under `clock-skew`, either way.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = DEFAULT_SKEW_MS,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SKEW_MS),
        long_help = format!(
            "How far a sweep pass's clock is off under clock-skew, ahead or behind, in ms \
             (1-{MAX_SKEW_MS}; default {DEFAULT_SKEW_MS}). Below the specification's \
             {GRACE_MS} ms grace the grace absorbs it; at or above it is the scenario \
             \"clock skew beyond the grace\", where the sweeper may expire a claim inside \
             its lease and the fencing token must keep every invariant anyway."
        )
    )]
    pub skew_ms: u64,
    /// Explore without producer symmetry reduction (breadth-first instead of
    /// depth-first).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Checker threads (0 counts as 1).
    #[arg(long, value_name = "T", env = THREADS_ENV, default_value_t = 2)]
    pub threads: usize,
}

/// An `--api` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiChoice {
    /// claim_or_get / complete_receipt_at / release_claim_at and the TTL
    /// sweeper.
    Seed,
    /// claim (a claim id the model draws) / complete / release with the
    /// claim token, the FencedSweeper; the delivery carries the token's
    /// fence to a downstream that refuses a fence lower than one it
    /// accepted, so A1 is checked unconditionally (also with pause), and
    /// every answer and record is judged by the oracle's fenced
    /// specification.
    Fenced,
}

impl From<ApiChoice> for Api {
    fn from(choice: ApiChoice) -> Api {
        match choice {
            ApiChoice::Seed => Api::Seed,
            ApiChoice::Fenced => Api::Fenced,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_api_choice_names_an_api_of_the_model() {
        for choice in ApiChoice::value_variants() {
            let name = choice.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(name, Some(Api::from(*choice).to_string()));
        }
    }
}
