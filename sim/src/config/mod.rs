//! What a run is made of: the faults (`docs/spec.md`, "Fault model"), their rates, the
//! workload's shape and timing. A [`Config`] is fully explicit, so a replay
//! file can pin one; in a sweep each seed draws its own from a [`FaultSpec`].

use std::fmt;

use serde::{Deserialize, Serialize};

use atmostonce_verify::faults::Tool;
/// The faults, their names and meanings, and sets of them: the one fault
/// vocabulary of the harness (`atmostonce_verify::faults`).
pub use atmostonce_verify::faults::{Fault, FaultSet};

/// The faults the simulator injects, in the vocabulary's order.
pub fn simulator_faults() -> impl Iterator<Item = Fault> {
    Fault::ALL
        .into_iter()
        .filter(|fault| fault.supported_by(Tool::Simulator))
}

/// Faults added after seeds were recorded in `sim/regressions.toml`: their
/// swarm coins and rates come from a side stream (see [`Config::draw`]), so
/// that adding one leaves every other draw of an old seed as it was.
pub const LATE_FAULTS: [Fault; 1] = [Fault::Compaction];

/// The faults whose swarm coins [`Config::draw`] draws from the seed's own
/// stream, one each in this fixed order: the simulator's faults but
/// [`LATE_FAULTS`].
fn early_faults() -> impl Iterator<Item = Fault> {
    simulator_faults().filter(|fault| !LATE_FAULTS.contains(fault))
}

/// What `--faults` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultSpec {
    /// Each seed enables a random subset of this pool.
    Swarm(FaultSet),
    /// Every seed enables exactly these (rates still drawn per seed).
    Exact(FaultSet),
}

impl FaultSpec {
    /// Parses a `--faults` value by the vocabulary's one grammar
    /// (`atmostonce_verify::faults::FaultSpec::parse`): `swarm`, `all` (or
    /// `standard`), `none` or a comma-separated list of fault names, each
    /// optionally prefixed by `-` (remove) or `+` (add), after an optional
    /// leading `swarm`/`all`/`none`; `indeterminate` stands for
    /// `error-applied,error-lost`. A fault the simulator cannot inject is
    /// refused with the tools that can.
    ///
    /// The simulator's `none` keeps contention: it is the workload's shape
    /// (a few hot keys) more than a fault, so `none` is "no fault, the
    /// usual races"; `none,-contention` (or `-contention`) is no fault at
    /// all.
    pub fn parse(text: &str) -> Result<FaultSpec, String> {
        let mut parts: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect();
        if parts.first() == Some(&"none") {
            parts.insert(1, "+contention");
        }
        let text = parts.join(",");
        let spec = atmostonce_verify::faults::FaultSpec::parse(&text, Tool::Simulator)?;
        Ok(if spec.swarm {
            FaultSpec::Swarm(spec.set)
        } else {
            FaultSpec::Exact(spec.set)
        })
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = FaultSet::all_for(Tool::Simulator);
        match self {
            FaultSpec::Swarm(set) if *set == all => f.write_str("swarm"),
            FaultSpec::Swarm(set) => {
                let mut text = String::from("swarm");
                for fault in all.0.difference(&set.0) {
                    text.push_str(&format!(",-{fault}"));
                }
                for fault in set.0.difference(&all.0) {
                    text.push_str(&format!(",{fault}"));
                }
                f.write_str(&text)
            }
            FaultSpec::Exact(set) if set.0.is_empty() => f.write_str("-contention"),
            FaultSpec::Exact(set) => write!(f, "{set}"),
        }
    }
}

/// The engine API the producers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// The seed-compatible API: `claim_or_get`, `complete_receipt_at`,
    /// `release_claim_at`, `lookup`, `DedupSweeper::sweep_once`.
    Seed,
    /// The fenced API (`atmostonce::fenced`): `claim` /
    /// `claim_with_fingerprint`, `complete`, `release`, `renew`, `lookup`
    /// with claim tokens, `FencedSweeper::sweep_once`, and a downstream
    /// that refuses stale fences. The default.
    Fenced,
}

impl Api {
    /// Parses `seed` or `fenced`.
    pub fn parse(text: &str) -> Result<Api, String> {
        match text {
            "seed" => Ok(Api::Seed),
            "fenced" => Ok(Api::Fenced),
            other => Err(format!(
                "unknown API {other:?}; the APIs are `fenced` (the engine's own, the default) \
                 and `seed` (the seed-compatible one)"
            )),
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Api::Seed => f.write_str("seed"),
            Api::Fenced => f.write_str("fenced"),
        }
    }
}

/// The size of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Producer nodes.
    pub producers: u16,
    /// Idempotency keys.
    pub keys: u16,
    /// Engine operations invoked by producers in all (claims, completions,
    /// releases, lookups), shared out evenly.
    pub ops: u32,
    /// Per mille of messages that carry a fresh key (`--fresh-keys`): a
    /// key after the workload's `keys`, claimed once, then completed or
    /// released, never picked again ([`Config::fresh_keys`] of them). 0
    /// (the default) is the workload's keys only.
    #[serde(default)]
    pub fresh_pm: u32,
}

impl Shape {
    /// The standard scenario: 8 producers, 16 keys, 400 operations.
    pub const STANDARD: Shape = Shape {
        producers: 8,
        keys: 16,
        ops: 400,
        fresh_pm: 0,
    };
}

/// Most producers a run may have: producer ids are `u16` and each is a
/// madsim node; 256 is far past where more producers find new interleavings.
pub const MAX_PRODUCERS: u16 = 256;
/// Most keys a run may have: the checker's cost grows with ops per key, and
/// keys are named by a `u16`.
pub const MAX_KEYS: u16 = 4096;
/// Most operations a run may invoke: bounds the history's memory and the
/// checker's time per seed.
pub const MAX_OPS: u32 = 1_000_000;

/// Every rate and timing of one run. Probabilities are per mille.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// The engine API under test.
    pub api: Api,
    /// Workload size.
    pub shape: Shape,
    /// The faults enabled.
    pub faults: FaultSet,
    /// Entry time-to-live.
    pub ttl_ms: u64,
    /// How often the sweeper runs.
    pub sweep_interval_ms: u64,
    /// Hash bits of stream names (64 unless `collisions`).
    pub hash_bits: u8,
    /// The seed API's read batch, and the streams per page of a fenced
    /// sweep (256 unless `long-streams`: then 1-3, so sweeps take many
    /// pages and their cursor crosses pages while producers write).
    pub read_batch: usize,
    /// Hot keys and the share of picks they get (`contention`).
    pub hot_keys: u16,
    /// Per mille of key picks that go to the hot keys.
    pub hot_pm: u32,
    /// Extra store delay: chance per call and the largest extra (`latency`).
    pub latency_pm: u32,
    /// Largest extra delay of a store call, in milliseconds.
    pub latency_max_ms: u64,
    /// Chance that an append or flush takes effect but answers an error.
    pub error_applied_pm: u32,
    /// Chance that a store call fails without taking effect.
    pub error_lost_pm: u32,
    /// Chance that a read or scan is served from an older snapshot.
    pub stale_pm: u32,
    /// Mean time between producer crashes (0: never).
    pub producer_crash_every_ms: u64,
    /// Mean time between store crashes.
    pub store_crash_every_ms: u64,
    /// Mean time between record corruptions.
    pub corruption_every_ms: u64,
    /// Largest difference between two nodes' clocks (`clock-skew`).
    pub max_skew_ms: u64,
    /// Mean time between clock jumps.
    pub clock_jump_every_ms: u64,
    /// Mean time between producer pauses longer than the TTL (`pause`).
    pub pause_every_ms: u64,
    /// Longest think time between two messages of a producer.
    pub think_max_ms: u64,
    /// Chance that a delivery fails (the producer then releases).
    pub delivery_failure_pm: u32,
    /// Chance that a producer looks a key up before claiming it.
    pub lookup_pm: u32,
    /// Chance that, after completing a message, a producer sends the
    /// engine a duplicate notification for it: a release (a failure report
    /// that arrives late) or a completion with other receipt bytes (a
    /// client that processed a duplicate). The engine must answer both
    /// without touching the stored receipt.
    pub echo_pm: u32,
    /// Mean time between the janitor's compactions (`compaction`; 0:
    /// none). Absent in replay files written before the fault existed.
    #[serde(default)]
    pub compact_every_ms: u64,
    /// How many fresh keys the run has (`shape.fresh_pm`; they follow the
    /// workload's keys; once all are used, messages go to the workload's
    /// keys).
    #[serde(default)]
    pub fresh_keys: u16,
}

/// A source of seed-derived randomness: madsim's RNG in the simulation, a
/// fixed generator in tests.
pub trait Draw {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// A number in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        // The whole of u64 has no span that fits in one.
        let Some(span) = (high - low).checked_add(1) else {
            return self.next_u64();
        };
        low + self.next_u64() % span
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u32) -> bool {
        self.range(0, 999) < u64::from(per_mille)
    }

    /// A time around `mean_ms` (uniform on `[mean/2, 3*mean/2]`).
    fn around(&mut self, mean_ms: u64) -> u64 {
        self.range(mean_ms / 2, mean_ms + mean_ms / 2).max(1)
    }
}

/// A [`Draw`] that folds every value it hands out into `fold`, to seed a
/// side stream with what was drawn (see [`Config::draw`]).
struct Folded<'a, D> {
    inner: &'a mut D,
    fold: u64,
}

impl<D: Draw> Draw for Folded<'_, D> {
    fn next_u64(&mut self) -> u64 {
        let value = self.inner.next_u64();
        self.fold = (self.fold ^ value)
            .rotate_left(23)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        value
    }
}

/// SplitMix64: a tiny deterministic generator for tests and for anything
/// drawn outside a simulation.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl Draw for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Config {
    /// Draws a configuration: which faults (a random half of the pool in
    /// swarm mode), their rates, and the timings.
    ///
    /// It always consumes the same amount of randomness, whatever the spec:
    /// every value is drawn, then the ones of faults that are off are
    /// zeroed. So a run whose configuration is given exactly (a replay, a
    /// shrink candidate) can consume the same draws and follow the very
    /// schedule of the run its configuration was drawn in.
    ///
    /// The coins and rates of [`LATE_FAULTS`] consume nothing of `rng`:
    /// they come from a [`SplitMix`] seeded with every value `rng` gave, so
    /// they are the seed's as much as the others, and an old seed draws
    /// every other fault and rate as it did before they existed.
    pub fn draw(api: Api, shape: Shape, spec: &FaultSpec, rng: &mut impl Draw) -> Config {
        let mut rng = Folded {
            inner: rng,
            fold: 0,
        };
        let mut config = Config::draw_early(api, shape, spec, &mut rng);
        let mut late = SplitMix(rng.fold);
        let coins: Vec<(Fault, bool)> = LATE_FAULTS
            .into_iter()
            .map(|fault| (fault, late.chance(500)))
            .collect();
        // The seed API reads a stream from sequence 0 and answers
        // `StoreError` for one compacted below its head (it never compacts):
        // a janitor only takes its liveness (A2), so its swarm leaves
        // `compaction` out; `all` or the name still bring it in.
        if let FaultSpec::Swarm(pool) = spec {
            for (fault, coin) in coins {
                if coin && pool.has(fault) && (fault != Fault::Compaction || api == Api::Fenced) {
                    config.faults.0.insert(fault);
                }
            }
        }
        let compact_every_ms = late.range(5, 200);
        if config.faults.has(Fault::Compaction) {
            config.compact_every_ms = compact_every_ms;
        }
        config
    }

    /// Every draw but those of [`LATE_FAULTS`] (see [`Config::draw`]).
    fn draw_early(api: Api, shape: Shape, spec: &FaultSpec, rng: &mut impl Draw) -> Config {
        let coins: Vec<(Fault, bool)> = early_faults()
            .map(|fault| (fault, rng.chance(500)))
            .collect();
        let faults = match spec {
            FaultSpec::Exact(set) => set.clone(),
            FaultSpec::Swarm(pool) => FaultSet(
                coins
                    .iter()
                    .filter(|(fault, coin)| *coin && pool.has(*fault))
                    .map(|(fault, _)| *fault)
                    .collect(),
            ),
        };
        let on = |fault| faults.has(fault);
        let pm = |value: u64| u32::try_from(value).unwrap_or(0);
        let ttl_ms = rng.range(2_000, 4_000);
        let sweep_interval_ms = rng.range(100, 1_000);
        let hot_keys = u16::try_from(rng.range(1, 3)).unwrap_or(1);
        let hot_pm = pm(rng.range(500, 900));
        // 1-3 bits: 2 to 8 streams, so 16 keys always share some.
        let hash_bits = u8::try_from(rng.range(1, 3)).unwrap_or(2);
        let read_batch = usize::try_from(rng.range(1, 4)).unwrap_or(2);
        let latency_pm = pm(rng.range(50, 300));
        let latency_max_ms = rng.range(5, 30);
        let error_applied_pm = pm(rng.range(10, 150));
        let error_lost_pm = pm(rng.range(10, 150));
        let stale_pm = pm(rng.range(20, 300));
        let producer_crash_every_ms = rng.range(300, 3_000);
        let store_crash_every_ms = rng.range(300, 3_000);
        let corruption_every_ms = rng.range(500, 5_000);
        let max_skew_ms = rng.range(50, 600);
        let clock_jump_every_ms = rng.range(200, 2_000);
        let pause_every_ms = rng.range(1_000, 4_000);
        let think_max_ms = rng.range(50, 400);
        let delivery_failure_pm = pm(rng.range(0, 200));
        let lookup_pm = pm(rng.range(0, 200));
        let echo_pm = pm(rng.range(0, 300));
        let when = |fault, value: u64| if on(fault) { value } else { 0 };
        let when_pm = |fault, value: u32| if on(fault) { value } else { 0 };
        Config {
            api,
            shape,
            ttl_ms,
            sweep_interval_ms,
            hash_bits: if on(Fault::Collisions) { hash_bits } else { 64 },
            read_batch: if on(Fault::LongStreams) {
                read_batch
            } else {
                atmostonce::limits::DEFAULT_READ_BATCH
            },
            hot_keys: if on(Fault::Contention) {
                hot_keys.min(shape.keys.max(1))
            } else {
                shape.keys.max(1)
            },
            hot_pm: when_pm(Fault::Contention, hot_pm),
            latency_pm: when_pm(Fault::Latency, latency_pm),
            latency_max_ms: when(Fault::Latency, latency_max_ms),
            error_applied_pm: when_pm(Fault::ErrorApplied, error_applied_pm),
            error_lost_pm: when_pm(Fault::ErrorLost, error_lost_pm),
            stale_pm: when_pm(Fault::StaleReads, stale_pm),
            producer_crash_every_ms: when(Fault::ProducerCrash, producer_crash_every_ms),
            store_crash_every_ms: when(Fault::StoreCrash, store_crash_every_ms),
            corruption_every_ms: when(Fault::Corruption, corruption_every_ms),
            max_skew_ms: when(Fault::ClockSkew, max_skew_ms),
            clock_jump_every_ms: when(Fault::ClockSkew, clock_jump_every_ms),
            pause_every_ms: when(Fault::Pause, pause_every_ms),
            think_max_ms,
            delivery_failure_pm,
            lookup_pm,
            echo_pm,
            compact_every_ms: 0,
            fresh_keys: crate::workload::fresh_keys_for(shape.ops, shape.fresh_pm),
            faults,
        }
    }

    /// Checks the bounds a hand-written (replay) configuration must keep.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(fault) = self
            .faults
            .0
            .iter()
            .find(|fault| !fault.supported_by(Tool::Simulator))
        {
            return Err(format!(
                "fault {fault} is not one the simulator injects; its faults are {}",
                simulator_faults()
                    .map(Fault::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let shape = self.shape;
        if shape.producers == 0 || shape.producers > MAX_PRODUCERS {
            return Err(format!("producers must be 1..={MAX_PRODUCERS}"));
        }
        if shape.keys == 0 || shape.keys > MAX_KEYS {
            return Err(format!("keys must be 1..={MAX_KEYS}"));
        }
        if shape.ops > MAX_OPS {
            return Err(format!("ops must be at most {MAX_OPS}"));
        }
        if shape.fresh_pm > 1000 || self.fresh_keys > crate::workload::MAX_FRESH_KEYS {
            return Err(format!(
                "fresh_pm must be at most 1000 and fresh_keys at most {}",
                crate::workload::MAX_FRESH_KEYS
            ));
        }
        if self.ttl_ms == 0 || self.sweep_interval_ms == 0 {
            return Err("ttl_ms and sweep_interval_ms must be positive".into());
        }
        if self.hash_bits == 0 || self.hash_bits > 64 {
            return Err("hash_bits must be 1..=64".into());
        }
        if self.read_batch == 0 || self.read_batch > atmostonce::limits::MAX_READ_BATCH {
            return Err("read_batch must be 1..=4096".into());
        }
        Ok(())
    }

    /// How long the quiet phase waits so that every entry whose holder is
    /// gone has expired and been swept: TTL + the sweeper's clock-skew grace
    /// + the largest skew + two sweep intervals + a margin.
    #[must_use]
    pub fn quiet_ms(&self) -> u64 {
        /// Slack for the last sweep's own store calls.
        const QUIET_MARGIN_MS: u64 = 500;
        self.ttl_ms
            + atmostonce_verify::oracle::expiry::CLOCK_SKEW_GRACE_MS
            + self.max_skew_ms
            + 2 * self.sweep_interval_ms
            + QUIET_MARGIN_MS
    }

    /// A one-line summary for reports.
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "api={} producers={} keys={} ops={} faults={} ttl={}ms sweep={}ms hash_bits={} \
             read_batch={} hot={}@{}‰ latency={}‰≤{}ms err_applied={}‰ err_lost={}‰ stale={}‰ \
             crash_every={}ms store_crash_every={}ms corrupt_every={}ms skew≤{}ms \
             jump_every={}ms pause_every={}ms think≤{}ms delivery_fail={}‰ lookup={}‰ echo={}‰ \
             compact_every={}ms fresh={}‰ of {} keys",
            self.api,
            self.shape.producers,
            self.shape.keys,
            self.shape.ops,
            self.faults,
            self.ttl_ms,
            self.sweep_interval_ms,
            self.hash_bits,
            self.read_batch,
            self.hot_keys,
            self.hot_pm,
            self.latency_pm,
            self.latency_max_ms,
            self.error_applied_pm,
            self.error_lost_pm,
            self.stale_pm,
            self.producer_crash_every_ms,
            self.store_crash_every_ms,
            self.corruption_every_ms,
            self.max_skew_ms,
            self.clock_jump_every_ms,
            self.pause_every_ms,
            self.think_max_ms,
            self.delivery_failure_pm,
            self.lookup_pm,
            self.echo_pm,
            self.compact_every_ms,
            self.shape.fresh_pm,
            self.fresh_keys,
        )
    }
}

#[cfg(test)]
mod tests;
