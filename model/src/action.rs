//! The model's actions: one step of the system, and how a store call of an
//! actor is answered.

use std::fmt;

/// How a store call of an actor is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// As the store does it.
    Normal,
    /// The call is an append; it is applied but answered with an error.
    AppendFailsApplied,
    /// The call is an append; it is answered with an error, not applied.
    AppendFailsNotApplied,
    /// The call is a read, a head read or a scan; it is served from an
    /// older view of the store (`stale-reads`).
    StaleRead,
}

/// What a producer does in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProducerAction {
    /// Its next store call (starting a claim first when it has none).
    Call(Call),
    /// It delivers the message it holds the claim for.
    Deliver,
    /// Its delivery fails; it starts releasing the claim.
    FailDelivery,
    /// It crashes and restarts with no memory.
    Crash,
}

/// Which way a skewed clock is off (`clock-skew`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skew {
    /// It reads later than the true time.
    Ahead,
    /// It reads earlier than the true time.
    Behind,
}

/// How `corruption` damages a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Damage {
    /// Its last byte is cut off (the record no longer decodes, in either
    /// version).
    CutLast,
    /// One bit of it is flipped: the lowest bit of its receipt's last
    /// byte if it holds a receipt (a version-1 receipt then names another
    /// receipt), else the highest set bit of its last eight bytes (a
    /// version-1 record's timestamp, so its TTL anchor moves into the
    /// past). Version 2's checksum rejects either.
    FlipBit,
}

/// One step of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Producer `i` acts.
    Producer(u8, ProducerAction),
    /// The sweeper's next store call (starting a pass first when idle).
    Sweeper(Call),
    /// The idle sweeper starts a pass on a clock off by the skew, and makes
    /// its first store call (`clock-skew`).
    SkewedSweep(Skew),
    /// The clock advances one tick.
    Tick,
    /// The store crashes and restarts, dropping unflushed appends.
    StoreCrash,
    /// The janitor compacts stream `stream` (the model's index) below
    /// sequence `below` (`compaction`).
    Compact {
        /// The stream's index.
        stream: u8,
        /// The first sequence kept.
        below: u8,
    },
    /// The record at `sequence` of stream `stream` is damaged
    /// (`corruption`).
    Corrupt {
        /// The stream's index.
        stream: u8,
        /// The record's sequence.
        sequence: u8,
        /// How.
        damage: Damage,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Producer(p, ProducerAction::Call(Call::Normal)) => {
                write!(f, "producer {p}: next store call")
            }
            Action::Producer(p, ProducerAction::Call(Call::AppendFailsApplied)) => {
                write!(f, "producer {p}: append applied, answered with an error")
            }
            Action::Producer(p, ProducerAction::Call(Call::AppendFailsNotApplied)) => write!(
                f,
                "producer {p}: append not applied, answered with an error"
            ),
            Action::Producer(p, ProducerAction::Call(Call::StaleRead)) => {
                write!(f, "producer {p}: read served from an older view")
            }
            Action::Producer(p, ProducerAction::Deliver) => write!(f, "producer {p}: deliver"),
            Action::Producer(p, ProducerAction::FailDelivery) => {
                write!(f, "producer {p}: delivery fails")
            }
            Action::Producer(p, ProducerAction::Crash) => {
                write!(f, "producer {p}: crash and restart")
            }
            Action::Sweeper(Call::Normal) => write!(f, "sweeper: next store call"),
            Action::Sweeper(Call::AppendFailsApplied) => {
                write!(f, "sweeper: append applied, answered with an error")
            }
            Action::Sweeper(Call::AppendFailsNotApplied) => {
                write!(f, "sweeper: append not applied, answered with an error")
            }
            Action::Sweeper(Call::StaleRead) => {
                write!(f, "sweeper: read served from an older view")
            }
            Action::SkewedSweep(Skew::Ahead) => {
                write!(f, "sweeper: starts a pass on a clock ahead of time")
            }
            Action::SkewedSweep(Skew::Behind) => {
                write!(f, "sweeper: starts a pass on a clock behind time")
            }
            Action::Tick => write!(f, "clock tick"),
            Action::StoreCrash => write!(f, "store crash"),
            Action::Compact { stream, below } => {
                write!(f, "janitor: compacts stream {stream} below {below}")
            }
            Action::Corrupt {
                stream,
                sequence,
                damage: Damage::CutLast,
            } => write!(
                f,
                "corruption: the last byte of stream {stream}'s record {sequence} is cut off"
            ),
            Action::Corrupt {
                stream,
                sequence,
                damage: Damage::FlipBit,
            } => write!(
                f,
                "corruption: a bit of stream {stream}'s record {sequence} flips"
            ),
        }
    }
}
