//! The `sometimes` witnesses: each interesting branch, which must be
//! reached (a property that can never fire proves nothing).

use atmostonce::core::PhaseKind;

use super::{A1_VACUITY, Witness};
use crate::config::{Api, Fault};
use crate::state::{Event, Outcome, Phase, State};
use crate::store::RecordKind;

fn any_phase(s: &State, test: impl Fn(&Phase) -> bool) -> bool {
    s.producers.iter().any(|p| test(&p.phase))
}

fn any_outcome(s: &State, outcome: Outcome) -> bool {
    s.producers
        .iter()
        .any(|p| p.outcomes & (1 << (outcome as u8)) != 0)
}

fn any_adjacent(s: &State, first: RecordKind, second: RecordKind) -> bool {
    s.store.streams.iter().any(|m| {
        m.records
            .windows(2)
            .any(|w| w[0].kind == first && w[1].kind == second)
    })
}

/// The witnesses.
pub const WITNESSES: &[Witness] = &[
    Witness {
        name: "a claim is granted and the message delivered",
        needs: &[],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| s.keys.iter().any(|k| k.deliveries > 0),
    },
    Witness {
        name: "a receipt is stored and acknowledged",
        needs: &[],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_outcome(s, Outcome::Completed),
    },
    Witness {
        name: "a duplicate is answered with the stored receipt",
        needs: &[],
        min_producers: 2,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_outcome(s, Outcome::Duplicate),
    },
    Witness {
        name: "a claim is deferred because the key is in flight",
        needs: &[],
        min_producers: 2,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_phase(s, |p| *p == Phase::Deferred),
    },
    Witness {
        name: "a claim loses an append race and re-reads the winner's record",
        needs: &[],
        min_producers: 2,
        api: Some(Api::Seed),
        beyond_grace: false,
        seen: |_, s| {
            any_phase(
                s,
                |p| matches!(p, Phase::Claiming { op, .. } if op.phase_kind() == PhaseKind::RereadingAfterLostRace),
            )
        },
    },
    Witness {
        name: "the sweeper expires a stored receipt",
        needs: &[],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_adjacent(s, RecordKind::Complete, RecordKind::Expire),
    },
    Witness {
        name: "a key is claimed again after an expiry",
        needs: &[],
        min_producers: 2,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_adjacent(s, RecordKind::Expire, RecordKind::Claim),
    },
    Witness {
        name: "a failed delivery releases the claim",
        needs: &[Fault::DeliveryFailure],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_adjacent(s, RecordKind::Claim, RecordKind::Release),
    },
    Witness {
        name: "a key is claimed again after a release",
        needs: &[Fault::DeliveryFailure],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_adjacent(s, RecordKind::Release, RecordKind::Claim),
    },
    Witness {
        name: "the sweeper expires an in-flight claim whose holder crashed",
        needs: &[Fault::Crash],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_adjacent(s, RecordKind::Claim, RecordKind::Expire),
    },
    Witness {
        name: "an indeterminate append is resolved by re-reading",
        needs: &[Fault::Indeterminate],
        min_producers: 1,
        api: Some(Api::Seed),
        beyond_grace: false,
        seen: |_, s| {
            any_phase(s, |p| match p {
                Phase::Claiming { op, .. } => {
                    op.phase_kind() == PhaseKind::ResolvingIndeterminateAppend
                }
                Phase::Completing { op, .. } => {
                    op.phase_kind() == PhaseKind::ResolvingIndeterminateAppend
                }
                Phase::Releasing { op, .. } => {
                    op.phase_kind() == PhaseKind::ResolvingIndeterminateAppend
                }
                _ => false,
            })
        },
    },
    Witness {
        name: "a store crash drops an unflushed append and the next flush reports it",
        needs: &[Fault::StoreCrash],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| s.sweeper.session.lost || s.producers.iter().any(|p| p.session.lost),
    },
    Witness {
        name: "a release loses its race to a completion and leaves the receipt",
        needs: &[Fault::Pause, Fault::DeliveryFailure],
        min_producers: 2,
        api: Some(Api::Seed),
        beyond_grace: false,
        seen: |m, s| {
            s.producers.iter().any(|p| match &p.phase {
                Phase::Releasing { op, .. } => {
                    op.phase_kind() == PhaseKind::RereadingAfterLostRace
                        && s.store.streams[m.stream_of(p.key)]
                            .records
                            .last()
                            .is_some_and(|r| r.kind == RecordKind::Complete)
                }
                _ => false,
            })
        },
    },
    Witness {
        name: "a key whose stream holds another key's records is refused with DedupCollision",
        needs: &[Fault::Collision],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| any_outcome(s, Outcome::GaveUp),
    },
    Witness {
        name: A1_VACUITY,
        needs: &[Fault::Pause],
        min_producers: 2,
        api: Some(Api::Seed),
        beyond_grace: false,
        seen: |_, s| s.keys.iter().any(|k| k.window_deliveries > 1),
    },
    Witness {
        name: "a fenced claim loses an append race and decides again",
        needs: &[],
        min_producers: 2,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::LostRace),
    },
    Witness {
        name: "an indeterminate claim append is resolved by its claim id",
        needs: &[Fault::Indeterminate],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::ResolvedById),
    },
    Witness {
        name: "a zombie's completion is refused with StaleClaim",
        needs: &[Fault::Pause],
        min_producers: 2,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::StaleCompletionRefused),
    },
    Witness {
        name: "a zombie's release is refused with StaleClaim and appends nothing",
        needs: &[Fault::Pause],
        min_producers: 2,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::StaleReleaseRefused),
    },
    Witness {
        name: "the fenced downstream refuses a zombie's delivery (a lower fence than it accepted)",
        needs: &[Fault::Pause],
        min_producers: 2,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::StaleDeliveryRefused),
    },
    Witness {
        name: "the fenced sweeper compacts the history below a head",
        needs: &[],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: false,
        // Before the janitor's first compaction (`compaction`), if any:
        // the sweeper's own.
        seen: |m, s| {
            s.budget.compactions == m.config().budget(Fault::Compaction)
                && m.stream_names()
                    .iter()
                    .any(|name| s.store.table.compacted(name) > 0)
        },
    },
    Witness {
        name: "a sweep pass on a skewed clock expires an entry",
        needs: &[Fault::ClockSkew],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::SkewedExpiry),
    },
    Witness {
        name: "the sweeper expires a claim inside its lease (clock skew beyond the grace)",
        needs: &[Fault::ClockSkew],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: true,
        seen: |_, s| s.saw(Event::LeaseCutShort),
    },
    Witness {
        name: "a read is served from an older view of the store",
        needs: &[Fault::StaleReads],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::StaleReadSeen),
    },
    Witness {
        name: "the janitor compacts a stream while an operation or a sweep pass is under way",
        needs: &[Fault::Compaction],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::CompactedUnderOperation),
    },
    Witness {
        name: "an indeterminate append's probe finds its record compacted away",
        needs: &[Fault::Compaction, Fault::Indeterminate],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::ProbeFoundCompacted),
    },
    Witness {
        name: "an operation reports a damaged record with EnvelopeError naming its stream and \
               sequence",
        needs: &[Fault::Corruption],
        min_producers: 1,
        api: None,
        beyond_grace: false,
        seen: |_, s| s.saw(Event::CorruptReported),
    },
    Witness {
        name: "a fenced sweep pass skips a key whose head is damaged and ends normally",
        needs: &[Fault::Corruption],
        min_producers: 1,
        api: Some(Api::Fenced),
        beyond_grace: false,
        seen: |_, s| s.saw(Event::CorruptSkipped),
    },
];
