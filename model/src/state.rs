//! The model's state: the store, each producer, the sweeper, the clock, the
//! fault budgets left, and ghost variables the properties read.

use atmostonce::core::{ClaimOp, CompleteOp, ReleaseOp, SweepOp};

use crate::config::MAX_KEYS;
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

/// What a producer is doing. The engine's operation values are held as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// The sweeper: idle, or in the middle of one pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sweeper {
    /// The pass under way.
    pub op: Option<Hashed<SweepOp>>,
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
}

/// Ghost variables of one key: what happened, for the properties.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
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
}

/// An invariant, as a bit of [`State::violations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// S1 one winner.
    S1,
    /// S2 receipt stability.
    S2,
    /// S3 no phantom receipt.
    S3,
    /// S4 acknowledged writes survive.
    S4,
    /// S5 fencing.
    S5,
    /// S6 collision safety.
    S6,
    /// S7 linearizability, with the seed engine's linearization points.
    S7,
    /// A1 at-most-once delivery.
    A1,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 8] = [
        Invariant::S1,
        Invariant::S2,
        Invariant::S3,
        Invariant::S4,
        Invariant::S5,
        Invariant::S6,
        Invariant::S7,
        Invariant::A1,
    ];

    /// The bit in [`State::violations`].
    #[must_use]
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The whole state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    pub violations: u8,
}

impl State {
    /// True when a step has violated `invariant`.
    #[must_use]
    pub fn violated(&self, invariant: Invariant) -> bool {
        self.violations & invariant.bit() != 0
    }

    pub(crate) fn flag(&mut self, invariant: Invariant) {
        self.violations |= invariant.bit();
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
