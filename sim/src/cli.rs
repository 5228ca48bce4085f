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
    /// Live mode (ordinary build): the workload against a real store.
    Live(LiveArgs),
    /// Live mode's haematite server, the child process a live run kills
    /// and restarts (internal: started by `live --store haematite`).
    LiveServer {
        /// The database directory.
        path: PathBuf,
    },
}

/// The stores live mode runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreKind {
    /// `MemoryStore`, in the live run's process.
    Memory,
    /// `HaematiteStore`, served by a child process the run kills.
    Haematite,
    /// `PostgresStore`, against a PostgreSQL server.
    Postgres,
}

impl StoreKind {
    /// Every store, in a fixed order.
    pub const ALL: [StoreKind; 3] = [StoreKind::Memory, StoreKind::Haematite, StoreKind::Postgres];

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Haematite => "haematite",
            StoreKind::Postgres => "postgres",
        }
    }

    /// Parses `memory`, `haematite` or `postgres`.
    pub fn parse(text: &str) -> Result<StoreKind, String> {
        StoreKind::ALL
            .into_iter()
            .find(|store| store.name() == text)
            .ok_or_else(|| {
                format!("unknown store {text:?}; live mode knows memory, haematite, postgres")
            })
    }
}

/// A fault live mode can inject. Those that share a simulator fault's name
/// mean the same; the store faults are real (a killed server process, a
/// restarted database server, closed connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LiveFault {
    /// Producers pick most keys from a few hot ones.
    Contention,
    /// Store calls get random extra delay before and after they act.
    Latency,
    /// A producer task is aborted at whatever await point it is at, then
    /// restarted with no memory.
    ProducerCrash,
    /// Producer and sweeper clocks are offset and jump.
    ClockSkew,
    /// The store's server dies: haematite's child process is SIGKILLed
    /// and restarted on its database; PostgreSQL is stopped with
    /// `pg_ctl stop -m immediate` and started again.
    StoreCrash,
    /// PostgreSQL closes the run's connections (`pg_terminate_backend`).
    Disconnect,
    /// 1-3 hash bits, so keys share streams.
    Collisions,
    /// Read batches of 1-4 records.
    LongStreams,
}

impl LiveFault {
    /// Every live fault, in a fixed order.
    pub const ALL: [LiveFault; 8] = [
        LiveFault::Contention,
        LiveFault::Latency,
        LiveFault::ProducerCrash,
        LiveFault::ClockSkew,
        LiveFault::StoreCrash,
        LiveFault::Disconnect,
        LiveFault::Collisions,
        LiveFault::LongStreams,
    ];

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LiveFault::Contention => "contention",
            LiveFault::Latency => "latency",
            LiveFault::ProducerCrash => "producer-crash",
            LiveFault::ClockSkew => "clock-skew",
            LiveFault::StoreCrash => "store-crash",
            LiveFault::Disconnect => "disconnect",
            LiveFault::Collisions => "collisions",
            LiveFault::LongStreams => "long-streams",
        }
    }

    /// One line on what it does.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            LiveFault::Contention => "producers pick keys from a few hot ones, so claims race",
            LiveFault::Latency => "store calls get random extra delay before and after they act",
            LiveFault::ProducerCrash => {
                "a producer task is aborted at any await point and restarts empty"
            }
            LiveFault::ClockSkew => "producer and sweeper clocks are offset and jump",
            LiveFault::StoreCrash => {
                "haematite: its server process is SIGKILLed and restarted; postgres: \
                 pg_ctl stop -m immediate, then start (needs --pg-data)"
            }
            LiveFault::Disconnect => "postgres: pg_terminate_backend on the run's connections",
            LiveFault::Collisions => "1-3 hash bits, so keys share streams",
            LiveFault::LongStreams => "read batches of 1-4 records, so reads take many calls",
        }
    }

    /// The simulator's fault of the same meaning, if there is one.
    #[must_use]
    pub fn simulated(self) -> Option<Fault> {
        match self {
            LiveFault::Contention => Some(Fault::Contention),
            LiveFault::Latency => Some(Fault::Latency),
            LiveFault::ProducerCrash => Some(Fault::ProducerCrash),
            LiveFault::ClockSkew => Some(Fault::ClockSkew),
            LiveFault::StoreCrash => Some(Fault::StoreCrash),
            LiveFault::Collisions => Some(Fault::Collisions),
            LiveFault::LongStreams => Some(Fault::LongStreams),
            LiveFault::Disconnect => None,
        }
    }

    /// True when a live run injects it unless `--faults` says otherwise:
    /// every fault the store supports except `collisions` and
    /// `long-streams`, which shape the workload rather than break things
    /// (keys sharing streams answer mostly `DedupCollision`; reads of a long
    /// live stream in batches of 1-4 take thousands of calls).
    #[must_use]
    pub fn by_default(self, store: StoreKind) -> bool {
        self.supported_by(store) && !matches!(self, LiveFault::Collisions | LiveFault::LongStreams)
    }

    /// The faults a live run against `store` injects by default.
    #[must_use]
    pub fn defaults(store: StoreKind) -> Vec<LiveFault> {
        LiveFault::ALL
            .into_iter()
            .filter(|fault| fault.by_default(store))
            .collect()
    }

    /// True when live mode can inject it against `store`.
    #[must_use]
    pub fn supported_by(self, store: StoreKind) -> bool {
        match self {
            LiveFault::StoreCrash => store != StoreKind::Memory,
            LiveFault::Disconnect => store == StoreKind::Postgres,
            _ => true,
        }
    }

    /// Parses a live fault's name.
    #[must_use]
    pub fn parse(name: &str) -> Option<LiveFault> {
        LiveFault::ALL
            .into_iter()
            .find(|fault| fault.name() == name)
    }
}

/// A mistake live mode plants on purpose (`--plant`), to show that the
/// checker catches what it is there to catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Plant {
    /// The store acknowledges some claim appends without applying them.
    DropAppends,
    /// Reads return completed entries with a receipt of the same key that
    /// nobody stored.
    ForgeReceipts,
    /// Reads return completed entries with a receipt of another key.
    SwapReceipts,
    /// The memory store crashes now and then and comes back empty, though
    /// it promised its acknowledged appends would stay.
    WipeOnCrash,
    /// No sweeper runs: claims whose holder crashed never expire.
    NoSweeper,
    /// Producers deliver messages whose claim they did not win.
    DeliverWithoutClaim,
}

impl Plant {
    /// Every plant, in a fixed order.
    pub const ALL: [Plant; 6] = [
        Plant::DropAppends,
        Plant::ForgeReceipts,
        Plant::SwapReceipts,
        Plant::WipeOnCrash,
        Plant::NoSweeper,
        Plant::DeliverWithoutClaim,
    ];

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Plant::DropAppends => "drop-appends",
            Plant::ForgeReceipts => "forge-receipts",
            Plant::SwapReceipts => "swap-receipts",
            Plant::WipeOnCrash => "wipe-on-crash",
            Plant::NoSweeper => "no-sweeper",
            Plant::DeliverWithoutClaim => "deliver-without-claim",
        }
    }

    /// One line on what it breaks and what must catch it.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            Plant::DropAppends => {
                "the store acknowledges 1 claim append in 4 without applying it (S1, S7, A1)"
            }
            Plant::ForgeReceipts => {
                "reads show completed entries with a receipt nobody stored (S3, S2, S7)"
            }
            Plant::SwapReceipts => "reads show completed entries with another key's receipt (S6)",
            Plant::WipeOnCrash => {
                "memory store only: it crashes every second or so and restarts empty (S4)"
            }
            Plant::NoSweeper => "no sweeper: crashed producers' claims never expire (A2)",
            Plant::DeliverWithoutClaim => {
                "producers also deliver when their claim was refused (A1)"
            }
        }
    }

    /// Parses a plant's name.
    pub fn parse(text: &str) -> Result<Plant, String> {
        Plant::ALL
            .into_iter()
            .find(|plant| plant.name() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Plant::ALL.iter().map(|plant| plant.name()).collect();
                format!("unknown plant {text:?}; known: {}", known.join(", "))
            })
    }
}

/// What `live` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveArgs {
    /// `--store`.
    pub store: StoreKind,
    /// `--producers`.
    pub producers: u16,
    /// `--keys`.
    pub keys: u16,
    /// `--duration`: how long the main phase runs.
    pub duration_ms: u64,
    /// `--faults`: `None` means every fault the store supports.
    pub faults: Option<Vec<LiveFault>>,
    /// `--seed`: draws the workload's rates; `None`: from the clock.
    pub seed: Option<u64>,
    /// `--think-ms`: the longest pause of a producer between messages.
    pub think_ms: u64,
    /// `--json`.
    pub json: bool,
    /// `--strict-reads`.
    pub strict_reads: bool,
    /// `--history`: print every key's timeline.
    pub full_history: bool,
    /// `--plant`.
    pub plant: Option<Plant>,
    /// `--postgres-url` (default `ATMOSTONCE_POSTGRES_URL`).
    pub postgres_url: Option<String>,
    /// `--pg-data` (default `$THROWAWAY_POSTGRES_DIR/data`).
    pub pg_data: Option<PathBuf>,
    /// `--pg-bin` (default `$THROWAWAY_POSTGRES_BIN`, else `PATH`).
    pub pg_bin: Option<PathBuf>,
    /// `--path`: haematite's database directory (default: a temporary one).
    pub path: Option<PathBuf>,
}

/// Producers of a live run unless `--producers` says otherwise.
pub const LIVE_DEFAULT_PRODUCERS: u16 = 8;
/// Keys of a live run unless `--keys` says otherwise.
pub const LIVE_DEFAULT_KEYS: u16 = 16;
/// A live run's main phase unless `--duration` says otherwise.
pub const LIVE_DEFAULT_DURATION_MS: u64 = 10_000;
/// The longest think time of a live producer unless `--think-ms` says
/// otherwise: short, so producers overlap on the store, yet with the
/// workload's 1-20 ms deliveries it keeps a run to a few thousand
/// operations per second, which the checker judges in seconds.
pub const LIVE_DEFAULT_THINK_MS: u64 = 20;
/// The longest main phase: an hour's history (a few million operations)
/// is what the checker and the memory of a 24 GiB machine still hold.
pub const LIVE_MAX_DURATION_MS: u64 = 3_600_000;

/// Walks `--flag value` and `--flag=value` arguments.
struct Flags<'a> {
    args: &'a [String],
    index: usize,
    flag: String,
    inline: Option<String>,
}

impl<'a> Flags<'a> {
    fn new(args: &'a [String]) -> Flags<'a> {
        Flags {
            args,
            index: 0,
            flag: String::new(),
            inline: None,
        }
    }

    /// The next flag (with `=value` split off), or `None` at the end.
    fn next_flag(&mut self) -> Option<String> {
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
    fn value(&mut self) -> Result<String, String> {
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

/// Parses `60s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 60s, 500ms, 2m)");
    let (number, unit_ms) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1_000)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60_000)
    } else {
        (text, 1_000)
    };
    let value: u64 = number.trim().parse().map_err(|_| bad())?;
    let duration_ms = value.checked_mul(unit_ms).ok_or_else(bad)?;
    if duration_ms == 0 || duration_ms > LIVE_MAX_DURATION_MS {
        return Err(format!(
            "--duration must be more than 0 and at most {} minutes",
            LIVE_MAX_DURATION_MS / 60_000
        ));
    }
    Ok(duration_ms)
}

/// Parses live mode's `--faults` for `store`: `all` is every fault the
/// store supports.
fn parse_live_faults(text: &str, store: StoreKind) -> Result<Vec<LiveFault>, String> {
    let mut faults: Vec<LiveFault> = Vec::new();
    let mut parts = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty());
    match parts.next() {
        Some("all") => faults.extend(
            LiveFault::ALL
                .into_iter()
                .filter(|fault| fault.supported_by(store)),
        ),
        Some("none") => faults.push(LiveFault::Contention),
        Some(first) => {
            let name = first.strip_prefix('+').unwrap_or(first);
            faults.push(LiveFault::parse(name).ok_or_else(|| unknown_live_fault(name))?);
        }
        None => return Err("--faults needs a value: all, none or a list".into()),
    }
    for part in parts {
        let (remove, name) = match part.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let fault = LiveFault::parse(name).ok_or_else(|| unknown_live_fault(name))?;
        faults.retain(|other| *other != fault);
        if !remove {
            faults.push(fault);
        }
    }
    faults.sort_unstable();
    faults.dedup();
    Ok(faults)
}

fn unknown_live_fault(name: &str) -> String {
    let known: Vec<&str> = LiveFault::ALL.iter().map(|fault| fault.name()).collect();
    format!("unknown live fault {name:?}; known: {}", known.join(", "))
}

fn parse_live(args: &[String]) -> Result<LiveArgs, String> {
    let mut live = LiveArgs {
        store: StoreKind::Memory,
        producers: LIVE_DEFAULT_PRODUCERS,
        keys: LIVE_DEFAULT_KEYS,
        duration_ms: LIVE_DEFAULT_DURATION_MS,
        faults: None,
        seed: None,
        think_ms: LIVE_DEFAULT_THINK_MS,
        json: false,
        strict_reads: false,
        full_history: false,
        plant: None,
        postgres_url: None,
        pg_data: None,
        pg_bin: None,
        path: None,
    };
    let mut faults = None;
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        let flag = flag.as_str();
        let mut value = || flags.value();
        match flag {
            "--store" => live.store = StoreKind::parse(&value()?)?,
            "--producers" => live.producers = parse_number(flag, &value()?)?,
            "--keys" => live.keys = parse_number(flag, &value()?)?,
            "--duration" => live.duration_ms = parse_duration_ms(&value()?)?,
            "--faults" => faults = Some(value()?),
            "--seed" => live.seed = Some(parse_seed(&value()?)?),
            "--think-ms" => live.think_ms = parse_number(flag, &value()?)?,
            "--json" => live.json = true,
            "--strict-reads" => live.strict_reads = true,
            "--history" => live.full_history = true,
            "--plant" => live.plant = Some(Plant::parse(&value()?)?),
            "--postgres-url" => live.postgres_url = Some(value()?),
            "--pg-data" => live.pg_data = Some(PathBuf::from(value()?)),
            "--pg-bin" => live.pg_bin = Some(PathBuf::from(value()?)),
            "--path" => live.path = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "unknown argument {other:?} for live mode; see `live --help`"
                ));
            }
        }
    }
    if let Some(text) = faults {
        live.faults = Some(parse_live_faults(&text, live.store)?);
    }
    if live.producers == 0 || live.producers > crate::config::MAX_PRODUCERS {
        return Err(format!(
            "--producers must be 1..={}",
            crate::config::MAX_PRODUCERS
        ));
    }
    if live.keys == 0 || live.keys > crate::config::MAX_KEYS {
        return Err(format!("--keys must be 1..={}", crate::config::MAX_KEYS));
    }
    if live.think_ms > MAX_THINK_MS {
        return Err(format!("--think-ms must be at most {MAX_THINK_MS}"));
    }
    if let Some(fault) = live
        .faults
        .iter()
        .flatten()
        .find(|fault| !fault.supported_by(live.store))
    {
        return Err(format!(
            "live mode cannot inject {} into the {} store",
            fault.name(),
            live.store.name()
        ));
    }
    if live.plant == Some(Plant::WipeOnCrash) && live.store != StoreKind::Memory {
        return Err("--plant wipe-on-crash goes with --store memory".into());
    }
    if live.path.is_some() && live.store != StoreKind::Haematite {
        return Err("--path goes with --store haematite".into());
    }
    Ok(live)
}

/// The longest think time `--think-ms` accepts: a producer thinking longer
/// than a minute between messages no longer exercises the store.
pub const MAX_THINK_MS: u64 = 60_000;

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
    match args.first().map(String::as_str) {
        Some("live") => {
            if args[1..].iter().any(|arg| arg == "-h" || arg == "--help") {
                return Ok(cli);
            }
            cli.mode = Mode::Live(parse_live(&args[1..])?);
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
    let faults: Vec<String> = Fault::ALL
        .iter()
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
    fn live_mode_parses_its_flags_and_refuses_faults_its_store_lacks() {
        let cli = parse(&args(
            "live --store haematite --producers 4 --keys 3 --duration 90s --faults none,store-crash \
             --seed 0x10 --think-ms 5 --json --plant drop-appends",
        ))
        .unwrap();
        let Mode::Live(live) = cli.mode else {
            panic!("not live mode: {:?}", cli.mode)
        };
        assert_eq!(live.store, StoreKind::Haematite);
        assert_eq!((live.producers, live.keys), (4, 3));
        assert_eq!(live.duration_ms, 90_000);
        assert_eq!(
            live.faults,
            Some(vec![LiveFault::Contention, LiveFault::StoreCrash])
        );
        assert_eq!((live.seed, live.think_ms, live.json), (Some(16), 5, true));
        assert_eq!(live.plant, Some(Plant::DropAppends));
        assert!(parse(&args("live --store memory --faults none,store-crash")).is_err());
        assert!(parse(&args("live --store haematite --faults disconnect")).is_err());
        assert!(parse(&args("live --store sqlite")).is_err());
        assert!(parse(&args("live --store postgres --plant wipe-on-crash")).is_err());
        let Mode::Live(all) = parse(&args("live --faults all,-latency --store postgres"))
            .unwrap()
            .mode
        else {
            panic!("not live mode")
        };
        let all = all.faults.unwrap();
        assert!(all.contains(&LiveFault::Disconnect) && !all.contains(&LiveFault::Latency));
    }

    #[test]
    fn a_duration_parses_in_seconds_milliseconds_and_minutes() {
        assert_eq!(parse_duration_ms("60s"), Ok(60_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("7"), Ok(7_000));
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("2h").is_err());
        assert!(parse_duration_ms("61m").is_err());
    }

    #[test]
    fn the_default_live_faults_are_what_each_store_supports_but_the_workload_shapers() {
        assert_eq!(
            LiveFault::defaults(StoreKind::Memory),
            vec![
                LiveFault::Contention,
                LiveFault::Latency,
                LiveFault::ProducerCrash,
                LiveFault::ClockSkew
            ]
        );
        let postgres = LiveFault::defaults(StoreKind::Postgres);
        assert!(postgres.contains(&LiveFault::StoreCrash));
        assert!(postgres.contains(&LiveFault::Disconnect));
        assert!(!postgres.contains(&LiveFault::Collisions));
    }

    #[test]
    fn each_build_names_the_command_for_the_mode_it_lacks() {
        assert!(ordinary_build_notice().contains("cargo sim -- "));
        assert!(madsim_build_notice().contains("cargo run -p atmostonce-sim --release -- live"));
        assert_eq!(parse(&args("live --help")).unwrap().mode, Mode::Help);
        assert_eq!(
            parse(&args("live-server --path /tmp/db")).unwrap().mode,
            Mode::LiveServer {
                path: PathBuf::from("/tmp/db")
            }
        );
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
            "--store",
            "--duration",
            "--think-ms",
            "--plant",
            "--postgres-url",
            "--pg-data",
            "--pg-bin",
            "--path",
        ] {
            assert!(help.contains(flag), "help lacks {flag}");
        }
        for fault in Fault::ALL {
            assert!(help.contains(fault.name()), "help lacks {fault}");
        }
        for fault in LiveFault::ALL {
            assert!(help.contains(fault.name()), "help lacks {}", fault.name());
        }
        for plant in Plant::ALL {
            assert!(help.contains(plant.name()), "help lacks {}", plant.name());
        }
    }
}
