//! The command line: parsing and `--help`. Shared by both builds, so the
//! ordinary build can explain what to run.

use std::ops::Range;
use std::path::PathBuf;

use crate::check::CheckOptions;
use crate::config::{Api, Fault, FaultSpec, Shape};
use crate::outcome::ConfigSource;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Print help.
    Help,
    /// Run one seed.
    Seed(u64),
    /// Sweep a range of seeds.
    Seeds(Range<u64>),
    /// Run a replay file exactly.
    Replay(PathBuf),
    /// Replay a regression file and compare verdicts.
    Regressions(PathBuf),
    /// Measure the bare madsim workload.
    Calibrate,
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// What to do.
    pub mode: Mode,
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

impl Cli {
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

/// Seeds the calibration runs by default: enough for a stable rate.
pub const DEFAULT_CALIBRATION_SEEDS: u64 = 2_000;

/// Parses a seed: decimal or `0x` hex.
pub fn parse_seed(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a seed (decimal or 0x-hex)"))
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a range A..B"))?;
    let (start, end) = (parse_seed(start)?, parse_seed(end)?);
    if end <= start {
        return Err(format!("the range {text} is empty"));
    }
    Ok(start..end)
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} takes a number, not {text:?}"))
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        mode: Mode::Help,
        jobs: std::thread::available_parallelism().map_or(1, usize::from),
        faults: FaultSpec::parse("swarm")?,
        api: Api::Seed,
        shape: Shape::STANDARD,
        check_determinism: false,
        strict_reads: false,
        json: false,
        shrink: false,
        out: None,
        timeline: None,
        full_history: false,
        calibrate_seeds: DEFAULT_CALIBRATION_SEEDS,
    };
    let mut modes = 0;
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(value) = inline.clone() {
                return Ok(value);
            }
            let value = args
                .get(index)
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?;
            index += 1;
            Ok(value)
        };
        match flag {
            "-h" | "--help" => {
                return Ok(Cli {
                    mode: Mode::Help,
                    ..cli
                });
            }
            "--seed" => {
                cli.mode = Mode::Seed(parse_seed(&value()?)?);
                modes += 1;
            }
            "--seeds" => {
                cli.mode = Mode::Seeds(parse_range(&value()?)?);
                modes += 1;
            }
            "--replay" => {
                cli.mode = Mode::Replay(PathBuf::from(value()?));
                modes += 1;
            }
            "--regressions" => {
                cli.mode = Mode::Regressions(PathBuf::from(value()?));
                modes += 1;
            }
            "--calibrate" => {
                cli.mode = Mode::Calibrate;
                modes += 1;
            }
            "--calibrate-seeds" => cli.calibrate_seeds = parse_number(flag, &value()?)?,
            "--jobs" => {
                cli.jobs = parse_number(flag, &value()?)?;
                if cli.jobs == 0 {
                    return Err("--jobs must be at least 1".into());
                }
            }
            "--faults" => cli.faults = FaultSpec::parse(&value()?)?,
            "--api" => cli.api = Api::parse(&value()?)?,
            "--producers" => cli.shape.producers = parse_number(flag, &value()?)?,
            "--keys" => cli.shape.keys = parse_number(flag, &value()?)?,
            "--ops" => cli.shape.ops = parse_number(flag, &value()?)?,
            "--check-determinism" => cli.check_determinism = true,
            "--strict-reads" => cli.strict_reads = true,
            "--json" => cli.json = true,
            "--shrink" => cli.shrink = true,
            "--out" => cli.out = Some(PathBuf::from(value()?)),
            "--timeline" => cli.timeline = Some(PathBuf::from(value()?)),
            "--history" => cli.full_history = true,
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    if modes > 1 {
        return Err("give one of --seed, --seeds, --replay, --regressions, --calibrate".into());
    }
    let shape = cli.shape;
    if shape.producers == 0 || shape.producers > crate::config::MAX_PRODUCERS {
        return Err(format!(
            "--producers must be 1..={}",
            crate::config::MAX_PRODUCERS
        ));
    }
    if shape.keys == 0 || shape.keys > crate::config::MAX_KEYS {
        return Err(format!("--keys must be 1..={}", crate::config::MAX_KEYS));
    }
    if shape.ops > crate::config::MAX_OPS {
        return Err(format!("--ops must be at most {}", crate::config::MAX_OPS));
    }
    if cli.timeline.is_some() && !matches!(cli.mode, Mode::Seed(_) | Mode::Replay(_)) {
        return Err("--timeline goes with --seed or --replay".into());
    }
    if cli.shrink && !matches!(cli.mode, Mode::Seed(_) | Mode::Seeds(_)) {
        return Err("--shrink goes with --seed or --seeds".into());
    }
    Ok(cli)
}

/// The `--help` text.
#[must_use]
pub fn help() -> String {
    let faults: Vec<String> = Fault::ALL
        .iter()
        .map(|fault| format!("      {:<15} {}", fault.name(), fault.meaning()))
        .collect();
    let faults = faults.join("\n");
    format!(
        "atmostonce-sim: the deterministic simulator of the atmostonce engine.

The real engine runs under madsim against a fault-injecting store; every
operation, delivery and fault goes into a history that a checker judges
against the invariants S1-S7, A1 and A2 (DESIGN.md section 5). The same seed
and configuration always give the same trace hash.

USAGE (the madsim build, via the cargo alias in .cargo/config.toml):
  cargo sim -- --seed N [OPTIONS]        run one seed; print config, verdict, trace hash
  cargo sim -- --seeds A..B [OPTIONS]    sweep seeds A (inclusive) to B (exclusive)
  cargo sim -- --replay FILE             rerun a replay file (written by --shrink) exactly
  cargo sim -- --regressions FILE        rerun every entry of a regression file and
                                         compare each verdict with the expected one
  cargo sim -- --calibrate               speed of a bare madsim workload of the standard
                                         scenario's shape (8 tasks x 50 iterations)

OPTIONS:
  --faults SPEC      which faults (default: swarm). SPEC is one of
                       swarm   each seed enables a random half of every fault but pause
                       all     every fault but pause
                       none    contention only (no injected faults)
                       LIST    exactly these, comma-separated
                     optionally followed by ,-NAME (remove) or ,NAME (add), e.g.
                     swarm,-corruption or all,pause. `indeterminate` means
                     error-applied,error-lost. Rates are drawn from the seed.
                     Faults:
{faults}
  --api seed         the engine API the producers use (only `seed`, the
                     seed-compatible API, exists so far)
  --jobs J           worker threads for --seeds (default: CPUs); each seed
                     runs its own madsim runtime on a fresh thread
  --check-determinism  run every seed twice; a different trace hash fails (exit 2)
  --strict-reads     also hold read-only answers that read stale or
                     crash-dropped data to S2/S4/S7 (the seed API fails this)
  --json             one JSON object per failing seed, then a summary object
  --shrink           shrink the (first) failure to fewer producers, operations,
                     keys and faults that still fail the same invariant, and
                     write a replay file (see --out)
  --out FILE         where --shrink writes (default: sim-replay-SEED.json)
  --timeline FILE    with --seed or --replay: write a self-contained HTML picture
                     (one lane per producer, faults, violating operations)
  --history          with --seed: print the timeline of every key
  --producers N --keys K --ops N
                     workload size (default: the standard scenario, 8/16/400;
                     ops counts engine calls by producers)
  --calibrate-seeds N  seeds for --calibrate (default {DEFAULT_CALIBRATION_SEEDS})
  -h, --help         this text

EXIT STATUS:
  0  every seed passed (regressions: every verdict as expected)
  1  a violation was found (regressions: a verdict differs)
  2  usage error, internal error, nondeterminism, or a build without madsim;
     an internal error is never reported as a pass

A failure prints the violated invariant, the key, the operations, a timeline
of the key and the one-line command that reproduces it.
"
    )
}

/// What the ordinary build (without `--cfg madsim`) prints.
#[must_use]
pub fn ordinary_build_notice() -> String {
    "atmostonce-sim: this binary was built without `--cfg madsim`, so it cannot simulate.
Run the simulator through the cargo alias, which builds with madsim in target/madsim:

  cargo sim -- --seeds 0..10000
  cargo sim -- --seed 7
  cargo sim -- --help

(The ordinary build holds the history checker and its tests; a live mode
against real stores will run here.)"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_seed_parses_in_decimal_and_hex() {
        assert_eq!(parse(&args("--seed 42")).unwrap().mode, Mode::Seed(42));
        assert_eq!(parse(&args("--seed 0x2a")).unwrap().mode, Mode::Seed(42));
        assert!(parse(&args("--seed forty")).is_err());
    }

    #[test]
    fn a_sweep_parses_its_range_jobs_and_faults() {
        let cli = parse(&args(
            "--seeds 0..100 --jobs 2 --faults=swarm,-corruption --json",
        ))
        .unwrap();
        assert_eq!(cli.mode, Mode::Seeds(0..100));
        assert_eq!(cli.jobs, 2);
        assert!(cli.json);
        assert_eq!(cli.faults.to_string(), "swarm,-corruption");
        assert!(parse(&args("--seeds 5..5")).is_err());
    }

    #[test]
    fn conflicting_or_unknown_arguments_are_refused() {
        assert!(parse(&args("--seed 1 --seeds 0..2")).is_err());
        assert!(parse(&args("--frobnicate")).is_err());
        assert!(parse(&args("--api fenced")).is_err());
        assert!(parse(&args("--seeds 0..9 --timeline x.html")).is_err());
        assert!(parse(&args("--jobs 0 --seed 1")).is_err());
    }

    #[test]
    fn the_help_names_every_flag_and_every_fault() {
        let help = help();
        for flag in [
            "--seed ",
            "--seeds",
            "--replay",
            "--regressions",
            "--calibrate",
            "--faults",
            "--api",
            "--jobs",
            "--check-determinism",
            "--strict-reads",
            "--json",
            "--shrink",
            "--out",
            "--timeline",
            "--history",
            "--producers",
            "--keys",
            "--ops",
            "--calibrate-seeds",
        ] {
            assert!(help.contains(flag), "help lacks {flag}");
        }
        for fault in Fault::ALL {
            assert!(help.contains(fault.name()), "help lacks {fault}");
        }
    }
}
