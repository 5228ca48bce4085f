//! The properties: `always` for the invariants of DESIGN.md section 5, and
//! `sometimes` witnesses that show each interesting branch is reachable (a
//! property that can never fire proves nothing).

use stateright::Property;

use crate::config::{Config, Fault};
use crate::model::DedupModel;
use crate::state::{Invariant, Outcome, Phase, State};
use crate::store::RecordKind;

/// An `always` property.
pub struct Always {
    /// Its name, as reported.
    pub name: &'static str,
    /// The invariant.
    pub invariant: Invariant,
    /// True when it holds in a state.
    pub holds: fn(&DedupModel, &State) -> bool,
}

/// A `sometimes` property: a branch that must be reachable.
pub struct Witness {
    /// Its name, as reported.
    pub name: &'static str,
    /// The faults it needs; without one of them it is not applicable.
    pub needs: &'static [Fault],
    /// The producers it needs.
    pub min_producers: usize,
    /// True in a state that witnesses it.
    pub seen: fn(&DedupModel, &State) -> bool,
}

impl Witness {
    /// True when the configuration can reach it.
    #[must_use]
    pub fn applies(&self, config: &Config) -> bool {
        self.needs
            .iter()
            .all(|fault| config.faults.contains(*fault))
            && config.producers >= self.min_producers
    }
}

/// The name of the A1 vacuity witness (see [`WITNESSES`]).
pub const A1_VACUITY: &str =
    "A1 vacuity: without the timing assumption a key is delivered twice in one window";

/// The invariants, as `always` properties.
pub const INVARIANTS: &[Always] = &[
    Always {
        name: "S1 one winner: at most one claim granted between two terminal events",
        invariant: Invariant::S1,
        holds: |_, s| !s.violated(Invariant::S1),
    },
    Always {
        name: "S2 receipt stability: a stored receipt is never replaced or removed before expiry",
        invariant: Invariant::S2,
        holds: |_, s| !s.violated(Invariant::S2),
    },
    Always {
        name: "S3 no phantom receipt: every Completed(R) answer follows a completion with R",
        invariant: Invariant::S3,
        holds: |_, s| !s.violated(Invariant::S3),
    },
    Always {
        name: "S4 acknowledged writes survive: an acknowledged completion stays visible until expiry",
        invariant: Invariant::S4,
        holds: |_, s| !s.violated(Invariant::S4),
    },
    Always {
        name: "S5 fencing: a completion or release only supersedes its own claim",
        invariant: Invariant::S5,
        holds: |_, s| !s.violated(Invariant::S5),
    },
    Always {
        name: "S6 collision safety: an answer for a key is based only on its own records",
        invariant: Invariant::S6,
        holds: |_, s| !s.violated(Invariant::S6),
    },
    Always {
        name: "S7 linearizability: every append and answer is a step of the sequential spec",
        invariant: Invariant::S7,
        holds: |_, s| !s.violated(Invariant::S7),
    },
    Always {
        name: "A1 at-most-once delivery: at most one delivery per window (timing assumption on)",
        invariant: Invariant::A1,
        holds: |_, s| !s.violated(Invariant::A1),
    },
];

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
        seen: |_, s| s.keys.iter().any(|k| k.deliveries > 0),
    },
    Witness {
        name: "a receipt is stored and acknowledged",
        needs: &[],
        min_producers: 1,
        seen: |_, s| any_outcome(s, Outcome::Completed),
    },
    Witness {
        name: "a duplicate is answered with the stored receipt",
        needs: &[],
        min_producers: 2,
        seen: |_, s| any_outcome(s, Outcome::Duplicate),
    },
    Witness {
        name: "a claim is deferred because the key is in flight",
        needs: &[],
        min_producers: 2,
        seen: |_, s| any_phase(s, |p| *p == Phase::Deferred),
    },
    Witness {
        name: "a claim loses an append race and re-reads the winner's record",
        needs: &[],
        min_producers: 2,
        seen: |_, s| {
            any_phase(
                s,
                |p| matches!(p, Phase::Claiming { op, .. } if op.phase_name() == "re-reading after a lost race"),
            )
        },
    },
    Witness {
        name: "the sweeper expires a stored receipt",
        needs: &[],
        min_producers: 1,
        seen: |_, s| any_adjacent(s, RecordKind::Complete, RecordKind::Expire),
    },
    Witness {
        name: "a key is claimed again after an expiry",
        needs: &[],
        min_producers: 2,
        seen: |_, s| any_adjacent(s, RecordKind::Expire, RecordKind::Claim),
    },
    Witness {
        name: "a failed delivery releases the claim",
        needs: &[Fault::DeliveryFailure],
        min_producers: 1,
        seen: |_, s| any_adjacent(s, RecordKind::Claim, RecordKind::Release),
    },
    Witness {
        name: "a key is claimed again after a release",
        needs: &[Fault::DeliveryFailure],
        min_producers: 1,
        seen: |_, s| any_adjacent(s, RecordKind::Release, RecordKind::Claim),
    },
    Witness {
        name: "the sweeper expires an in-flight claim whose holder crashed",
        needs: &[Fault::Crash],
        min_producers: 1,
        seen: |_, s| any_adjacent(s, RecordKind::Claim, RecordKind::Expire),
    },
    Witness {
        name: "an indeterminate append is resolved by re-reading",
        needs: &[Fault::Indeterminate],
        min_producers: 1,
        seen: |_, s| {
            any_phase(s, |p| match p {
                Phase::Claiming { op, .. } => {
                    op.phase_name() == "re-reading after an indeterminate append"
                }
                Phase::Completing { op, .. } => {
                    op.phase_name() == "re-reading after an indeterminate append"
                }
                Phase::Releasing { op, .. } => {
                    op.phase_name() == "re-reading after an indeterminate append"
                }
                _ => false,
            })
        },
    },
    Witness {
        name: "a store crash drops an unflushed append and the next flush reports it",
        needs: &[Fault::StoreCrash],
        min_producers: 1,
        seen: |_, s| s.sweeper.session.lost || s.producers.iter().any(|p| p.session.lost),
    },
    Witness {
        name: "a release loses its race to a completion and leaves the receipt",
        needs: &[Fault::Pause, Fault::DeliveryFailure],
        min_producers: 2,
        seen: |m, s| {
            s.producers.iter().any(|p| match &p.phase {
                Phase::Releasing { op, .. } => {
                    op.phase_name() == "re-reading after a lost race"
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
        seen: |_, s| any_outcome(s, Outcome::GaveUp),
    },
    Witness {
        name: A1_VACUITY,
        needs: &[Fault::Pause],
        min_producers: 2,
        seen: |_, s| s.keys.iter().any(|k| k.window_deliveries > 1),
    },
];

/// The stateright properties of `config`: every invariant (A1 only under
/// its timing assumption) and every applicable witness.
#[must_use]
pub fn properties(config: &Config) -> Vec<Property<DedupModel>> {
    let mut properties: Vec<Property<DedupModel>> = INVARIANTS
        .iter()
        .filter(|a| a.invariant != Invariant::A1 || config.timing_assumption())
        .map(|a| Property::always(a.name, a.holds))
        .collect();
    properties.extend(
        WITNESSES
            .iter()
            .filter(|w| w.applies(config))
            .map(|w| Property::sometimes(w.name, w.seen)),
    );
    properties
}
