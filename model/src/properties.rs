//! The properties: `always` for the invariants of `docs/spec.md` ("Invariants"), and
//! `sometimes` witnesses that show each interesting branch is reachable (a
//! property that can never fire proves nothing).

use stateright::Property;

use crate::config::{Api, Config, Fault};
use crate::discovered::Discovered;
use crate::model::DedupModel;
use atmostonce_verify::catalogue::Invariant;

use crate::state::State;

mod witnesses;

pub use witnesses::WITNESSES;

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
            && (!matches!(self.invariant, Invariant::S8 | Invariant::A2)
                || config.faults.contains(Fault::Corruption))
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
    Always {
        name: "S8 codec: an envelope error names a damaged record, and no answer comes from \
               a damaged version-2 head",
        invariant: Invariant::S8,
        api: None,
        holds: |_, s| !s.violated(Invariant::S8),
    },
    Always {
        name: "A2 progress (safety form, with corruption): a sweep pass never ends on a \
               damaged record; it names the key and goes on",
        invariant: Invariant::A2,
        api: None,
        holds: |_, s| !s.violated(Invariant::A2),
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

const ALWAYS_ONCE: [Condition; 12] = [
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
    always_once::<10>,
    always_once::<11>,
];

const SOMETIMES_ONCE: [Condition; 28] = [
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
    sometimes_once::<24>,
    sometimes_once::<25>,
    sometimes_once::<26>,
    sometimes_once::<27>,
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
