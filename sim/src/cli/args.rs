//! The simulation's flags (`cargo sim -- ...`) and the run they describe.

use std::ops::Range;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{ArgAction, Args};

use super::{help, usage_error};
use crate::check::CheckOptions;
use crate::config::{Api, FaultSpec, MAX_KEYS, MAX_OPS, MAX_PRODUCERS, Shape};
use crate::outcome::ConfigSource;
use crate::shard::Shard;

/// Seeds the calibration runs by default: enough for a stable rate.
pub const DEFAULT_CALIBRATION_SEEDS: u64 = 2_000;

/// The simulation's flags, as clap parses them.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Run one seed (decimal or 0x-hex): print the drawn configuration, the
    /// verdict and the trace hash.
    #[arg(long, value_name = "N", value_parser = parse_seed, help_heading = "Modes")]
    seed: Option<u64>,
    /// Sweep seeds A (inclusive) to B (exclusive): a progress bar on a
    /// terminal, then a summary line (seeds, failures, seeds per second,
    /// simulated-to-real ratio, the checker's share of the time).
    #[arg(
        long,
        value_name = "A..B",
        value_parser = parse_range,
        env = "ATMOSTONCE_SEEDS",
        help_heading = "Modes"
    )]
    seeds: Option<Range<u64>>,
    /// Rerun a replay file (written by --shrink) exactly, and check its
    /// recorded trace hash.
    #[arg(long, value_name = "FILE", help_heading = "Modes")]
    replay: Option<PathBuf>,
    /// Rerun every entry of a regression file and compare each verdict with
    /// the expected one.
    #[arg(long, value_name = "FILE", help_heading = "Modes")]
    regressions: Option<PathBuf>,
    /// The speed of a bare madsim workload of the standard scenario's shape
    /// (8 tasks x 50 iterations of two random sleeps and a shared map
    /// update), then of the standard scenario, on the same seeds and jobs.
    #[arg(long, help_heading = "Modes")]
    calibrate: bool,
    /// Seeds for --calibrate.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CALIBRATION_SEEDS)]
    calibrate_seeds: u64,
    /// Which faults may be drawn (rates are drawn from the seed).
    #[arg(
        long,
        value_name = "SPEC",
        default_value = "swarm",
        value_parser = FaultSpec::parse,
        allow_hyphen_values = true,
        env = "ATMOSTONCE_FAULTS",
        long_help = help::faults_long_help()
    )]
    faults: FaultSpec,
    /// The engine API the producers use.
    #[arg(long, value_enum, default_value_t = Api::Fenced, env = "ATMOSTONCE_API")]
    api: Api,
    /// Worker threads for a sweep [default: the CPUs]; every seed runs its
    /// own madsim runtime on a fresh thread.
    #[arg(
        long,
        value_name = "J",
        value_parser = clap::value_parser!(u16).range(1..),
        env = "ATMOSTONCE_JOBS"
    )]
    jobs: Option<u16>,
    /// With --seeds: run only shard K of N (1 <= K <= N) of the range, for a
    /// CI matrix; `merge` combines the shards' --json summaries. Shard K
    /// runs the K-th of N contiguous blocks whose sizes differ by at most
    /// one, so every seed is in exactly one shard.
    #[arg(long, value_name = "K/N", value_parser = Shard::parse, env = "ATMOSTONCE_SHARD")]
    shard: Option<Shard>,
    /// Producers of the workload.
    #[arg(
        long,
        value_name = "N",
        default_value_t = Shape::STANDARD.producers,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PRODUCERS)),
        help_heading = "Workload (default: the standard scenario)"
    )]
    producers: u16,
    /// Idempotency keys of the workload.
    #[arg(
        long,
        value_name = "K",
        default_value_t = Shape::STANDARD.keys,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_KEYS)),
        help_heading = "Workload (default: the standard scenario)"
    )]
    keys: u16,
    /// Engine calls by producers in all.
    #[arg(
        long,
        value_name = "N",
        default_value_t = Shape::STANDARD.ops,
        value_parser = clap::value_parser!(u32).range(..=i64::from(MAX_OPS)),
        help_heading = "Workload (default: the standard scenario)"
    )]
    ops: u32,
    /// Per mille of messages on fresh keys: besides the workload's keys, a
    /// stream of fresh ones, each claimed once, then completed or released,
    /// and never seen again (0: none).
    #[arg(
        long = "fresh-keys",
        value_name = "PM",
        default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(..=1000),
        help_heading = "Workload (default: the standard scenario)"
    )]
    fresh_keys: u32,
    /// Run every seed twice; a different trace hash fails (exit 2).
    #[arg(long)]
    check_determinism: bool,
    /// Also hold read-only answers that read stale or crash-dropped data to
    /// S2/S4/S7 (the seed API fails this).
    #[arg(long)]
    strict_reads: bool,
    /// One JSON object per failing seed, then a `{"summary": ...}` object
    /// (what `merge` reads); no progress bar.
    #[arg(long)]
    json: bool,
    /// Shrink the (first) failure to fewer producers, operations, keys and
    /// faults that still fail the same invariant, and write a replay file
    /// (see --out).
    #[arg(long)]
    shrink: bool,
    /// Where --shrink writes its replay file [default: sim-replay-SEED.json].
    #[arg(long, value_name = "FILE", requires = "shrink")]
    out: Option<PathBuf>,
    /// With --seed or --replay: write a self-contained HTML picture (one
    /// lane per producer, faults, violating operations outlined).
    #[arg(long, value_name = "FILE.html")]
    timeline: Option<PathBuf>,
    /// With --seed: print the timeline of every key.
    #[arg(long = "history", action = ArgAction::SetTrue)]
    full_history: bool,
}

/// A simulation mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimMode {
    /// Run one seed.
    Seed(u64),
    /// Sweep a range of seeds (after `--shard`, this shard's part).
    Seeds(Range<u64>),
    /// Run a replay file exactly.
    Replay(PathBuf),
    /// Replay a regression file and compare verdicts.
    Regressions(PathBuf),
    /// Measure the bare madsim workload.
    Calibrate,
}

/// A simulation run, as the command line describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sim {
    /// What to do.
    pub mode: SimMode,
    /// `--seeds` as given, before `--shard` took its part.
    pub range: Option<Range<u64>>,
    /// `--shard`.
    pub shard: Option<Shard>,
    /// Worker threads for sweeps.
    pub jobs: usize,
    /// `--faults`.
    pub faults: FaultSpec,
    /// `--api`.
    pub api: Api,
    /// `--producers`, `--keys`, `--ops`.
    pub shape: Shape,
    /// `--check-determinism`.
    pub check_determinism: bool,
    /// `--strict-reads`.
    pub strict_reads: bool,
    /// `--json`.
    pub json: bool,
    /// `--shrink`.
    pub shrink: bool,
    /// `--out FILE` for `--shrink`.
    pub out: Option<PathBuf>,
    /// `--timeline FILE.html`.
    pub timeline: Option<PathBuf>,
    /// `--history`: print every key's timeline for a single seed.
    pub full_history: bool,
    /// `--calibrate-seeds N`.
    pub calibrate_seeds: u64,
}

impl Sim {
    /// The configuration source the flags describe.
    #[must_use]
    pub fn source(&self) -> ConfigSource {
        ConfigSource::Draw {
            api: self.api,
            shape: self.shape,
            faults: self.faults.clone(),
        }
    }

    /// Checker options.
    #[must_use]
    pub fn check(&self) -> CheckOptions {
        CheckOptions {
            strict_reads: self.strict_reads,
        }
    }
}

impl SimArgs {
    /// The run these flags ask for, or `None` when they name no mode (then
    /// the help is printed). `--seeds` and `--shard` from the environment
    /// (`ATMOSTONCE_SEEDS`, `ATMOSTONCE_SHARD`) give way to a mode named on
    /// the command line, so a CI job's variables never break `--seed N`.
    pub(crate) fn resolve(
        self,
        seeds_from_env: bool,
        shard_from_env: bool,
    ) -> Result<Option<Sim>, clap::Error> {
        let mut modes: Vec<SimMode> = Vec::new();
        if let Some(seed) = self.seed {
            modes.push(SimMode::Seed(seed));
        }
        if let Some(path) = &self.replay {
            modes.push(SimMode::Replay(path.clone()));
        }
        if let Some(path) = &self.regressions {
            modes.push(SimMode::Regressions(path.clone()));
        }
        if self.calibrate {
            modes.push(SimMode::Calibrate);
        }
        let seeds = self
            .seeds
            .clone()
            .filter(|_| modes.is_empty() || !seeds_from_env);
        if let Some(seeds) = &seeds {
            modes.push(SimMode::Seeds(seeds.clone()));
        }
        if modes.len() > 1 {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "give one of --seed, --seeds, --replay, --regressions, --calibrate",
            ));
        }
        let Some(mut mode) = modes.pop() else {
            return Ok(None);
        };
        let shard = match (&mode, self.shard) {
            (SimMode::Seeds(range), Some(shard)) => {
                mode = SimMode::Seeds(shard.part(range));
                Some(shard)
            }
            (_, Some(_)) if !shard_from_env => {
                return Err(usage_error(
                    ErrorKind::ArgumentConflict,
                    "--shard K/N goes with --seeds A..B",
                ));
            }
            _ => None,
        };
        if self.timeline.is_some() && !matches!(mode, SimMode::Seed(_) | SimMode::Replay(_)) {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--timeline goes with --seed or --replay",
            ));
        }
        if self.shrink && !matches!(mode, SimMode::Seed(_) | SimMode::Seeds(_)) {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--shrink goes with --seed or --seeds",
            ));
        }
        Ok(Some(Sim {
            mode,
            range: seeds,
            shard,
            jobs: self.jobs.map_or_else(
                || std::thread::available_parallelism().map_or(1, usize::from),
                usize::from,
            ),
            faults: self.faults,
            api: self.api,
            shape: Shape {
                producers: self.producers,
                keys: self.keys,
                ops: self.ops,
                fresh_pm: self.fresh_keys,
            },
            check_determinism: self.check_determinism,
            strict_reads: self.strict_reads,
            json: self.json,
            shrink: self.shrink,
            out: self.out,
            timeline: self.timeline,
            full_history: self.full_history,
            calibrate_seeds: self.calibrate_seeds,
        }))
    }
}

/// Parses a seed: decimal or `0x` hex.
pub fn parse_seed(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a seed (decimal or 0x-hex)"))
}

/// Parses a seed range `A..B` (B exclusive, not empty).
pub fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a range A..B"))?;
    let (start, end) = (parse_seed(start)?, parse_seed(end)?);
    if end <= start {
        return Err(format!("the range {text} is empty"));
    }
    Ok(start..end)
}

impl clap::ValueEnum for Api {
    fn value_variants<'a>() -> &'a [Self] {
        &[Api::Fenced, Api::Seed]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let (name, meaning) = match self {
            Api::Fenced => (
                "fenced",
                "the engine's own API: claim tokens, fingerprints, renewals, a fenced downstream",
            ),
            Api::Seed => (
                "seed",
                "the seed-compatible API, whose known bugs stay reproducible",
            ),
        };
        Some(clap::builder::PossibleValue::new(name).help(meaning))
    }
}
