//! The `cache_ops_fenced` differential target: a short program of fenced
//! operations with claim tokens (`FencedProtocol::{claim, complete,
//! release, renew, lookup, sweep}`) on a few keys, run on the engine's pure
//! state machines (`src/core/fenced/`) against the fault table, with the
//! fuzzer choosing interleavings, faults (indeterminate appends, stale
//! reads, store crashes, corruption), clock advances, claim ids,
//! fingerprints and which token, current or stale, each token operation
//! uses. The run is judged by [`judge::verify_fenced`] with the oracle only.
//!
//! As in [`crate::program`], up to [`SLOTS`](crate::program::SLOTS)
//! operations are in flight at once; after the last action every operation
//! still in flight is stepped to its end without faults.

mod input;
pub mod judge;
mod run;
mod terms;

pub use input::{
    ClaimIdChoice, Damage, FINGERPRINTS, FencedAction, FencedConfig, FencedOpKind, FencedProgram,
    TIME_STEP_MS, fingerprint_for,
};
pub use judge::{FencedEvent, FencedHistory, verify_fenced};
pub use run::{FencedSummary, run_fenced};

use crate::history::Violation;

/// The `cache_ops_fenced` check on a corpus file: runs the program the
/// bytes describe and judges it. Returns `None` when they describe none.
///
/// # Panics
/// When the run breaks an invariant.
#[must_use]
pub fn check_fenced_bytes(data: &[u8]) -> Option<FencedSummary> {
    FencedProgram::from_bytes(data).map(|program| check_fenced_program(&program))
}

/// Runs `program` and judges it.
///
/// # Panics
/// When the run breaks an invariant (the fenced API has no excused
/// weaknesses), or an operation does not end.
#[must_use]
pub fn check_fenced_program(program: &FencedProgram) -> FencedSummary {
    match run_fenced(program) {
        Ok(summary) => summary,
        Err(violation) => report(&violation, program),
    }
}

fn report(violation: &Violation, program: &FencedProgram) -> ! {
    panic!("{violation}\nprogram: {program:#?}")
}
