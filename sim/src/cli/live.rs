//! Live mode's part of the command line: its stores, faults, plants and
//! flags (both builds parse them, so the madsim build can say where live
//! mode runs).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::error::ErrorKind;
use clap::{Args, ValueEnum};

use super::{help, parse_seed, usage_error};
use crate::config::{Api, Fault, MAX_KEYS, MAX_PRODUCERS};

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

    /// One line on what it is.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            StoreKind::Memory => "MemoryStore in this process",
            StoreKind::Haematite => "HaematiteStore in a child process the run kills",
            StoreKind::Postgres => "PostgresStore on a PostgreSQL server",
        }
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
    /// A janitor compacts a random stream below its head, racing every
    /// operation (haematite's delete-below, PostgreSQL's `DELETE`).
    Compaction,
}

impl LiveFault {
    /// Every live fault, in a fixed order.
    pub const ALL: [LiveFault; 9] = [
        LiveFault::Contention,
        LiveFault::Latency,
        LiveFault::ProducerCrash,
        LiveFault::ClockSkew,
        LiveFault::StoreCrash,
        LiveFault::Disconnect,
        LiveFault::Collisions,
        LiveFault::LongStreams,
        LiveFault::Compaction,
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
            LiveFault::Compaction => "compaction",
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
            LiveFault::LongStreams => {
                "fenced sweeps page over 1-3 streams, so their cursor crosses pages"
            }
            LiveFault::Compaction => {
                "a janitor compacts a random stream below its head every 5-200 ms (mean drawn \
                 per run), through the store's own compact"
            }
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
            LiveFault::Compaction => Some(Fault::Compaction),
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
}

/// Live mode's enums on the command line: their names, meanings and order
/// are the ones above, so help, parsing and completions cannot disagree
/// with the reports.
macro_rules! value_enum_by_name {
    ($($kind:ty),*) => {$(
        impl ValueEnum for $kind {
            fn value_variants<'a>() -> &'a [Self] {
                &<$kind>::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name()).help(self.meaning()))
            }
        }
    )*};
}

value_enum_by_name!(StoreKind, LiveFault, Plant);

/// Live `--faults` as written: where the list starts, then the names added
/// or removed in order. Which faults `all` means depends on the store, so
/// [`LiveFaultList::resolve`] finishes it once the store is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFaultList {
    /// `all` (true) or `none`/a plain list (false: start from nothing but
    /// what the list adds; `none` adds contention).
    all: bool,
    /// `(remove, fault)` in the order written.
    edits: Vec<(bool, LiveFault)>,
}

impl LiveFaultList {
    /// Parses `all`, `none` or a list, each followed by `,NAME` / `,+NAME`
    /// (add) or `,-NAME` (remove). An unknown name is refused with the
    /// known ones.
    pub fn parse(text: &str) -> Result<LiveFaultList, String> {
        let mut parts = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty());
        let mut list = LiveFaultList {
            all: false,
            edits: Vec::new(),
        };
        match parts.next() {
            Some("all") => list.all = true,
            Some("none") => list.edits.push((false, LiveFault::Contention)),
            Some(first) => list.edits.push((false, live_fault(first)?)),
            None => return Err("give all, none or a list of faults".into()),
        }
        for part in parts {
            let edit = match part.strip_prefix('-') {
                Some(name) => (true, live_fault(name)?),
                None => (false, live_fault(part)?),
            };
            list.edits.push(edit);
        }
        Ok(list)
    }

    /// The faults the list names for `store`, sorted.
    #[must_use]
    pub fn resolve(&self, store: StoreKind) -> Vec<LiveFault> {
        let mut faults: Vec<LiveFault> = if self.all {
            LiveFault::ALL
                .into_iter()
                .filter(|fault| fault.supported_by(store))
                .collect()
        } else {
            Vec::new()
        };
        for (remove, fault) in &self.edits {
            faults.retain(|other| other != fault);
            if !remove {
                faults.push(*fault);
            }
        }
        faults.sort_unstable();
        faults
    }
}

fn live_fault(name: &str) -> Result<LiveFault, String> {
    let name = name.strip_prefix('+').unwrap_or(name);
    LiveFault::from_str(name, false).map_err(|_| {
        format!(
            "unknown live fault {name:?}; known: {}",
            help::value_names::<LiveFault>().replace('|', ", ")
        )
    })
}

/// What `live` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LiveArgs {
    /// The store under test.
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    pub store: StoreKind,
    /// Producer tasks.
    #[arg(
        long,
        value_name = "N",
        default_value_t = LIVE_DEFAULT_PRODUCERS,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PRODUCERS))
    )]
    pub producers: u16,
    /// Idempotency keys.
    #[arg(
        long,
        value_name = "K",
        default_value_t = LIVE_DEFAULT_KEYS,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_KEYS))
    )]
    pub keys: u16,
    /// Per mille of messages on fresh keys: besides the K keys, a stream
    /// of fresh ones (up to 60,000 in a run), each claimed once, then
    /// completed or released, and never seen again; storage then grows
    /// with the keys seen, not with the operations (0: none).
    #[arg(
        long = "fresh-keys",
        value_name = "PM",
        default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(..=1000)
    )]
    pub fresh_keys: u32,
    /// The main phase, e.g. 60s, 500ms, 2m, 1m30s (a bare number is
    /// seconds; at most an hour); then the producers finish the message in
    /// hand, faults stop, and the quiet phase (TTL + grace + skew + 2
    /// sweeps) runs before the probe reads every key (A2).
    #[arg(
        long = "duration",
        value_name = "D",
        default_value = "10s",
        value_parser = parse_duration_ms
    )]
    pub duration_ms: u64,
    /// Which faults to inject [default: all but collisions and long-streams].
    #[arg(
        long,
        value_name = "LIST",
        value_parser = LiveFaultList::parse,
        allow_hyphen_values = true,
        long_help = help::live_faults_long_help()
    )]
    pub faults: Option<LiveFaultList>,
    /// Draws the workload's timings and fault rates as the simulator does
    /// [default: from the clock; printed].
    #[arg(long, value_name = "N", value_parser = parse_seed)]
    pub seed: Option<u64>,
    /// The longest pause between a producer's messages, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = LIVE_DEFAULT_THINK_MS,
        value_parser = clap::value_parser!(u64).range(..=MAX_THINK_MS)
    )]
    pub think_ms: u64,
    /// The engine API the producers use, as for the simulator.
    #[arg(long, value_enum, default_value_t = Api::Fenced, env = "ATMOSTONCE_API")]
    pub api: Api,
    /// One JSON summary object instead of the text report; no progress bar.
    #[arg(long)]
    pub json: bool,
    /// As for the simulator: hold stale and dirty read-only answers to
    /// S2/S4/S7 too.
    #[arg(long)]
    pub strict_reads: bool,
    /// Print every key's timeline.
    #[arg(long = "history")]
    pub full_history: bool,
    /// Break something on purpose, to see the checker catch it.
    #[arg(long, value_enum, value_name = "NAME")]
    pub plant: Option<Plant>,
    /// The PostgreSQL server's URL [default: ATMOSTONCE_POSTGRES_URL].
    #[arg(long, value_name = "URL")]
    pub postgres_url: Option<String>,
    /// The PostgreSQL cluster's data directory, for store-crash [default:
    /// $THROWAWAY_POSTGRES_DIR/data].
    #[arg(long, value_name = "DIR")]
    pub pg_data: Option<PathBuf>,
    /// The directory holding pg_ctl [default: $THROWAWAY_POSTGRES_BIN, else
    /// PATH].
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// haematite's database directory [default: a temporary one].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Serve the engine's metrics (docs/metrics.md) for Prometheus at
    /// http://HOST:PORT/metrics during the run.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// With --metrics-addr: keep serving the final metrics this long after
    /// the report (e.g. 15s), so that a scrape sees the run's last counts.
    #[arg(
        long = "metrics-linger",
        value_name = "D",
        value_parser = parse_duration_ms,
        requires = "metrics_addr"
    )]
    pub metrics_linger_ms: Option<u64>,
}

/// Parses `HOST:PORT` (a name is resolved; its first address is taken).
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|error| format!("{text:?} is not a HOST:PORT address: {error}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

impl LiveArgs {
    /// The faults asked for on `store`, or `None` for the store's
    /// defaults. Refuses a fault the store cannot have and flags that go
    /// with another store, naming them.
    pub fn faults(&self) -> Result<Option<Vec<LiveFault>>, clap::Error> {
        let faults = self.faults.as_ref().map(|list| list.resolve(self.store));
        if let Some(fault) = faults
            .iter()
            .flatten()
            .find(|fault| !fault.supported_by(self.store))
        {
            return Err(usage_error(
                ErrorKind::InvalidValue,
                format!(
                    "--faults: live mode cannot inject {} into the {} store",
                    fault.name(),
                    self.store.name()
                ),
            ));
        }
        if self.plant == Some(Plant::WipeOnCrash) && self.store != StoreKind::Memory {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--plant wipe-on-crash goes with --store memory",
            ));
        }
        if self.path.is_some() && self.store != StoreKind::Haematite {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--path goes with --store haematite",
            ));
        }
        Ok(faults)
    }
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
/// The longest think time `--think-ms` accepts: a producer thinking longer
/// than a minute between messages no longer exercises the store.
pub const MAX_THINK_MS: u64 = 60_000;

/// Parses a duration by humantime (`60s`, `500ms`, `2m`, `1m30s`; a bare
/// number is seconds) into milliseconds, more than 0 and at most
/// [`LIVE_MAX_DURATION_MS`].
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let duration = if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        text.parse::<u64>()
            .ok()
            .and_then(|seconds| seconds.checked_mul(1_000))
            .map(std::time::Duration::from_millis)
            .ok_or_else(|| format!("{text:?} is too long a duration"))?
    } else {
        humantime::parse_duration(text)
            .map_err(|error| format!("{text:?} is not a duration (e.g. 60s, 500ms, 2m): {error}"))?
    };
    let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if duration_ms == 0 || duration_ms > LIVE_MAX_DURATION_MS {
        return Err(format!(
            "a live run's main phase must be more than 0 and at most {} minutes",
            LIVE_MAX_DURATION_MS / 60_000
        ));
    }
    Ok(duration_ms)
}
