//! What the model explores: producers, keys, the API, the faults and their
//! bounds, and the model's clock.

use std::fmt;

use atmostonce_verify::faults::{
    Fault as VerifyFault, FaultSet as VerifyFaultSet, INDETERMINATE_GROUP,
};
use atmostonce_verify::oracle::expiry;

/// Milliseconds per tick of the model's clock. Producers and the sweeper
/// read `now_millis = tick * TICK_MS`.
pub const TICK_MS: u64 = 2_000;

/// The sweeper's TTL. With the specification's 1000 ms clock-skew grace an entry
/// stamped at tick `t` expires at tick `t + 1`
/// (`(t + 1) * TICK_MS > t * TICK_MS + TTL_MS + 1000`): one tick is "longer
/// than the TTL", the coarsest clock that still separates "within the dedup
/// window" from "after it", which keeps the state space small.
pub const TTL_MS: u64 = 500;

/// The fenced API's claim lease and receipt TTL, both the seed sweeper's
/// [`TTL_MS`]: a claim granted or a receipt stored at tick `t` expires at
/// tick `t + 1` (the lease end plus the 1000 ms grace is below the next
/// tick), so both APIs run on the same clock and the same timing assumption.
pub const LEASE_MS: u64 = TTL_MS;

/// The specification's clock-skew grace (`docs/spec.md`, "Expiry"): an
/// entry expires only once its TTL or lease plus this has passed.
pub const GRACE_MS: u64 = 1_000;

/// How far the sweeper's clock may be off under `clock-skew` when
/// `--skew-ms` is not given: ahead or behind by less than [`GRACE_MS`], the
/// skew the grace is there to absorb.
pub const DEFAULT_SKEW_MS: u64 = 900;

/// The largest `--skew-ms`: below one tick, so that a skewed reading stays
/// between the true tick's neighbours.
pub const MAX_SKEW_MS: u64 = TICK_MS - 1;

/// The last tick the clock reaches. Two ticks are enough for a claim to
/// expire (tick 1) and for the entry written after it to expire too
/// (tick 2); every further tick multiplies the state space.
pub const DEFAULT_MAX_TICK: u8 = 2;

/// Most producers `check` accepts: the state space grows roughly tenfold per
/// producer, and six is already beyond what fits in this machine's memory.
pub const MAX_PRODUCERS: usize = 6;

/// Most keys `check` accepts: every producer handles one message per key,
/// so keys multiply the length of every run.
pub const MAX_KEYS: usize = 3;

/// Most faults of one kind a run may inject. Every fault adds deliveries
/// and windows, whose numbers index `u32` bitmasks per key, and every one
/// multiplies the state space several times over.
pub const MAX_FAULT_BOUND: u8 = 4;

/// Most faults one run may inject in all (`--total-faults`).
pub const MAX_TOTAL_FAULTS: u8 = 16;

/// The total fault budget of `--api fenced` when `--total-faults` is not
/// given. Every witness needs at most one fault of the bounded kinds (and
/// `pause` is not counted, so each of them meets a pause); a total of two
/// multiplied `--faults all` twelvefold (2 producers, ticks 0..=1: 1.3 M
/// states with one, 16.1 M with two), too large for the gate.
pub const FENCED_TOTAL_FAULTS: u8 = 1;

/// The API whose decision logic the model drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// The seed-compatible `claim_or_get` / `complete_receipt_at` /
    /// `release_claim_at` (the engine's `ClaimOp`, `CompleteOp`, `ReleaseOp`).
    Seed,
    /// The fenced `claim` / `complete` / `release` with claim tokens (the
    /// engine's `FencedClaimOp`, `FencedCompleteOp`, `FencedReleaseOp`, and
    /// `FencedSweepOp` as the sweeper), delivering to a fenced downstream.
    Fenced,
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Api::Seed => f.write_str("seed"),
            Api::Fenced => f.write_str("fenced"),
        }
    }
}

/// A fault (or a relaxed assumption) the model may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// A producer crashes at any await point and restarts with no memory
    /// (its message is handed to it again).
    Crash,
    /// The store crashes and restarts, dropping every append not yet made
    /// durable by a flush.
    StoreCrash,
    /// An append is answered with an error although it was applied, or
    /// without being applied.
    Indeterminate,
    /// A delivery fails, so the producer releases its claim.
    DeliveryFailure,
    /// The timing assumption of A1 is dropped: a producer may pause past the
    /// TTL while it holds a claim.
    Pause,
    /// Distinct keys share one stream (a forced hash collision); needs at
    /// least two keys.
    Collision,
    /// The sweeper's clock is off: a pass reads the clock ahead of or
    /// behind the true time by [`Config::skew_ms`] (fenced API).
    ClockSkew,
    /// A read, head read or scan is served from an older view of the
    /// store, missing each stream's newest entry (fenced API).
    StaleReads,
    /// A janitor apart from the sweeper compacts a stream below any
    /// sequence up to its head's, racing every operation (the table never
    /// removes a stream's last durable entry).
    Compaction,
    /// A stored record is damaged: its last byte cut off, or one bit of
    /// it flipped (in the receipt, if it holds one).
    Corruption,
}

impl Fault {
    /// Every fault, in display order.
    pub const ALL: [Fault; 10] = [
        Fault::Crash,
        Fault::StoreCrash,
        Fault::Indeterminate,
        Fault::DeliveryFailure,
        Fault::Pause,
        Fault::Collision,
        Fault::ClockSkew,
        Fault::StaleReads,
        Fault::Compaction,
        Fault::Corruption,
    ];

    /// The name `--faults` knows it by, in the harness's one fault
    /// vocabulary (`atmostonce_verify::faults`): the name of the one fault
    /// it stands for, or `indeterminate` for both error faults.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self.vocabulary() {
            [one] => one.name(),
            _ => INDETERMINATE_GROUP,
        }
    }

    /// The faults of the harness's vocabulary this model fault injects.
    /// The model's indeterminate append takes both branches (applied and
    /// not applied), so it is `error-applied` and `error-lost` at once.
    #[must_use]
    pub fn vocabulary(self) -> &'static [VerifyFault] {
        match self {
            Fault::Crash => &[VerifyFault::ProducerCrash],
            Fault::StoreCrash => &[VerifyFault::StoreCrash],
            Fault::Indeterminate => &VerifyFault::INDETERMINATE,
            Fault::DeliveryFailure => &[VerifyFault::DeliveryFailure],
            Fault::Pause => &[VerifyFault::Pause],
            Fault::Collision => &[VerifyFault::Collisions],
            Fault::ClockSkew => &[VerifyFault::ClockSkew],
            Fault::StaleReads => &[VerifyFault::StaleReads],
            Fault::Compaction => &[VerifyFault::Compaction],
            Fault::Corruption => &[VerifyFault::Corruption],
        }
    }

    /// True when a run's `--total-faults` counts this fault. `pause` and
    /// `collision` are not counted (as before), nor is `compaction`: a
    /// compaction changes no answer by itself (it removes only records
    /// below a head, which no decision reads); what it must be checked
    /// against is the one read below a head, an indeterminate append's
    /// probe, so it has to meet another fault of the run.
    #[must_use]
    pub fn counted(self) -> bool {
        !matches!(self, Fault::Pause | Fault::Collision | Fault::Compaction)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FaultSet(u16);

impl FaultSet {
    /// No fault.
    #[must_use]
    pub fn none() -> FaultSet {
        FaultSet(0)
    }

    /// The standard configuration's faults: everything except `pause`
    /// (which drops A1's timing assumption) and `collision` (which needs
    /// two keys).
    #[must_use]
    pub fn standard() -> FaultSet {
        FaultSet::none()
            .with(Fault::Crash)
            .with(Fault::StoreCrash)
            .with(Fault::Indeterminate)
            .with(Fault::DeliveryFailure)
    }

    /// This set plus `fault`.
    #[must_use]
    pub fn with(self, fault: Fault) -> FaultSet {
        FaultSet(self.0 | fault.bit())
    }

    /// This set without `fault`.
    #[must_use]
    pub fn without(self, fault: Fault) -> FaultSet {
        FaultSet(self.0 & !fault.bit())
    }

    /// True when `fault` is in the set.
    #[must_use]
    pub fn contains(self, fault: Fault) -> bool {
        self.0 & fault.bit() != 0
    }

    /// The model's faults for a set in the harness's vocabulary (a parsed
    /// `--faults`, `atmostonce_verify::faults::FaultSpec`). A fault the
    /// model cannot inject, or one error fault without the other, is an
    /// error that says so.
    pub fn from_vocabulary(faults: &VerifyFaultSet) -> Result<FaultSet, String> {
        let mut set = FaultSet::none();
        for fault in Fault::ALL {
            let wanted = fault.vocabulary();
            let present = wanted.iter().filter(|f| faults.has(**f)).count();
            if present == wanted.len() {
                set = set.with(fault);
            } else if present > 0 {
                return Err(format!(
                    "the model injects {} only together (an append answered with an \
                     error, applied or not): name both, or {INDETERMINATE_GROUP}",
                    wanted
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
        }
        if let Some(other) = faults
            .0
            .iter()
            .find(|f| !Fault::ALL.iter().any(|m| m.vocabulary().contains(f)))
        {
            return Err(format!(
                "fault {:?} is not supported by the model",
                other.name()
            ));
        }
        Ok(set)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Fault::ALL
            .into_iter()
            .filter(|fault| self.contains(*fault))
            .map(Fault::name)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// How many faults of each kind one run may inject (when the fault is on),
/// and how far the clock goes. Bounds make the state space finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Producer crashes per run.
    pub producer_crashes: u8,
    /// Store crashes per run.
    pub store_crashes: u8,
    /// Indeterminate append answers per run.
    pub indeterminate_appends: u8,
    /// Failed deliveries per run.
    pub delivery_failures: u8,
    /// Pauses per run (with the `pause` fault): producers whose live claim
    /// a tick expires while they acquire or hold it (one tick overtaking
    /// two such producers is two pauses).
    pub pauses: u8,
    /// Sweep passes on a skewed clock per run (with `clock-skew`).
    pub clock_skews: u8,
    /// Reads served from an older view per run (with `stale-reads`).
    pub stale_reads: u8,
    /// The janitor's compactions per run (with `compaction`).
    pub compactions: u8,
    /// Records damaged per run (with `corruption`).
    pub corruptions: u8,
    /// The last tick of the clock.
    pub max_tick: u8,
    /// Faults of the kinds above but pauses and compactions (see
    /// [`Fault::counted`]) that one run may inject in all (`None`: only
    /// the per-kind bounds). A bound on the runs explored,
    /// like the per-kind ones, not a reduction: a run with more faults is
    /// not explored.
    pub total_faults: Option<u8>,
}

impl Default for Bounds {
    /// One fault of each kind: enough to reach every branch the faults
    /// open (each witness needs at most one), small enough to check the
    /// standard configuration in well under a minute.
    fn default() -> Self {
        Bounds {
            producer_crashes: 1,
            store_crashes: 1,
            indeterminate_appends: 1,
            delivery_failures: 1,
            pauses: 1,
            clock_skews: 1,
            stale_reads: 1,
            compactions: 1,
            corruptions: 1,
            max_tick: DEFAULT_MAX_TICK,
            total_faults: None,
        }
    }
}

/// One configuration of the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    /// Concurrent producers, each with one message per key.
    pub producers: usize,
    /// Idempotency keys.
    pub keys: usize,
    /// The API the producers use.
    pub api: Api,
    /// The faults that may happen.
    pub faults: FaultSet,
    /// Their bounds.
    pub bounds: Bounds,
    /// Fenced: leave out clock ticks that would change nothing (see
    /// `DedupModel::tick_is_idle`), a sound reduction; off only to compare
    /// verdicts with and without it.
    pub skip_idle_ticks: bool,
    /// How far the sweeper's clock is off under `clock-skew`, in ms (either
    /// way). Below [`GRACE_MS`] the grace absorbs it; at or above it is
    /// the scenario "clock skew beyond the grace".
    pub skew_ms: u64,
}

impl Config {
    /// The standard configuration: 3 producers, 1 key, the seed API, every
    /// fault but `pause` and `collision`, one of each.
    #[must_use]
    pub fn standard() -> Config {
        Config {
            producers: 3,
            keys: 1,
            api: Api::Seed,
            faults: FaultSet::standard(),
            bounds: Bounds::default(),
            skip_idle_ticks: true,
            skew_ms: DEFAULT_SKEW_MS,
        }
    }

    /// Checks the configuration's numbers are within the model's limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.producers == 0 || self.producers > MAX_PRODUCERS {
            return Err(format!(
                "--producers must be between 1 and {MAX_PRODUCERS}, not {}",
                self.producers
            ));
        }
        if self.keys == 0 || self.keys > MAX_KEYS {
            return Err(format!(
                "--keys must be between 1 and {MAX_KEYS}, not {}",
                self.keys
            ));
        }
        for fault in Fault::ALL {
            if let Some(reason) = self.inapplicable(fault)
                && self.faults.contains(fault)
            {
                return Err(format!(
                    "fault {:?} is not applicable: it {reason}",
                    fault.name()
                ));
            }
        }
        if self.skew_ms == 0 || self.skew_ms > MAX_SKEW_MS {
            return Err(format!(
                "--skew-ms must be between 1 and {MAX_SKEW_MS}, not {}",
                self.skew_ms
            ));
        }
        let b = self.bounds;
        if b.total_faults
            .is_some_and(|total| total == 0 || total > MAX_TOTAL_FAULTS)
        {
            return Err(format!(
                "--total-faults must be between 1 and {MAX_TOTAL_FAULTS}"
            ));
        }
        for bound in [
            b.producer_crashes,
            b.store_crashes,
            b.indeterminate_appends,
            b.delivery_failures,
            b.pauses,
            b.clock_skews,
            b.stale_reads,
            b.compactions,
            b.corruptions,
        ] {
            if bound > MAX_FAULT_BOUND {
                return Err(format!("fault bounds are at most {MAX_FAULT_BOUND}"));
            }
        }
        Ok(())
    }

    /// Why `fault` cannot happen in this configuration (whether or not it
    /// is on), or `None` when it can: a collision needs two keys to share a
    /// stream.
    #[must_use]
    pub fn inapplicable(&self, fault: Fault) -> Option<&'static str> {
        match fault {
            Fault::Collision if self.keys < 2 => Some("needs --keys 2+"),
            Fault::ClockSkew | Fault::StaleReads if self.api == Api::Seed => {
                Some("needs --api fenced")
            }
            _ => None,
        }
    }

    /// The bound of `fault` in this configuration (0 when it is off).
    #[must_use]
    pub fn budget(&self, fault: Fault) -> u8 {
        if !self.faults.contains(fault) {
            return 0;
        }
        match fault {
            Fault::Crash => self.bounds.producer_crashes,
            Fault::StoreCrash => self.bounds.store_crashes,
            Fault::Indeterminate => self.bounds.indeterminate_appends,
            Fault::DeliveryFailure => self.bounds.delivery_failures,
            Fault::Pause => self.bounds.pauses,
            Fault::Collision => 1,
            Fault::ClockSkew => self.bounds.clock_skews,
            Fault::StaleReads => self.bounds.stale_reads,
            Fault::Compaction => self.bounds.compactions,
            Fault::Corruption => self.bounds.corruptions,
        }
    }

    /// True when the sweeper's clock may be off by the grace or more (the
    /// scenario "clock skew beyond the grace").
    #[must_use]
    pub fn skew_beyond_grace(&self) -> bool {
        self.faults.contains(Fault::ClockSkew) && self.skew_ms >= GRACE_MS
    }

    /// True when A1's timing assumption holds (no `pause` fault): a
    /// producer finishes with a claim before the claim can expire.
    #[must_use]
    pub fn timing_assumption(&self) -> bool {
        !self.faults.contains(Fault::Pause)
    }

    /// True when an entry stamped at `stamp_ms` has expired at tick `tick`,
    /// by the specification's rule (`docs/spec.md`, "Expiry"), not the
    /// engine's.
    #[must_use]
    pub fn expired_at(stamp_ms: u64, tick: u8) -> bool {
        expiry::is_expired(stamp_ms, TTL_MS, u64::from(tick) * TICK_MS)
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bounds;
        write!(
            f,
            "producers={} keys={} api={} faults={} bounds: crashes={} store-crashes={} \
             indeterminate={} delivery-failures={} pauses={} clock-skews={} (±{}ms) stale-reads={} \
             compactions={} corruptions={} total={} \
             ticks=0..={} (tick={TICK_MS}ms, ttl={TTL_MS}ms) timing-assumption={}",
            self.producers,
            self.keys,
            self.api,
            self.faults,
            self.budget(Fault::Crash),
            self.budget(Fault::StoreCrash),
            self.budget(Fault::Indeterminate),
            self.budget(Fault::DeliveryFailure),
            self.budget(Fault::Pause),
            self.budget(Fault::ClockSkew),
            self.skew_ms,
            self.budget(Fault::StaleReads),
            self.budget(Fault::Compaction),
            self.budget(Fault::Corruption),
            b.total_faults
                .map_or_else(|| "unbounded".to_owned(), |t| t.to_string()),
            b.max_tick,
            if self.timing_assumption() {
                "on"
            } else {
                "off"
            },
        )
    }
}
