//! The checker's report: each violation (of an invariant of the catalogue,
//! `atmostonce_verify::catalogue::Invariant`), the notes on what it
//! exempted or excused, and the verdict.

use atmostonce_verify::catalogue;

use crate::history::{KeyId, OpId};

/// One violated invariant: the catalogue's violation, naming the key and
/// the operations (in invocation order) by the history's ids.
pub type Violation = catalogue::Violation<KeyId, OpId>;

/// The checker's verdict on a history: the catalogue's verdict, with every
/// violation found (at most one per invariant and key) and the simulator's
/// [`Notes`] on what it exempted or excused.
pub type Verdict = catalogue::Verdict<KeyId, OpId, Notes>;

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
}

/// The A1 double deliveries of `verdict` that a known cause explains (a
/// holder that crashed before completing, a lease that ended first).
#[must_use]
pub fn a1_excused(verdict: &Verdict) -> u32 {
    let count = verdict
        .excused
        .iter()
        .filter(|excused| excused.violation.invariant == catalogue::Invariant::A1)
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// How strictly to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Hold read-only answers to S2, S4 and S7 even when their read was
    /// stale or dirty.
    pub strict_reads: bool,
}
