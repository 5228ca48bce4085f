//! The properties: `always` for the invariants of `docs/spec.md` ("Invariants"), and
//! `sometimes` witnesses that show each interesting branch is reachable (a
//! property that can never fire proves nothing).

use atmostonce::core::PhaseKind;
use stateright::Property;

use crate::config::{Api, Config, Fault};
use crate::discovered::Discovered;
use crate::model::DedupModel;
use atmostonce_verify::catalogue::Invariant;

use crate::state::{Event, Outcome, Phase, State};
use crate::store::RecordKind;

/// An `always` property.
pub struct Always {
    /// Its name, as reported.
    pub name: &'static str,
    /// The invariant.
    pub invariant: Invariant,
    /// The API it is checked on (`None`: both).
    pub api: Option<Api>,
    /// True when it holds in a state.
    pub holds: fn(&DedupModel, &State) -> bool,
}

impl Always {
    /// True when the configuration checks it: its API, and for the seed
    /// API's A1 the timing assumption.
    #[must_use]
    pub fn applies(&self, config: &Config) -> bool {
        self.api.is_none_or(|api| api == config.api)
            && (self.invariant != Invariant::A1
                || config.api == Api::Fenced
                || config.timing_assumption())
    }

    /// True when it belongs to the configuration's API.
    #[must_use]
    pub fn of_api(&self, api: Api) -> bool {
        self.api.is_none_or(|a| a == api)
    }
}

/// A `sometimes` property: a branch that must be reachable.
pub struct Witness {
    /// Its name, as reported.
    pub name: &'static str,
    /// The faults it needs; without one of them it is not applicable.
    pub needs: &'static [Fault],
    /// The producers it needs.
    pub min_producers: usize,
    /// The API it is looked for on (`None`: both).
    pub api: Option<Api>,
    /// Looked for only with a clock skew of the grace or more (the scenario
    /// "clock skew beyond the grace", see `Config::skew_beyond_grace`).
    pub beyond_grace: bool,
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
            && self.of_api(config.api)
            && (!self.beyond_grace || config.skew_beyond_grace())
    }

    /// True when it belongs to the configuration's API.
    #[must_use]
    pub fn of_api(&self, api: Api) -> bool {
        self.api.is_none_or(|a| a == api)
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
        api: None,
        holds: |_, s| !s.violated(Invariant::S1),
    },
    Always {
        name: "S2 receipt stability: a stored receipt is never replaced or removed before expiry",
        invariant: Invariant::S2,
        api: None,
        holds: |_, s| !s.violated(Invariant::S2),
    },
    Always {
        name: "S3 no phantom receipt: every Completed(R) answer follows a completion with R",
        invariant: Invariant::S3,
        api: None,
        holds: |_, s| !s.violated(Invariant::S3),
    },
    Always {
        name: "S4 acknowledged writes survive: an acknowledged completion stays visible until expiry",
        invariant: Invariant::S4,
        api: None,
        holds: |_, s| !s.violated(Invariant::S4),
    },
    Always {
        name: "S5 fencing: a completion or release only supersedes its own claim",
        invariant: Invariant::S5,
        api: None,
        holds: |_, s| !s.violated(Invariant::S5),
    },
    Always {
        name: "S6 collision safety: an answer for a key is based only on its own records",
        invariant: Invariant::S6,
        api: None,
        holds: |_, s| !s.violated(Invariant::S6),
    },
    Always {
        name: "S7 linearizability: every append and answer is a step of the sequential spec",
        invariant: Invariant::S7,
        api: None,
        holds: |_, s| !s.violated(Invariant::S7),
    },
    Always {
        name: "A1 at-most-once delivery: at most one delivery per window (timing assumption on)",
        invariant: Invariant::A1,
        api: Some(Api::Seed),
        holds: |_, s| !s.violated(Invariant::A1),
    },
    Always {
        name: "internal: the model explains every step (no unknown key or stream, no undecodable append)",
        invariant: Invariant::Internal,
        api: None,
        holds: |_, s| !s.violated(Invariant::Internal),
    },
    Always {
        name: "A1 at-most-once delivery: the fenced downstream accepts at most one delivery per \
               claim window, and none of an older window (unconditional)",
        invariant: Invariant::A1,
        api: Some(Api::Fenced),
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
        seen: |m, s| {
            m.stream_names()
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
];

/// The stateright properties of `config`: every invariant (A1 only under
/// its timing assumption) and every applicable witness. With `discovered`
/// (a search under way), only those without a discovery yet, each
/// reporting its first discovery to it (see [`Discovered`]).
#[must_use]
pub(crate) fn properties(
    config: &Config,
    discovered: Option<&Discovered>,
) -> Vec<Property<DedupModel>> {
    let open = |bit: u64| discovered.is_none_or(|d| !d.contains(bit));
    let mut properties: Vec<Property<DedupModel>> = INVARIANTS
        .iter()
        .zip(ALWAYS_ONCE)
        .enumerate()
        .filter(|(_, (a, _))| a.applies(config))
        .filter(|(i, _)| open(invariant_bit(*i)))
        .map(|(_, (a, once))| match discovered {
            Some(_) => Property::always(a.name, once),
            None => Property::always(a.name, a.holds),
        })
        .collect();
    properties.extend(
        WITNESSES
            .iter()
            .zip(SOMETIMES_ONCE)
            .enumerate()
            .filter(|(_, (w, _))| w.applies(config))
            .filter(|(j, _)| open(witness_bit(*j)))
            .map(|(_, (w, once))| match discovered {
                Some(_) => Property::sometimes(w.name, once),
                None => Property::sometimes(w.name, w.seen),
            }),
    );
    properties
}

fn invariant_bit(index: usize) -> u64 {
    1 << index
}

fn witness_bit(index: usize) -> u64 {
    1 << (INVARIANTS.len() + index)
}

/// `condition` in a search: once it has returned `discovery` (the value
/// stateright records a discovery on), it returns the other value.
fn once(
    model: &DedupModel,
    state: &State,
    bit: u64,
    condition: Condition,
    discovery: bool,
) -> bool {
    let Some(discovered) = model.discovered() else {
        return condition(model, state);
    };
    if discovered.contains(bit) {
        return !discovery;
    }
    let value = condition(model, state);
    if value == discovery {
        discovered.insert(bit);
    }
    value
}

/// `INVARIANTS[I]`'s condition in a search: a violation already
/// discovered is not reported again.
fn always_once<const I: usize>(model: &DedupModel, state: &State) -> bool {
    once(model, state, invariant_bit(I), INVARIANTS[I].holds, false)
}

/// `WITNESSES[J]`'s condition in a search: a witness already discovered is
/// not reported again.
fn sometimes_once<const J: usize>(model: &DedupModel, state: &State) -> bool {
    once(model, state, witness_bit(J), WITNESSES[J].seen, true)
}

type Condition = fn(&DedupModel, &State) -> bool;

const ALWAYS_ONCE: [Condition; 10] = [
    always_once::<0>,
    always_once::<1>,
    always_once::<2>,
    always_once::<3>,
    always_once::<4>,
    always_once::<5>,
    always_once::<6>,
    always_once::<7>,
    always_once::<8>,
    always_once::<9>,
];

const SOMETIMES_ONCE: [Condition; 24] = [
    sometimes_once::<0>,
    sometimes_once::<1>,
    sometimes_once::<2>,
    sometimes_once::<3>,
    sometimes_once::<4>,
    sometimes_once::<5>,
    sometimes_once::<6>,
    sometimes_once::<7>,
    sometimes_once::<8>,
    sometimes_once::<9>,
    sometimes_once::<10>,
    sometimes_once::<11>,
    sometimes_once::<12>,
    sometimes_once::<13>,
    sometimes_once::<14>,
    sometimes_once::<15>,
    sometimes_once::<16>,
    sometimes_once::<17>,
    sometimes_once::<18>,
    sometimes_once::<19>,
    sometimes_once::<20>,
    sometimes_once::<21>,
    sometimes_once::<22>,
    sometimes_once::<23>,
];

// One condition per property (`zip` would silently drop the rest), and a
// bit for each in a `u64`.
const _: () = assert!(ALWAYS_ONCE.len() == INVARIANTS.len());
const _: () = assert!(SOMETIMES_ONCE.len() == WITNESSES.len());
const _: () = assert!(INVARIANTS.len() + WITNESSES.len() <= 64);

#[cfg(test)]
mod tests {
    use stateright::Model;

    use super::*;
    use crate::config::Config;

    #[test]
    fn a_search_reports_a_property_once_then_leaves_it_out() {
        let model = DedupModel::new(Config::standard()).unwrap();
        let search = model.for_search();
        let all = search.properties();
        assert_eq!(all.len(), model.properties().len());
        let mut violating = model.initial_state();
        violating.flag(Invariant::S1);
        let s1 = all.iter().find(|p| p.name == INVARIANTS[0].name).unwrap();
        assert!(
            !(s1.condition)(&search, &violating),
            "the first violation is reported"
        );
        assert!((s1.condition)(&search, &violating), "a second one is not");
        let left = search.properties();
        assert_eq!(left.len(), all.len() - 1);
        assert!(left.iter().all(|p| p.name != s1.name));

        // Another search starts afresh; the model itself (the Explorer's)
        // evaluates every property in every state.
        assert_eq!(model.for_search().properties().len(), all.len());
        let plain = model.properties();
        let s1 = plain.iter().find(|p| p.name == s1.name).unwrap();
        assert!(!(s1.condition)(&model, &violating));
        assert!(!(s1.condition)(&model, &violating));
        assert_eq!(model.properties().len(), all.len());
    }

    #[test]
    fn a_witness_is_reported_once_in_a_search() {
        let model = DedupModel::new(Config::standard()).unwrap();
        let search = model.for_search();
        let mut witnessing = model.initial_state();
        witnessing.keys[0].deliveries = 1;
        let name = WITNESSES[0].name;
        let delivered = |m: &DedupModel| {
            m.properties()
                .into_iter()
                .find(|p| p.name == name)
                .map(|p| p.condition)
        };
        let condition = delivered(&search).unwrap();
        assert!(condition(&search, &witnessing));
        assert!(!condition(&search, &witnessing));
        assert!(delivered(&search).is_none());
        let plain = delivered(&model).unwrap();
        assert!(plain(&model, &witnessing) && plain(&model, &witnessing));
    }
}
