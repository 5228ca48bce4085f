//! The model's state: the store, each producer, the sweeper, the clock, the
//! fault budgets left, and ghost variables the properties read.

use std::hash::{Hash, Hasher};

use atmostonce::core::fenced::{
    ClaimToken, FencedClaimOp, FencedCompleteOp, FencedReleaseOp, FencedSweepOp,
};
use atmostonce::core::{ClaimOp, CompleteOp, ReleaseOp, SweepOp};
use atmostonce_verify::catalogue::Invariant;

use crate::config::{Fault, LEASE_MS, MAX_KEYS};
use crate::hashed::Hashed;
use crate::store::{ModelStore, Session};

/// How a producer's message for its key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// It delivered and its completion was acknowledged.
    Completed,
    /// It was answered with the stored receipt (a duplicate, not delivered).
    Duplicate,
    /// The engine answered `DedupCollision`; the producer gave up.
    GaveUp,
}

/// The claim a producer holds: when it was stamped and where it sits in
/// the key's stream (as far as the producer's claim operation knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// The claim's TTL anchor.
    pub stamp_ms: u64,
    /// The sequence the claim's append was conditioned on.
    pub seq: u64,
}

/// A fenced claim a producer holds: the engine's token, and the window of
/// the key's stream its claim record lies in (the stretch after the
/// window-th release or expiry), which A1 compares deliveries by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FencedGrant {
    /// The token the claim answered.
    pub token: Hashed<ClaimToken>,
    /// The window of its claim record.
    pub window: u8,
}

/// What a producer is doing. The engine's operation values are held as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// It has a message for its key and will claim it (at the start, after a
    /// restart, after an error or a release).
    Idle,
    /// It was told the key is in flight and will try again later.
    Deferred,
    /// Its `claim_or_get` is running; `append_seq` is the sequence of its
    /// last append (0 before any).
    Claiming {
        /// The engine's claim operation.
        op: Hashed<ClaimOp>,
        /// The sequence its last append was conditioned on.
        append_seq: u64,
        /// Whether one of its appends was applied.
        landed: bool,
    },
    /// It holds the claim and is delivering the message.
    Delivering {
        /// The claim.
        grant: Grant,
    },
    /// It delivered (receipt number `receipt`) and is completing.
    Completing {
        /// The claim.
        grant: Grant,
        /// The receipt's number.
        receipt: u8,
        /// The engine's completion.
        op: Hashed<CompleteOp>,
    },
    /// Its delivery failed and it is releasing the claim.
    Releasing {
        /// The claim.
        grant: Grant,
        /// The engine's release.
        op: Hashed<ReleaseOp>,
    },
    /// Fenced: its `claim` is running.
    FencedClaiming {
        /// The engine's claim operation (its claim id chosen by the model).
        op: Hashed<FencedClaimOp>,
        /// One of its appends was applied but answered with an error: a
        /// grant now is the resolution by claim id.
        resolving: bool,
    },
    /// Fenced: it holds the claim and is delivering with the token's fence.
    FencedDelivering {
        /// The claim.
        grant: FencedGrant,
    },
    /// Fenced: it delivered (receipt number `receipt`) and is completing.
    FencedCompleting {
        /// The claim.
        grant: FencedGrant,
        /// The receipt's number.
        receipt: u8,
        /// The engine's completion.
        op: Hashed<FencedCompleteOp>,
    },
    /// Fenced: its delivery failed or was refused, and it is releasing.
    FencedReleasing {
        /// The claim.
        grant: FencedGrant,
        /// The engine's release.
        op: Hashed<FencedReleaseOp>,
    },
    /// It has handled its message for every key; the last one ended so.
    Done(Outcome),
}

impl Phase {
    /// The stamp of the claim the producer is acquiring or holds, if any:
    /// what A1's timing assumption protects.
    #[must_use]
    pub fn live_claim_stamp(&self) -> Option<u64> {
        match self {
            Phase::Claiming { op, .. } => Some(op.rule().now_millis),
            Phase::Delivering { grant }
            | Phase::Completing { grant, .. }
            | Phase::Releasing { grant, .. } => Some(grant.stamp_ms),
            Phase::FencedClaiming { op, .. } => Some(op.rule().now_millis),
            Phase::FencedDelivering { grant }
            | Phase::FencedCompleting { grant, .. }
            | Phase::FencedReleasing { grant, .. } => {
                Some(grant.token.lease_expires_millis().saturating_sub(LEASE_MS))
            }
            Phase::Idle | Phase::Deferred | Phase::Done(_) => None,
        }
    }

    /// True while an engine operation or a delivery is under way.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.live_claim_stamp().is_some()
    }
}

/// One producer. Producers are interchangeable: nothing in the state refers
/// to a producer by its index, so sorting them is a symmetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Producer {
    /// The index of the key of the message it is handling (it handles one
    /// message per key, in key order).
    pub key: u8,
    /// What it is doing.
    pub phase: Phase,
    /// Its session with the store.
    pub session: Session,
    /// Bit `o`: a message of this producer ended with outcome `o`.
    pub outcomes: u8,
}

/// Four words, whatever the phase: the checker hashes every producer of
/// every state it generates (twice: the state and its representative), and
/// a word at a time is several times cheaper than a field at a time. Equal
/// producers write equal words, as `Hash` requires.
impl Hash for Producer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let grant = |g: &Grant| (g.stamp_ms, g.seq);
        let (tag, small, (a, b), op) = match &self.phase {
            Phase::Idle => (0, 0, (0, 0), 0),
            Phase::Deferred => (1, 0, (0, 0), 0),
            Phase::Claiming {
                op,
                append_seq,
                landed,
            } => (2, u64::from(*landed), (*append_seq, 0), op.hash_value()),
            Phase::Delivering { grant: g } => (3, 0, grant(g), 0),
            Phase::Completing {
                grant: g,
                receipt,
                op,
            } => (4, u64::from(*receipt), grant(g), op.hash_value()),
            Phase::Releasing { grant: g, op } => (5, 0, grant(g), op.hash_value()),
            Phase::Done(outcome) => (6, *outcome as u64, (0, 0), 0),
            Phase::FencedClaiming { op, resolving } => {
                (7, u64::from(*resolving), (0, 0), op.hash_value())
            }
            Phase::FencedDelivering { grant: g } => {
                (8, u64::from(g.window), (g.token.hash_value(), 0), 0)
            }
            Phase::FencedCompleting {
                grant: g,
                receipt,
                op,
            } => (
                9,
                u64::from(g.window),
                (g.token.hash_value(), u64::from(*receipt)),
                op.hash_value(),
            ),
            Phase::FencedReleasing { grant: g, op } => (
                10,
                u64::from(g.window),
                (g.token.hash_value(), 0),
                op.hash_value(),
            ),
        };
        state.write_u64(
            tag | small << 8
                | u64::from(self.key) << 16
                | u64::from(self.outcomes) << 24
                | u64::from(self.session.unflushed) << 32
                | u64::from(self.session.lost) << 33
                | u64::from(self.session.stale) << 34,
        );
        state.write_u64(a);
        state.write_u64(b);
        state.write_u64(op);
    }
}

/// One pass of the sweeper: the API's sweep operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SweepPass {
    /// The seed `DedupSweeper`'s pass.
    Seed(Hashed<SweepOp>),
    /// The `FencedSweeper`'s pass.
    Fenced(Hashed<FencedSweepOp>),
}

impl SweepPass {
    /// The pass's clock reading.
    #[must_use]
    pub fn now_millis(&self) -> u64 {
        match self {
            SweepPass::Seed(op) => op.now_millis(),
            SweepPass::Fenced(op) => op.now_millis(),
        }
    }

    /// The interned operation's hash.
    #[must_use]
    pub fn hash_value(&self) -> u64 {
        match self {
            SweepPass::Seed(op) => op.hash_value(),
            SweepPass::Fenced(op) => op.hash_value(),
        }
    }
}

/// The sweeper: idle, or in the middle of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sweeper {
    /// The pass under way.
    pub op: Option<SweepPass>,
    /// Its session with the store.
    pub session: Session,
}

/// Faults still allowed in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    /// Producer crashes.
    pub crashes: u8,
    /// Store crashes.
    pub store_crashes: u8,
    /// Indeterminate append answers.
    pub indeterminate: u8,
    /// Failed deliveries.
    pub delivery_failures: u8,
    /// Pauses: ticks that expire a claim a live producer is acquiring or
    /// holds (with the `pause` fault; not counted in `total`).
    pub pauses: u8,
    /// Sweep passes on a skewed clock (with `clock-skew`).
    pub skews: u8,
    /// Reads served from an older view (with `stale-reads`).
    pub stale_reads: u8,
    /// The janitor's compactions (with `compaction`; not counted in
    /// `total`, see `Fault::counted`).
    pub compactions: u8,
    /// Damaged records (with `corruption`).
    pub corruptions: u8,
    /// Faults of the kinds above but pauses and compactions, in all
    /// (`u8::MAX` when only the per-kind bounds count: it never runs out).
    pub total: u8,
}

impl Budget {
    /// The faults of `kind` left (0 once `total` has run out for a kind
    /// it counts); `pause` and `collision` have none here.
    #[must_use]
    pub fn left(&self, kind: Fault) -> u8 {
        let left = match kind {
            Fault::Crash => self.crashes,
            Fault::StoreCrash => self.store_crashes,
            Fault::Indeterminate => self.indeterminate,
            Fault::DeliveryFailure => self.delivery_failures,
            Fault::ClockSkew => self.skews,
            Fault::StaleReads => self.stale_reads,
            Fault::Compaction => return self.compactions,
            Fault::Corruption => self.corruptions,
            Fault::Pause | Fault::Collision => 0,
        };
        left.min(self.total)
    }

    /// Spends one fault of `kind`: `None` when none is left.
    pub(crate) fn spend(&mut self, kind: Fault) -> Option<()> {
        if self.left(kind) == 0 {
            return None;
        }
        let left = match kind {
            Fault::Crash => &mut self.crashes,
            Fault::StoreCrash => &mut self.store_crashes,
            Fault::Indeterminate => &mut self.indeterminate,
            Fault::DeliveryFailure => &mut self.delivery_failures,
            Fault::ClockSkew => &mut self.skews,
            Fault::StaleReads => &mut self.stale_reads,
            Fault::Compaction => &mut self.compactions,
            Fault::Corruption => &mut self.corruptions,
            Fault::Pause | Fault::Collision => return None,
        };
        *left -= 1;
        if self.total != u8::MAX && kind.counted() {
            self.total -= 1;
        }
        Some(())
    }
}

/// Ghost variables of one key: what happened, for the properties.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyGhost {
    /// Deliveries so far; delivery `n` stores receipt number `n`.
    pub deliveries: u8,
    /// Bit `w`: a claim was granted whose record lies in window `w` of the
    /// key's stream (the stretch after its `w`-th tombstone). A grant's
    /// window is where its record landed (its linearization point), not
    /// when the answer arrived.
    pub granted_windows: u32,
    /// Deliveries since the key's last tombstone, saturating at 2.
    pub window_deliveries: u8,
    /// Bit `n`: a completion with receipt `n` was started.
    pub attempted: u32,
    /// The receipt of the completion acknowledged in the current window.
    pub acked: Option<u8>,
    /// Fenced: the highest fence the downstream accepted a delivery with
    /// (it refuses a lower one).
    pub sink_fence: Option<u8>,
    /// Fenced: bit `n`: claim id number `n` was appended to the key's
    /// stream (kept across store crashes, which may drop the record but not
    /// what a reader learned of it); a new claim draws an id never appended
    /// and held by no producer (see `DedupModel::fresh_claim_id`).
    pub claim_ids: u16,
    /// Fenced: the length the key's stream must keep: one past the last
    /// acknowledged claim, completion or release (S4).
    pub durable: u8,
}

/// Three words (see `Hash for Producer`).
impl Hash for KeyGhost {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(
            u64::from(self.deliveries)
                | u64::from(self.window_deliveries) << 8
                | u64::from(self.acked.is_some()) << 16
                | u64::from(self.acked.unwrap_or(0)) << 24
                | u64::from(self.granted_windows) << 32,
        );
        state.write_u64(
            u64::from(self.attempted)
                | u64::from(self.sink_fence.is_some()) << 32
                | u64::from(self.sink_fence.unwrap_or(0)) << 33
                | u64::from(self.durable) << 41,
        );
        state.write_u64(u64::from(self.claim_ids));
    }
}

/// The bit of `invariant` in [`State::violations`]. The catalogue's
/// invariants are few (see `Invariant::ALL`); one it might add later that
/// this model does not know counts as the model's own failure
/// (`Invariant::Internal`), never as a pass.
#[must_use]
pub fn violation_bit(invariant: Invariant) -> u16 {
    let index = match invariant {
        Invariant::S1 => 0,
        Invariant::S2 => 1,
        Invariant::S3 => 2,
        Invariant::S4 => 3,
        Invariant::S5 => 4,
        Invariant::S6 => 5,
        Invariant::S7 => 6,
        Invariant::S8 => 7,
        Invariant::A1 => 8,
        Invariant::A2 => 9,
        _ => 10,
    };
    1 << index
}

/// The whole state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The clock, in ticks.
    pub tick: u8,
    /// The store.
    pub store: Hashed<ModelStore>,
    /// The sweeper.
    pub sweeper: Sweeper,
    /// The producers.
    pub producers: Vec<Producer>,
    /// Ghost variables per key (entries past the configuration's keys stay
    /// default). An array, not a `Vec`: the checker clones every state it
    /// expands, and this saves an allocation each time.
    pub keys: [KeyGhost; MAX_KEYS],
    /// Faults left.
    pub budget: Budget,
    /// Invariants a step has seen violated (sticky; the `always`
    /// properties read them).
    pub violations: u16,
    /// Fenced: the [`Event`]s of the step that led to this state (the
    /// witnesses read them; not sticky, so that they split only the states
    /// right after an event).
    pub events: u16,
}

/// A step of the fenced API that a witness needs and the state does not
/// otherwise show, as a bit of [`State::events`] (eight at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A claim whose append was applied but answered with an error was
    /// granted: the re-read found its own claim id at that sequence.
    ResolvedById,
    /// A completion by a token whose claim was no longer current was
    /// refused with `StaleClaim`.
    StaleCompletionRefused,
    /// A release by such a token was refused with `StaleClaim`.
    StaleReleaseRefused,
    /// The fenced downstream refused a delivery with a fence lower than
    /// one it had accepted.
    StaleDeliveryRefused,
    /// A fenced operation's append lost its race (`SequenceConflict`).
    LostRace,
    /// A sweep pass on a skewed clock appended an expiry.
    SkewedExpiry,
    /// The sweeper expired a claim whose lease plus the grace had not
    /// passed by the true clock (only a skew of the grace or more can).
    LeaseCutShort,
    /// A read, head read or scan was served from an older view of the
    /// store that differs from the latest (`stale-reads`).
    StaleReadSeen,
    /// The janitor compacted a stream while an operation or a sweep pass
    /// was under way (`compaction`).
    CompactedUnderOperation,
    /// A one-record read below a head (an indeterminate append's probe)
    /// found the record compacted away: the store answered the first
    /// entry kept, past the sequence asked for.
    ProbeFoundCompacted,
    /// An operation answered `EnvelopeError` naming a damaged record's
    /// stream and sequence (`corruption`).
    CorruptReported,
    /// A fenced sweep pass ended normally, its report naming a key whose
    /// stream holds a damaged head as skipped (`corruption`).
    CorruptSkipped,
}

const _: () = assert!((Event::CorruptSkipped as u16) < 16);

impl Event {
    /// The event's bit in [`State::events`].
    #[must_use]
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The small fields in one word, then the parts (see `Hash for Producer`).
impl Hash for State {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let budget = &self.budget;
        let sweeper = &self.sweeper;
        state.write_u64(
            u64::from(self.tick)
                | u64::from(self.violations) << 8
                // A per-kind budget is at most MAX_FAULT_BOUND (4 bits).
                | u64::from(budget.crashes) << 24
                | u64::from(budget.store_crashes) << 28
                | u64::from(budget.indeterminate) << 32
                | u64::from(budget.delivery_failures) << 36
                | u64::from(budget.total) << 40
                | u64::from(budget.pauses) << 48
                | u64::from(sweeper.session.unflushed) << 56
                | u64::from(sweeper.session.lost) << 57
                | u64::from(sweeper.op.is_some()) << 58,
        );
        state.write_u64(
            u64::from(self.events)
                | u64::from(budget.skews) << 16
                | u64::from(budget.stale_reads) << 24
                | u64::from(sweeper.session.stale) << 32
                | u64::from(budget.compactions) << 40
                | u64::from(budget.corruptions) << 48,
        );
        state.write_u64(self.store.hash_value());
        state.write_u64(sweeper.op.as_ref().map_or(0, SweepPass::hash_value));
        self.producers.hash(state);
        self.keys.hash(state);
    }
}

impl State {
    /// True when a step has violated `invariant`.
    #[must_use]
    pub fn violated(&self, invariant: Invariant) -> bool {
        self.violations & violation_bit(invariant) != 0
    }

    pub(crate) fn flag(&mut self, invariant: Invariant) {
        self.violations |= violation_bit(invariant);
    }

    /// True when `event` happened.
    #[must_use]
    pub fn saw(&self, event: Event) -> bool {
        self.events & event.bit() != 0
    }

    pub(crate) fn note(&mut self, event: Event) {
        self.events |= event.bit();
    }

    /// Every session marked flushed (after a successful flush).
    pub(crate) fn all_flushed(&mut self) {
        self.sweeper.session.flushed();
        for producer in &mut self.producers {
            producer.session.flushed();
        }
    }
}

impl stateright::Representative for State {
    /// Producers are interchangeable: the representative lists them sorted.
    fn representative(&self) -> Self {
        let mut state = self.clone();
        state.producers.sort();
        state
    }
}

#[cfg(test)]
mod tests;
