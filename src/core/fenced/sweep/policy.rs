//! Which history below a stream's head the sweep removes
//! (`docs/spec.md`, "Sweep", "Compaction").
//!
//! The fenced operations read a stream's head and, to resolve an append
//! answered with an indeterminate error, the one record at that append's
//! sequence. An operation that finds that record compacted away answers
//! with an indeterminate error, so the sweep removes only what a running
//! operation is unlikely to need:
//!
//! - a head that turned *quiet* (written more than lease + grace ago): every
//!   record below it was written before it, by operations that ended long
//!   ago or whose lease is over; everything below the head goes;
//! - a *fresh* head (written since): the record just below it is the one a
//!   racing append most likely landed at (the head overtook it), so it
//!   stays; everything below that goes. A hot key claimed and released
//!   forever so keeps two records plus what was appended since the last
//!   sweep, never its whole history.
//!
//! Each head is compacted only in the sweep that first sees it written
//! (fresh) and the one that first sees it quiet, judged against the time of
//! the previous sweep that ended cleanly: a key nobody writes costs no
//! compact call in later sweeps, whatever its history was. Without a
//! previous sweep (the first one, or a machine driven by hand) every head
//! that may have history below it is compacted, which may remove nothing.
//! An expiry the sweep appends is compacted right after it lands (and is
//! durable), in the same sweep, so its release is left out of both rules.

use crate::codec::{FencedRecord, ReleaseReason};
use crate::core::fenced::Times;
use crate::limits::CLOCK_SKEW_GRACE_MS;

/// When `record` was written, by its writer's clock.
fn written_at_millis(record: &FencedRecord) -> u64 {
    match record {
        FencedRecord::Claim(claim) => claim.claimed_at_millis(),
        FencedRecord::Completion(completion) => completion.completed_at_millis(),
        FencedRecord::Release(release) => release.released_at_millis(),
        FencedRecord::Entry(entry) => entry.timestamp_millis(),
        FencedRecord::Tombstone(tombstone) => tombstone.timestamp_millis(),
    }
}

/// The sequence below which the sweep compacts the stream whose head (at
/// `sequence`) is `record` and that the sweep does not expire, or `None`
/// when nothing should go (or nothing new would).
///
/// `previous_sweep_millis` is the start of the previous sweep that ended
/// cleanly, if the caller keeps it.
pub(super) fn compact_below(
    sequence: u64,
    record: &FencedRecord,
    now_millis: u64,
    times: Times,
    previous_sweep_millis: Option<u64>,
) -> Option<u64> {
    if let FencedRecord::Release(release) = record
        && release.reason() == ReleaseReason::Expired
    {
        return None;
    }
    let written = written_at_millis(record);
    let quiet_at = written
        .saturating_add(times.lease_ms)
        .saturating_add(CLOCK_SKEW_GRACE_MS);
    // A writer's clock may run up to the grace behind the sweeper's.
    let new_since = |at: u64| previous_sweep_millis.is_none_or(|previous| at >= previous);
    if quiet_at < now_millis {
        (sequence > 0 && new_since(quiet_at)).then_some(sequence)
    } else {
        (sequence >= 2 && new_since(written.saturating_add(CLOCK_SKEW_GRACE_MS)))
            .then(|| sequence - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{ClaimId, ClaimRecord, ReleaseRecord};

    const TIMES: Times = Times {
        lease_ms: 10_000,
        receipt_ttl_ms: 100_000,
    };

    fn claim_at(claimed_at_millis: u64) -> FencedRecord {
        let id = ClaimId::new([7; 16]).unwrap();
        FencedRecord::Claim(ClaimRecord::new(
            "k",
            id,
            3,
            claimed_at_millis,
            10_000,
            None,
        ))
    }

    #[test]
    fn a_fresh_head_keeps_the_record_below_it_and_a_quiet_one_keeps_only_itself() {
        assert_eq!(
            compact_below(5, &claim_at(1_000), 2_000, TIMES, None),
            Some(4)
        );
        assert_eq!(
            compact_below(5, &claim_at(1_000), 20_000, TIMES, None),
            Some(5)
        );
        assert_eq!(compact_below(1, &claim_at(1_000), 2_000, TIMES, None), None);
        assert_eq!(
            compact_below(0, &claim_at(1_000), 20_000, TIMES, None),
            None
        );
    }

    #[test]
    fn a_head_already_seen_by_the_previous_sweep_costs_no_compaction() {
        // Written at 1 000, seen fresh by a sweep at 3 000: a sweep at 5 000
        // leaves it alone; quiet from 12 000: the first sweep after compacts.
        let head = claim_at(1_000);
        assert_eq!(compact_below(5, &head, 5_000, TIMES, Some(3_000)), None);
        assert_eq!(compact_below(5, &head, 13_000, TIMES, Some(5_000)), Some(5));
        assert_eq!(compact_below(5, &head, 20_000, TIMES, Some(13_000)), None);
    }

    #[test]
    fn an_expiry_the_sweep_wrote_is_never_compacted_again() {
        let expiry = FencedRecord::Release(ReleaseRecord::expired("k", None, 3, 1_000));
        assert_eq!(compact_below(5, &expiry, 2_000, TIMES, None), None);
        assert_eq!(compact_below(5, &expiry, 50_000, TIMES, None), None);
    }
}
