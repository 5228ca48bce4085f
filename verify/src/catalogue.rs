//! The one invariant catalogue: every property a tool of the harness checks,
//! stated once, and the one violation and verdict types they all report.
//!
//! `docs/spec.md` ("Invariants") is the prose these statements summarise.
//! The simulator, live mode, the model and the fuzzer each decide *whether*
//! an invariant held in what they observed; what the invariant *says* lives
//! here only.

use std::fmt;
use std::str::FromStr;

/// A property of the engine that a tool of the harness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Invariant {
    /// One winner.
    S1,
    /// Receipt stability.
    S2,
    /// No phantom receipt.
    S3,
    /// Acknowledged writes survive.
    S4,
    /// Fencing.
    S5,
    /// Collision safety.
    S6,
    /// Per-key linearizability.
    S7,
    /// Codec.
    S8,
    /// At-most-once delivery (under its assumption).
    A1,
    /// Progress (under its assumption).
    A2,
    /// The checker met something it cannot explain: a bug of the harness or
    /// of its assumptions. Never a pass.
    Internal,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 11] = [
        Invariant::S1,
        Invariant::S2,
        Invariant::S3,
        Invariant::S4,
        Invariant::S5,
        Invariant::S6,
        Invariant::S7,
        Invariant::S8,
        Invariant::A1,
        Invariant::A2,
        Invariant::Internal,
    ];

    /// The short name: `S1` .. `S8`, `A1`, `A2`, `internal`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Invariant::S1 => "S1",
            Invariant::S2 => "S2",
            Invariant::S3 => "S3",
            Invariant::S4 => "S4",
            Invariant::S5 => "S5",
            Invariant::S6 => "S6",
            Invariant::S7 => "S7",
            Invariant::S8 => "S8",
            Invariant::A1 => "A1",
            Invariant::A2 => "A2",
            Invariant::Internal => "internal",
        }
    }

    /// One line on what a violation of it means, for reports.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            Invariant::S1 => "one winner: two claims granted with no release or expiry between",
            Invariant::S2 => "receipt stability: a stored receipt changed before it expired",
            Invariant::S3 => "no phantom receipt: a receipt nobody tried to store was returned",
            Invariant::S4 => "acknowledged writes survive: an acknowledged write vanished",
            Invariant::S5 => "fencing: a stale claim token completed or released something",
            Invariant::S6 => {
                "collision safety: an answer for one key came from another key's records"
            }
            Invariant::S7 => {
                "linearizability: no order of the key's operations explains the answers"
            }
            Invariant::S8 => "codec: a record did not survive encode and decode unchanged",
            Invariant::A1 => "at-most-once delivery: a key was delivered twice in one dedup window",
            Invariant::A2 => "progress: a key stayed in flight after faults stopped",
            Invariant::Internal => "the checker met a state it cannot explain (harness error)",
        }
    }

    /// The invariant's full statement.
    #[must_use]
    pub fn statement(self) -> &'static str {
        match self {
            Invariant::S1 => {
                "Between two terminal events of a key (a release or an expiry that took \
                 effect), at most one claim on it is granted."
            }
            Invariant::S2 => {
                "Once a receipt R is stored for a key, every Completed answer for the key \
                 returns exactly R until the entry expires; no operation replaces or removes \
                 it before then (a release never does)."
            }
            Invariant::S3 => {
                "Every Completed(R) answer for a key follows an invoked completion of that key \
                 with R."
            }
            Invariant::S4 => {
                "An acknowledged completion, and for the fenced API an acknowledged claim or \
                 release, is seen by every later read of the key until it expires, across \
                 store crashes."
            }
            Invariant::S5 => {
                "A claim token whose claim is no longer the key's current record (released, \
                 expired, taken over or completed by someone else) never completes, releases \
                 or renews anything: it is refused with StaleClaim and nothing is appended."
            }
            Invariant::S6 => {
                "An answer for key k is based only on records of k, even when another key's \
                 records share k's stream (a hash collision): such a stream yields \
                 DedupCollision, never a mixture."
            }
            Invariant::S7 => {
                "Per key, the operations (including those whose outcome is unknown) can be \
                 ordered, respecting real time, so that every answer is the one the \
                 sequential specification gives."
            }
            Invariant::S8 => {
                "decode(encode(r)) = r for every record r; decoding never panics; whatever \
                 decodes re-encodes to the same bytes; a version-2 record with any bit \
                 flipped is rejected."
            }
            Invariant::A1 => {
                "A key is delivered at most once per dedup window, provided processing time \
                 plus the largest clock skew stays below the lease (seed API: the TTL); \
                 unconditionally when the delivery is fenced by the claim token."
            }
            Invariant::A2 => {
                "Once faults stop, every key reaches Completed or becomes claimable again \
                 within the lease (or TTL) plus one sweep interval."
            }
            Invariant::Internal => {
                "The checker can explain everything it observes. A state it cannot explain \
                 is reported, never passed over."
            }
        }
    }

    /// Parses a short name (case-insensitive).
    #[must_use]
    pub fn parse(text: &str) -> Option<Invariant> {
        Invariant::ALL
            .into_iter()
            .find(|invariant| invariant.name().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text was not the name of an invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownInvariant(pub String);

impl fmt::Display for UnknownInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an invariant (expected one of S1..S8, A1, A2, internal)",
            self.0
        )
    }
}

impl std::error::Error for UnknownInvariant {}

impl FromStr for Invariant {
    type Err = UnknownInvariant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Invariant::parse(text).ok_or_else(|| UnknownInvariant(text.to_owned()))
    }
}

/// One violated invariant: which, for which key, which operations, and why.
///
/// Each tool names keys and operations its own way: by default a key is its
/// text and an operation its index in the tool's history; the simulator
/// uses its compact key and operation ids (`Violation<KeyId, OpId>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Violation<K = String, O = usize> {
    /// The invariant.
    pub invariant: Invariant,
    /// The key (or stream) concerned, when the violation is about one.
    pub key: Option<K>,
    /// The operations involved, by their index in the tool's history.
    pub ops: Vec<O>,
    /// What was seen, in a sentence.
    pub message: String,
}

impl<K, O> Violation<K, O> {
    /// A violation of `invariant` for `key`, with a message.
    #[must_use]
    pub fn new(invariant: Invariant, key: Option<K>, message: impl Into<String>) -> Self {
        Violation {
            invariant,
            key,
            ops: Vec::new(),
            message: message.into(),
        }
    }

    /// The same violation, naming the operations involved.
    #[must_use]
    pub fn with_ops(mut self, ops: Vec<O>) -> Self {
        self.ops = ops;
        self
    }
}

impl<K: fmt::Debug, O> fmt::Display for Violation<K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.invariant, self.invariant.meaning())?;
        if let Some(key) = &self.key {
            write!(f, " for key {key:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A documented weakness, named by its cause: of the seed-compatible API,
/// or (the last) what the fenced API does not promise either.
///
/// A tool that excuses a violation names the cause that explains it, and
/// judges the run again without the operations that cause touched: any
/// other violation still fails the run, so a new bug in the same fault
/// space is still found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KnownCause {
    /// F1: an append answered with an indeterminate error and not applied;
    /// another producer's byte-identical claim (same key, same millisecond)
    /// landed at that sequence and the re-read took it for its own.
    MisresolvedAppend,
    /// F2: a release retried after an indeterminate error tombstoned the
    /// next holder's claim.
    RetriedReleaseTombstones,
    /// F3 and F7: an answer computed from a stale read (an older snapshot).
    StaleRead,
    /// F4: a corrupted record answered as a receipt, or its corrupted
    /// timestamp expiring an entry early.
    CorruptRecordAnswered,
    /// F5: one corrupt record stops a whole sweep.
    CorruptRecordStopsSweep,
    /// F6: a holder paused past the TTL; without a fence it cannot know.
    PausedPastTtl,
    /// A decision taken on a read of unflushed appends that a store crash
    /// then dropped; the stream grew back and a stale conditional append
    /// landed at a sequence it was never meant for.
    SequenceReuseAfterCrash,
    /// A1 only: the holder crashed (or could not store its receipt) between
    /// delivering and completing; without a fenced side effect a second
    /// delivery after expiry cannot be prevented.
    HolderCrashedAfterDelivery,
    /// A1 only, the fenced API: the first holder's claim ended between its
    /// delivery and any completion (its lease passed, as after a crash or
    /// a pause, or the claim was expired or released), and a holder granted
    /// later delivered again. The fence tells the downstream which delivery
    /// is the newer; only a downstream that keeps one effect per key can
    /// refuse the second (`docs/spec.md`, A1).
    LeaseEndedBeforeCompletion,
}

impl KnownCause {
    /// Every cause, in documentation order.
    pub const ALL: [KnownCause; 9] = [
        KnownCause::MisresolvedAppend,
        KnownCause::RetriedReleaseTombstones,
        KnownCause::StaleRead,
        KnownCause::CorruptRecordAnswered,
        KnownCause::CorruptRecordStopsSweep,
        KnownCause::PausedPastTtl,
        KnownCause::SequenceReuseAfterCrash,
        KnownCause::HolderCrashedAfterDelivery,
        KnownCause::LeaseEndedBeforeCompletion,
    ];

    /// A stable, kebab-case name for reports and regression files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            KnownCause::MisresolvedAppend => "misresolved-append",
            KnownCause::RetriedReleaseTombstones => "retried-release-tombstones",
            KnownCause::StaleRead => "stale-read",
            KnownCause::CorruptRecordAnswered => "corrupt-record-answered",
            KnownCause::CorruptRecordStopsSweep => "corrupt-record-stops-sweep",
            KnownCause::PausedPastTtl => "paused-past-ttl",
            KnownCause::SequenceReuseAfterCrash => "sequence-reuse-after-crash",
            KnownCause::HolderCrashedAfterDelivery => "holder-crashed-after-delivery",
            KnownCause::LeaseEndedBeforeCompletion => "lease-ended-before-completion",
        }
    }
}

impl fmt::Display for KnownCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A violation that a known cause explains.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Excused<K = String, O = usize> {
    /// The cause.
    pub cause: KnownCause,
    /// The violation it explains.
    pub violation: Violation<K, O>,
}

/// A tool's verdict on one run.
///
/// `N` is what a tool reports beside its violations, its own notes (the
/// simulator's exempted answers); by default nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<K = String, O = usize, N = ()> {
    /// Violations no known cause explains: the run failed if any.
    pub violations: Vec<Violation<K, O>>,
    /// Violations explained by a documented cause, reported and counted.
    pub excused: Vec<Excused<K, O>>,
    /// The tool's own notes on what it exempted or counted.
    pub notes: N,
}

impl<K, O, N: Default> Default for Verdict<K, O, N> {
    fn default() -> Self {
        Verdict {
            violations: Vec::new(),
            excused: Vec::new(),
            notes: N::default(),
        }
    }
}

impl<K, O, N> Verdict<K, O, N> {
    /// True when no violation is left unexplained.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// True when the checker met something it could not explain.
    #[must_use]
    pub fn is_internal_error(&self) -> bool {
        self.violations
            .iter()
            .any(|violation| violation.invariant == Invariant::Internal)
    }

    /// The first violation: the one a report leads with.
    #[must_use]
    pub fn first(&self) -> Option<&Violation<K, O>> {
        self.violations.first()
    }

    /// The distinct invariants violated, in report order.
    #[must_use]
    pub fn invariants(&self) -> Vec<Invariant> {
        let mut invariants: Vec<Invariant> = self.violations.iter().map(|v| v.invariant).collect();
        invariants.sort_unstable();
        invariants.dedup();
        invariants
    }

    /// `pass`, or the invariants violated, comma-separated and in report
    /// order (`S1,S7`).
    #[must_use]
    pub fn names(&self) -> String {
        let names = self.invariants();
        if names.is_empty() {
            "pass".to_owned()
        } else {
            names
                .iter()
                .map(|invariant| invariant.name())
                .collect::<Vec<_>>()
                .join(",")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invariant_parses_back_from_its_name() {
        for invariant in Invariant::ALL {
            assert_eq!(invariant.name().parse::<Invariant>(), Ok(invariant));
            assert!(!invariant.statement().is_empty());
        }
        assert!("S9".parse::<Invariant>().is_err());
    }

    #[test]
    fn a_verdict_names_each_violated_invariant_once_in_report_order() {
        let verdict: Verdict = Verdict {
            violations: vec![
                Violation::new(Invariant::S7, None, "x"),
                Violation::new(Invariant::S1, Some("k".into()), "y"),
                Violation::new(Invariant::S7, None, "z"),
            ],
            ..Verdict::default()
        };
        assert!(!verdict.passed());
        assert_eq!(verdict.names(), "S1,S7");
        assert_eq!(Verdict::<String>::default().names(), "pass");
        // A tool with its own key and operation ids and notes.
        let mut ids: Verdict<u16, u32, u32> = Verdict::default();
        ids.violations
            .push(Violation::new(Invariant::A1, Some(3), "twice").with_ops(vec![4, 9]));
        ids.notes += 1;
        assert_eq!((ids.names(), ids.notes), ("A1".to_owned(), 1));
    }
}
