//! What happens in a run besides operations: deliveries, the faults the
//! simulation (or live mode) injected, phase changes and a stuck workload.

use super::{KeyId, OpId, Process};

/// A fault the simulation injected (or a phase change), for the timeline
/// and for the checker's exemptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaultEvent {
    /// A producer node was killed.
    ProducerCrash(Process),
    /// A producer node was restarted with no memory.
    ProducerRestart(Process),
    /// A producer node was paused for this long.
    ProducerPause(Process, u64),
    /// A paused producer node resumed.
    ProducerResume(Process),
    /// The store crashed: unflushed appends (these slots) are gone.
    StoreCrash {
        /// `(stream, sequence)` of every dropped entry.
        dropped: Vec<(String, u64)>,
    },
    /// The store is back after a crash.
    StoreRestart,
    /// A read was served from an older snapshot, hiding this many entries.
    StaleRead {
        /// The operation whose read it was (none for the sweeper's scan).
        op: Option<OpId>,
        /// Entries hidden.
        hidden: u64,
    },
    /// A store call answered with an indeterminate error.
    StoreCallError {
        /// The operation whose call it was.
        op: Option<OpId>,
        /// `append`, `read`, `scan`, `flush`.
        call: &'static str,
        /// Whether the call took effect anyway.
        applied: bool,
    },
    /// A record's bytes were corrupted.
    Corruption {
        /// The key whose record it was.
        key: KeyId,
        /// The stream and sequence.
        stream: String,
        /// The sequence.
        sequence: u64,
        /// What was done: a bit flip or a truncation.
        how: String,
    },
    /// A node's clock moved to this offset from true time.
    ClockJump {
        /// Whose clock.
        process: Process,
        /// The new offset in milliseconds.
        offset_ms: i64,
    },
    /// The janitor (`compaction`) compacted a stream below a sequence it
    /// drew at or under its head.
    Compaction {
        /// The stream.
        stream: String,
        /// Entries below this sequence were to go.
        below_seq: u64,
        /// How many went (the store keeps its last durable entry).
        removed: u64,
    },
    /// Faults stop; the quiet phase begins.
    QuietPhase,
    /// Live mode: a store call failed with an error other than a sequence
    /// conflict; whether it took effect is unknown.
    StoreCallFailed {
        /// The operation whose call it was.
        op: Option<OpId>,
        /// `append`, `read`, `scan`, `flush`.
        call: &'static str,
        /// The store's error.
        error: String,
    },
    /// Live mode: the store server closed these clients' connections
    /// (PostgreSQL's `pg_terminate_backend`).
    ConnectionsTerminated {
        /// Connections closed.
        count: u64,
    },
}

/// A non-operation event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// A producer performed (or failed to perform) the side effect a claim
    /// authorised.
    Delivery {
        /// Who.
        process: Process,
        /// The key.
        key: KeyId,
        /// The claim that authorised it (a user's handler may deliver under
        /// a claim that granted nothing, or under [`NO_CLAIM`](super::NO_CLAIM)).
        claim: OpId,
        /// False for a simulated delivery failure (followed by a release).
        ok: bool,
        /// When, microseconds since the start.
        at_us: u64,
    },
    /// A fault or phase change.
    Fault {
        /// When, microseconds since the start.
        at_us: u64,
        /// What.
        fault: FaultEvent,
    },
    /// The workload did not finish within its time cap (a liveness problem).
    Stuck {
        /// When.
        at_us: u64,
        /// Producers still running.
        producers: Vec<u16>,
    },
}

impl Event {
    /// When it happened.
    #[must_use]
    pub fn at_us(&self) -> u64 {
        match self {
            Event::Delivery { at_us, .. }
            | Event::Fault { at_us, .. }
            | Event::Stuck { at_us, .. } => *at_us,
        }
    }
}
