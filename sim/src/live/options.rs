//! What a live run is asked to do: the store, the configuration drawn from
//! the seed, the real faults and where the store lives.

use std::path::PathBuf;
use std::time::Duration;

use crate::check::CheckOptions;
use crate::cli::{LiveFault, Plant, StoreKind};
use crate::config::{Api, Config, Draw, FaultSet, FaultSpec, Shape, SplitMix};
use crate::workload::MAX_FRESH_KEYS;

/// Mean time between store crashes, drawn in this range per run: a
/// haematite restart (spawn, open, WAL replay) takes a fraction of a
/// second, so every 1-4 s keeps the server down a tenth of the time at
/// most.
const HAEMATITE_CRASH_EVERY_MS: (u64, u64) = (1_000, 4_000);
/// A PostgreSQL crash recovery and start take about a second here: every
/// 3-8 s.
const POSTGRES_CRASH_EVERY_MS: (u64, u64) = (3_000, 8_000);
/// The `wipe-on-crash` plant empties the memory store about every second.
pub(crate) const WIPE_EVERY_MS: u64 = 1_000;
/// How long a crashed server stays down before it is started again.
pub(crate) const STORE_DOWN_MS: (u64, u64) = (20, 300);
/// Mean time between `pg_terminate_backend` rounds, drawn per run.
const DISCONNECT_EVERY_MS: (u64, u64) = (500, 3_000);

/// Where and how to reach PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    /// The server's URL.
    pub url: String,
    /// The cluster's data directory (for `store-crash`).
    pub data: Option<PathBuf>,
    /// The directory holding `pg_ctl` (`None`: `PATH`).
    pub bin: Option<PathBuf>,
}

/// Everything a live run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    /// The store under test.
    pub store: StoreKind,
    /// The workload's shape, timings and fault rates (drawn by
    /// [`LiveOptions::new`] as the simulator draws them).
    pub config: Config,
    /// The faults injected.
    pub faults: Vec<LiveFault>,
    /// How long the main phase runs.
    pub duration: Duration,
    /// The seed the configuration was drawn from.
    pub seed: u64,
    /// Mean time between `pg_terminate_backend` rounds (`disconnect`).
    pub disconnect_every_ms: u64,
    /// Checker strictness.
    pub check: CheckOptions,
    /// A mistake planted on purpose.
    pub plant: Option<Plant>,
    /// This crate's binary, which serves haematite as a child process
    /// (`live-server`).
    pub server_exe: PathBuf,
    /// haematite's database directory (`None`: a temporary one).
    pub haematite_path: Option<PathBuf>,
    /// The PostgreSQL server (for `--store postgres`).
    pub postgres: Option<PostgresTarget>,
}

impl LiveOptions {
    /// Options for a run of `duration` against `store`, the configuration
    /// drawn from `seed` as the simulator draws it for these faults, with
    /// producers thinking at most `think_ms` between messages.
    #[must_use]
    pub fn new(
        store: StoreKind,
        shape: Shape,
        duration: Duration,
        faults: Vec<LiveFault>,
        seed: u64,
        think_ms: u64,
    ) -> LiveOptions {
        let simulated = FaultSet(
            faults
                .iter()
                .filter_map(|fault| fault.simulated())
                .collect(),
        );
        let mut rng = SplitMix(seed);
        let mut config = Config::draw(Api::Seed, shape, &FaultSpec::Exact(simulated), &mut rng);
        config.think_max_ms = think_ms;
        // A live run's operations are not counted in advance: it gets every
        // fresh key it may have.
        config.fresh_keys = if shape.fresh_pm > 0 {
            MAX_FRESH_KEYS
        } else {
            0
        };
        let crash_every = match store {
            StoreKind::Postgres => POSTGRES_CRASH_EVERY_MS,
            _ => HAEMATITE_CRASH_EVERY_MS,
        };
        let crash_every_ms = rng.range(crash_every.0, crash_every.1);
        if faults.contains(&LiveFault::StoreCrash) {
            config.store_crash_every_ms = crash_every_ms;
        }
        let disconnect_every_ms = rng.range(DISCONNECT_EVERY_MS.0, DISCONNECT_EVERY_MS.1);
        LiveOptions {
            store,
            config,
            disconnect_every_ms: if faults.contains(&LiveFault::Disconnect) {
                disconnect_every_ms
            } else {
                0
            },
            faults,
            duration,
            seed,
            check: CheckOptions::default(),
            plant: None,
            server_exe: PathBuf::new(),
            haematite_path: None,
            postgres: None,
        }
    }

    pub(crate) fn has(&self, fault: LiveFault) -> bool {
        self.faults.contains(&fault)
    }
}
