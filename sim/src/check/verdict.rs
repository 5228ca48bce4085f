//! The checker's report: each violation (of an invariant of the catalogue,
//! `atmostonce_verify::catalogue::Invariant`), the notes on what it
//! exempted or excused, and the verdict.

use atmostonce_verify::catalogue::Invariant;

use crate::history::{KeyId, OpId};

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
