//! [`Discovered`]: which properties of a running search already have a
//! discovery.

use std::sync::atomic::{AtomicU64, Ordering};

/// The properties of a running search that already have a discovery: bit
/// `invariant_bit(i)` for `INVARIANTS[i]` (see `crate::properties`), `witness_bit(j)` for
/// `WITNESSES[j]`.
///
/// Why: stateright 0.31 evaluates every `always` and `sometimes` property
/// in every state it expands, even once the property has a discovery, and
/// records each repeat: a hash of the property's name (SipHash), a lookup
/// and then a write-locked insert into the discoveries `DashMap` all
/// checker threads share, and a copy of the path. Violations and most
/// witnesses of this model are sticky (a later state keeps them), so that
/// was some twenty shared-map operations per state, the threads fighting
/// over the map's locks. Stateright reads [`Model::properties`] afresh at
/// each block of states it checks, so a property left out after its first
/// discovery costs nothing more; within a block, its condition reports no
/// second discovery. The discovery a property keeps is its first, which
/// is as good a witness as the last: verdicts are unchanged, and the
/// checker still stops exploring only where it did before (every property
/// discovered).
///
/// [`Model::properties`]: stateright::Model::properties
#[derive(Debug, Default)]
pub(crate) struct Discovered(AtomicU64);

impl Discovered {
    pub(crate) fn contains(&self, bit: u64) -> bool {
        // Relaxed: a stale read only means one more repeat discovery.
        self.0.load(Ordering::Relaxed) & bit != 0
    }

    pub(crate) fn insert(&self, bit: u64) {
        self.0.fetch_or(bit, Ordering::Relaxed);
    }
}
