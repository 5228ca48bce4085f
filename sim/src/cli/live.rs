//! Live mode's part of the command line: its stores, faults, plants and
//! flags (both builds parse them, so the madsim build can say where live
//! mode runs).

use std::path::PathBuf;

use super::{Flags, parse_number, parse_seed};
use crate::config::{Api, Fault};

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
            Plant::NoSweeper => {
                "no sweeper: crashed producers' claims never expire (A2; with --api seed: a fenced claim takes over an expired one itself)"
            }
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
    /// `--api`: the engine API the producers use.
    pub api: Api,
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

pub(crate) fn parse_live(args: &[String]) -> Result<LiveArgs, String> {
    let mut live = LiveArgs {
        store: StoreKind::Memory,
        producers: LIVE_DEFAULT_PRODUCERS,
        keys: LIVE_DEFAULT_KEYS,
        duration_ms: LIVE_DEFAULT_DURATION_MS,
        faults: None,
        seed: None,
        think_ms: LIVE_DEFAULT_THINK_MS,
        api: Api::Fenced,
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
            "--api" => live.api = Api::parse(&value()?)?,
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
