//! The checker's report: the invariants it checks, each violation, the
//! notes on what it exempted or excused, and the verdict.

use std::fmt;

use crate::history::{KeyId, OpId};

/// The invariants (`docs/spec.md`, "Invariants") that the simulator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// One winner: at most one claim granted between two terminal events.
    S1,
    /// Receipt stability: a stored receipt is what every `Completed` answer
    /// returns until it expires.
    S2,
    /// No phantom receipt: a `Completed(R)` answer follows a completion with R.
    S3,
    /// Acknowledged writes survive, across store crashes, until expiry.
    S4,
    /// Collision safety: an answer for key k is based only on k's records.
    S6,
    /// Per-key linearizability against the sequential specification.
    S7,
    /// At-most-once delivery while processing + skew < TTL.
    A1,
    /// Progress: after the quiet phase every key is completed or claimable.
    A2,
    /// The checker could not decide (a bug of the harness, never a pass).
    Internal,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 9] = [
        Invariant::S1,
        Invariant::S2,
        Invariant::S3,
        Invariant::S4,
        Invariant::S6,
        Invariant::S7,
        Invariant::A1,
        Invariant::A2,
        Invariant::Internal,
    ];

    /// One line on what it means.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            Invariant::S1 => "one winner: two claims granted with no release or expiry between",
            Invariant::S2 => "receipt stability: a stored receipt changed before it expired",
            Invariant::S3 => "no phantom receipt: a receipt nobody tried to store was returned",
            Invariant::S4 => "acknowledged writes survive: an acknowledged completion vanished",
            Invariant::S6 => {
                "collision safety: an answer for one key came from another key's records"
            }
            Invariant::S7 => {
                "linearizability: no order of the key's operations explains the answers"
            }
            Invariant::A1 => "at-most-once delivery: a key was delivered twice in one dedup window",
            Invariant::A2 => "progress: a key stayed in flight after faults stopped",
            Invariant::Internal => "the checker could not decide (harness error)",
        }
    }

    /// Parses `S1`..`S7`, `A1`, `A2`, `internal`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Invariant> {
        Invariant::ALL
            .into_iter()
            .find(|invariant| invariant.to_string().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Invariant::S1 => "S1",
            Invariant::S2 => "S2",
            Invariant::S3 => "S3",
            Invariant::S4 => "S4",
            Invariant::S6 => "S6",
            Invariant::S7 => "S7",
            Invariant::A1 => "A1",
            Invariant::A2 => "A2",
            Invariant::Internal => "internal",
        };
        f.write_str(name)
    }
}

/// One violated invariant: which, for which key, which operations, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant.
    pub invariant: Invariant,
    /// The key, when the violation is about one.
    pub key: Option<KeyId>,
    /// The operations involved, in invocation order.
    pub ops: Vec<OpId>,
    /// What happened, in a sentence.
    pub message: String,
}

/// Observations that are not violations but must not go unreported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// Read-only answers exempted because their read was stale.
    pub stale_answers: u32,
    /// Read-only answers exempted because they read a record a crash dropped.
    pub dirty_answers: u32,
    /// Keys whose full history (exempt answers included) is not
    /// linearizable: what `--strict-reads` would report.
    pub strict_s7_keys: Vec<KeyId>,
    /// Double deliveries after the first holder crashed (or could not store
    /// its receipt) between delivery and completion: at-most-once without a
    /// fenced side effect cannot prevent those.
    pub a1_excused: u32,
}

/// How strictly to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Hold read-only answers to S2, S4 and S7 even when their read was
    /// stale or dirty.
    pub strict_reads: bool,
}

/// The checker's verdict on a history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every violation found (at most one per invariant and key).
    pub violations: Vec<Violation>,
    /// What was exempted or excused, counted.
    pub notes: Notes,
}

impl Verdict {
    /// True when no invariant is violated.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The first violation: the one a report leads with.
    #[must_use]
    pub fn first(&self) -> Option<&Violation> {
        self.violations.first()
    }

    /// `pass`, or the invariants violated, comma-separated (`S1,S7`).
    #[must_use]
    pub fn names(&self) -> String {
        if self.passed() {
            return "pass".to_owned();
        }
        let names: Vec<String> = self.invariants().iter().map(ToString::to_string).collect();
        names.join(",")
    }

    /// The distinct invariants violated.
    #[must_use]
    pub fn invariants(&self) -> Vec<Invariant> {
        let mut invariants: Vec<Invariant> = self.violations.iter().map(|v| v.invariant).collect();
        invariants.sort_unstable();
        invariants.dedup();
        invariants
    }
}
