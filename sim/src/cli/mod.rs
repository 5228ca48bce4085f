//! The command line: parsing and `--help`. Shared by both builds, so the
//! ordinary build can explain what to run.

use std::ops::Range;
use std::path::PathBuf;

mod live;

use crate::check::CheckOptions;
use crate::config::{Api, FaultSpec, Shape};
use crate::outcome::ConfigSource;
pub use live::{
    LIVE_DEFAULT_DURATION_MS, LIVE_DEFAULT_KEYS, LIVE_DEFAULT_PRODUCERS, LIVE_DEFAULT_THINK_MS,
    LIVE_MAX_DURATION_MS, LiveArgs, LiveFault, MAX_THINK_MS, Plant, StoreKind, parse_duration_ms,
};

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
    /// Live mode (ordinary build): the workload against a real store.
    Live(LiveArgs),
    /// Live mode's haematite server, the child process a live run kills
    /// and restarts (internal: started by `live --store haematite`).
    LiveServer {
        /// The database directory.
        path: PathBuf,
    },
}

/// Walks `--flag value` and `--flag=value` arguments.
pub(crate) struct Flags<'a> {
    args: &'a [String],
    index: usize,
    flag: String,
    inline: Option<String>,
}

impl<'a> Flags<'a> {
    pub(crate) fn new(args: &'a [String]) -> Flags<'a> {
        Flags {
            args,
            index: 0,
            flag: String::new(),
            inline: None,
        }
    }

    /// The next flag (with `=value` split off), or `None` at the end.
    pub(crate) fn next_flag(&mut self) -> Option<String> {
        let arg = self.args.get(self.index)?;
        self.index += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        self.flag = flag.to_owned();
        self.inline = inline;
        Some(self.flag.clone())
    }

    /// The value of the flag just read.
    pub(crate) fn value(&mut self) -> Result<String, String> {
        if let Some(value) = self.inline.take() {
            return Ok(value);
        }
        let value = self
            .args
            .get(self.index)
            .cloned()
            .ok_or_else(|| format!("{} needs a value", self.flag))?;
        self.index += 1;
        Ok(value)
    }
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

pub(crate) fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} takes a number, not {text:?}"))
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        mode: Mode::Help,
        jobs: std::thread::available_parallelism().map_or(1, usize::from),
        faults: FaultSpec::parse("swarm")?,
        api: Api::Fenced,
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
    match args.first().map(String::as_str) {
        Some("live") => {
            if args[1..].iter().any(|arg| arg == "-h" || arg == "--help") {
                return Ok(cli);
            }
            cli.mode = Mode::Live(live::parse_live(&args[1..])?);
            return Ok(cli);
        }
        Some("live-server") => {
            return match args.get(1..) {
                Some([flag, path]) if flag == "--path" => Ok(Cli {
                    mode: Mode::LiveServer {
                        path: PathBuf::from(path),
                    },
                    ..cli
                }),
                _ => Err("live-server takes --path DIR (it is started by live mode)".into()),
            };
        }
        _ => {}
    }
    let mut modes = 0;
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        let flag = flag.as_str();
        let mut value = || flags.value();
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
    let faults: Vec<String> = crate::config::simulator_faults()
        .map(|fault| format!("      {:<15} {}", fault.name(), fault.meaning()))
        .collect();
    let faults = faults.join("\n");
    let live_faults: Vec<String> = LiveFault::ALL
        .iter()
        .map(|fault| {
            let stores: Vec<&str> = StoreKind::ALL
                .iter()
                .filter(|store| fault.supported_by(**store))
                .map(|store| store.name())
                .collect();
            format!(
                "      {:<15} {} [{}]",
                fault.name(),
                fault.meaning(),
                stores.join(", ")
            )
        })
        .collect();
    let live_faults = live_faults.join("\n");
    let plants: Vec<String> = Plant::ALL
        .iter()
        .map(|plant| format!("      {:<22} {}", plant.name(), plant.meaning()))
        .collect();
    let plants = plants.join("\n");
    format!(
        "atmostonce-sim: the deterministic simulator of the atmostonce engine.

The real engine runs under madsim against a fault-injecting store; every
operation, delivery and fault goes into a history that a checker judges
against the invariants S1-S7, A1 and A2 (docs/spec.md, Invariants). The same seed
and configuration always give the same trace hash.

USAGE (the madsim build, via the cargo alias in .cargo/config.toml):
  cargo sim -- --seed N [OPTIONS]        run one seed; print config, verdict, trace hash
  cargo sim -- --seeds A..B [OPTIONS]    sweep seeds A (inclusive) to B (exclusive)
  cargo sim -- --replay FILE             rerun a replay file (written by --shrink) exactly
  cargo sim -- --regressions FILE        rerun every entry of a regression file and
                                         compare each verdict with the expected one
  cargo sim -- --calibrate               speed of a bare madsim workload of the standard
                                         scenario's shape (8 tasks x 50 iterations)
  cargo run -p atmostonce-sim --release -- live --store STORE [LIVE OPTIONS]
                                         live mode (the ordinary build, see below)

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
  --api A            the engine API the producers use: `fenced` (default;
                     claim tokens, a fenced downstream) or `seed` (the
                     seed-compatible API, whose known bugs stay reproducible)
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

LIVE MODE (the ordinary build, without madsim):
  cargo run -p atmostonce-sim --release -- live --store memory|haematite|postgres \\
      [--producers N] [--keys K] [--duration D] [LIVE OPTIONS]

The same producers, sweeper and probe as the simulation, as real tokio tasks
on real threads against a real store, with real faults; the recorded history
goes to the same checker (S1-S7, A1, and A2 after a quiet phase). Not
deterministic: a failure cannot be replayed by seed, so its report carries
the whole timeline of the keys involved.

  memory      MemoryStore in this process
  haematite   HaematiteStore in a child process of this binary, over a
              loopback socket; store-crash SIGKILLs it and starts it again
              on the same database (--path DIR, default a temporary one)
  postgres    PostgresStore on --postgres-url (default ATMOSTONCE_POSTGRES_URL),
              in a fresh table; store-crash runs `pg_ctl stop -m immediate`
              and `pg_ctl start` on --pg-data (default
              $THROWAWAY_POSTGRES_DIR/data, as scripts/throwaway-postgres.sh
              exports it) with --pg-bin (default $THROWAWAY_POSTGRES_BIN, else
              PATH); as root, pg_ctl runs as the data directory's owner

LIVE OPTIONS:
  --store STORE      memory (default), haematite or postgres
  --producers N      producer tasks (default {LIVE_DEFAULT_PRODUCERS})
  --keys K           idempotency keys (default {LIVE_DEFAULT_KEYS})
  --duration D       main phase, e.g. 60s, 500ms, 2m (default 10s); then the
                     producers finish the message in hand, faults stop, and
                     the quiet phase (TTL + grace + skew + 2 sweeps) runs
                     before the probe reads every key (A2)
  --faults LIST      all (every fault the store supports), none (contention
                     only) or a list, with ,-NAME to remove, ,NAME to add;
                     default: all but collisions and long-streams:
{live_faults}
  --seed N           draws the workload's timings and fault rates as the
                     simulator does (default: from the clock; printed)
  --api A            `fenced` (default) or `seed`, as for the simulator
  --think-ms MS      longest pause between a producer's messages (default
                     {LIVE_DEFAULT_THINK_MS})
  --strict-reads     as for the simulator
  --json             one JSON summary object instead of the text report
  --history          print every key's timeline
  --plant NAME       break something on purpose, to see the checker catch it:
{plants}

The report gives operations per second, p50/p99/max latency per operation
kind, the faults injected (and, after every store crash, what the restarted
store had lost), the checker's verdict, and on a violation the invariant,
the key, the operations and the key's timeline. After a store crash the run
reads the store back: an acknowledged append that is gone is an S4
violation of the store's durability promise; a record that an operation
read and that is gone makes that operation's read dirty (exempt as in the
simulator, and counted).

Exit status as for the simulator: 0 pass, 1 a violation, 2 a usage or
internal error (a store that cannot be reached, a server that does not come
back, a checker that gives up); never a pass on an internal error.
"
    )
}

/// What the ordinary build (without `--cfg madsim`) prints when asked to
/// simulate.
#[must_use]
pub fn ordinary_build_notice() -> String {
    "atmostonce-sim: this binary was built without `--cfg madsim`, so it cannot simulate.
Run the simulator through the cargo alias, which builds with madsim in target/madsim:

  cargo sim -- --seeds 0..10000
  cargo sim -- --seed 7
  cargo sim -- --help

This build runs live mode, the workload against a real store:

  cargo run -p atmostonce-sim --release -- live --store memory|haematite|postgres"
        .to_owned()
}

/// What the madsim build prints when asked for live mode.
#[must_use]
pub fn madsim_build_notice() -> String {
    "atmostonce-sim: this is the madsim build (`cargo sim`), which simulates and has no
real stores, threads or clocks. Live mode runs in the ordinary build:

  cargo run -p atmostonce-sim --release -- live --store memory|haematite|postgres \\
      --producers 8 --keys 16 --duration 60s
  cargo run -p atmostonce-sim --release -- live --help"
        .to_owned()
}

#[cfg(test)]
mod tests;
