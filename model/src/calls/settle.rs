//! The answers the model's store gives besides the step under exploration:
//! the re-reads that settle an operation after its flush, and the errors the
//! store refuses or fails a call with.

use atmostonce::DurabilityError;
use atmostonce::core::{Step, StoreReply};
use atmostonce_verify::table::CallFault;

use super::Machine;
use crate::hashed::Hashed;
use crate::store::ModelStore;

/// Most re-reads [`settle`] answers: a fenced operation re-reads its head
/// once after the flush (the sweep re-scans once); more would be a loop.
const SETTLE_READS: usize = 4;

/// `op` (which asks to flush what it read) fed a successful flush and then,
/// for the re-reads that verify what it read, what `store` holds: what the
/// operation decides when nothing changes under it.
pub(super) fn settle<O: Machine>(op: Hashed<O>, store: &ModelStore) -> Hashed<O> {
    let mut settled = op.with(|op| op.feed(StoreReply::Flush(Ok(()))));
    for _ in 0..SETTLE_READS {
        let Step::Request(request) = settled.poll() else {
            break;
        };
        let Some(reply) = store.table.view(&request, CallFault::None) else {
            break;
        };
        settled = settled.with(|op| op.feed(reply));
    }
    settled
}

/// The error the model's store refuses a call it cannot explain with.
pub(super) fn unexplained(what: &str) -> DurabilityError {
    DurabilityError::StoreError(format!(
        "model store: {what} (a model error, flagged internal)"
    ))
}

/// The error an injected indeterminate append answers with: the fault
/// table's, so that a replay over the table answers as the model did.
pub use atmostonce_verify::table::injected_error;
