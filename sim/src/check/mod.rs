//! The history checker: S1-S7 (always), A1 (the at-most-once delivery
//! assumption) and A2 (progress after the quiet phase), `docs/spec.md` ("Invariants").
//!
//! # What the store model admits, and why the checker has no false positives
//!
//! The checker is black-box about the engine: it judges answers against the
//! sequential specification ([`atmostonce_verify::oracle`]). It uses three facts the
//! simulated store reports, none of which tells it whether an answer is
//! right, only which answers the engine had no way to get right:
//!
//! - **Stale reads.** A read served from an older snapshot makes the answer
//!   of an operation that wrote nothing (a lookup; a claim answering
//!   `InFlight`/`Completed`; a no-op release or completion) stale by
//!   construction: the seed engine has no read barrier, and no engine can
//!   defend a pure read against a store that serves old data. Such answers
//!   (flagged by the store, and only if the operation wrote nothing that
//!   stayed) are **exempt** from S2, S4 and S7 and counted in
//!   [`Notes::stale_answers`]; they are still held to S3 and S6 (a receipt
//!   must be a real receipt of that key). A stale read can never make a
//!   write land in the wrong place: appends are conditional on the stream's
//!   length, so a decision from a stale read ends in a `SequenceConflict`.
//! - **Dirty reads.** A store crash drops appends not yet flushed. An
//!   operation that read such a record (before the crash) and answered from
//!   it without writing, answered from a state that never became durable.
//!   The seed engine does not flush before it answers a read, so these
//!   answers are not linearizable; they are exempt like stale ones and
//!   counted in [`Notes::dirty_answers`]. `--strict-reads` removes both
//!   exemptions and reports them as S7 violations (a real, documented
//!   weakness of the seed API, see README "Known findings").
//!   An operation that answered `Claimed` is never exempt: a grant is a
//!   write, whatever it read.
//! - **Expiries.** The sweeper's tombstone appends are the `expire`
//!   operations of the specification, attributed per key by the store. A
//!   tombstone the sweeper appended but never flushed may be dropped by a
//!   crash; a dropped one is an expiry that did not happen.
//!
//! Everything else is judged strictly: an indeterminate error may or may not
//! have taken effect (never both), a process that crashed mid-call may have
//! taken effect at any later time or never, and a `DedupCollision` is
//! admissible only where the specification refuses or the key's stream is
//! shared with another key (forced hash collisions) or holds a corrupted
//! record (the engine surfacing corruption as an error is what it must do).

mod fenced;
mod index;
mod rules;
mod show;
mod verdict;

use crate::history::{History, KeyId};
use index::Checker;

pub use atmostonce_verify::catalogue::Invariant;
pub use show::{show_answer, show_error};
pub use verdict::{CheckOptions, Notes, Verdict, Violation, a1_excused};

/// Checks a history.
#[must_use]
pub fn check(history: &History, options: CheckOptions) -> Verdict {
    let checker = Checker::new(history, options);
    let mut verdict = Verdict::default();
    for key in 0..history.keys.len() {
        let Ok(key) = KeyId::try_from(key) else {
            verdict.violations.push(Violation {
                invariant: Invariant::Internal,
                key: None,
                ops: Vec::new(),
                message: format!(
                    "the history has {} keys, more than a key id can name; keys from {key} \
                     on were not checked",
                    history.keys.len()
                ),
            });
            break;
        };
        checker.key(key, &mut verdict);
    }
    checker.progress(&mut verdict);
    for message in &checker.unexplained {
        verdict.violations.push(Violation {
            invariant: Invariant::Internal,
            key: None,
            ops: Vec::new(),
            message: message.clone(),
        });
    }
    verdict
        .violations
        .sort_by_key(|violation| (violation.invariant, violation.key));
    verdict
}

#[cfg(test)]
mod tests;
