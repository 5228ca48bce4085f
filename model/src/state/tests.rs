use std::collections::HashSet;

use super::*;
use crate::config::Config;
use crate::fresh::receipt_bytes;
use crate::model::DedupModel;

fn fingerprint(state: &State) -> u64 {
    ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(state)
}

/// The checker keeps states by their hash alone: a field the hash left
/// out would merge states that differ only in it.
#[test]
fn changing_any_field_of_a_state_changes_its_hash() {
    let model = DedupModel::new(Config::standard()).unwrap();
    let protocol = model.protocol();
    let claim = Hashed::new(protocol.claim("k0", 0).unwrap());
    let later_claim = Hashed::new(protocol.claim("k0", 2_000).unwrap());
    let complete = Hashed::new(protocol.complete("k0", &receipt_bytes("k0", 1), 0).unwrap());
    let release = Hashed::new(protocol.release("k0", 0).unwrap());
    let sweep = Hashed::new(protocol.sweep(0, 500));
    let grant = Grant {
        stamp_ms: 0,
        seq: 0,
    };
    type Change = Box<dyn Fn(&mut State)>;
    let phase = |phase: Phase| move |s: &mut State| s.producers[1].phase = phase;
    let changes: Vec<(&str, Change)> = vec![
        ("tick", Box::new(|s| s.tick = 1)),
        (
            "store",
            Box::new(|s| s.store = Hashed::new(ModelStore::new(2))),
        ),
        (
            "sweeper op",
            Box::new(move |s| s.sweeper.op = Some(SweepPass::Seed(sweep))),
        ),
        (
            "sweeper unflushed",
            Box::new(|s| s.sweeper.session.unflushed = true),
        ),
        ("sweeper lost", Box::new(|s| s.sweeper.session.lost = true)),
        ("producer count", Box::new(|s| s.producers.truncate(2))),
        ("producer key", Box::new(|s| s.producers[1].key = 1)),
        (
            "producer outcomes",
            Box::new(|s| s.producers[1].outcomes = 1),
        ),
        (
            "producer unflushed",
            Box::new(|s| s.producers[1].session.unflushed = true),
        ),
        (
            "producer lost",
            Box::new(|s| s.producers[1].session.lost = true),
        ),
        ("deferred", Box::new(phase(Phase::Deferred))),
        (
            "claiming",
            Box::new(phase(Phase::Claiming {
                op: claim,
                append_seq: 0,
                landed: false,
            })),
        ),
        (
            "claiming, another op",
            Box::new(phase(Phase::Claiming {
                op: later_claim,
                append_seq: 0,
                landed: false,
            })),
        ),
        (
            "claiming, appended at 1",
            Box::new(phase(Phase::Claiming {
                op: claim,
                append_seq: 1,
                landed: false,
            })),
        ),
        (
            "claiming, landed",
            Box::new(phase(Phase::Claiming {
                op: claim,
                append_seq: 0,
                landed: true,
            })),
        ),
        ("delivering", Box::new(phase(Phase::Delivering { grant }))),
        (
            "delivering, later stamp",
            Box::new(phase(Phase::Delivering {
                grant: Grant {
                    stamp_ms: 2_000,
                    seq: 0,
                },
            })),
        ),
        (
            "delivering, later sequence",
            Box::new(phase(Phase::Delivering {
                grant: Grant {
                    stamp_ms: 0,
                    seq: 1,
                },
            })),
        ),
        (
            "completing",
            Box::new(phase(Phase::Completing {
                grant,
                receipt: 1,
                op: complete,
            })),
        ),
        (
            "completing, another receipt",
            Box::new(phase(Phase::Completing {
                grant,
                receipt: 2,
                op: complete,
            })),
        ),
        (
            "releasing",
            Box::new(phase(Phase::Releasing { grant, op: release })),
        ),
        (
            "completed",
            Box::new(phase(Phase::Done(Outcome::Completed))),
        ),
        (
            "duplicate",
            Box::new(phase(Phase::Done(Outcome::Duplicate))),
        ),
        ("deliveries", Box::new(|s| s.keys[1].deliveries = 1)),
        (
            "granted windows",
            Box::new(|s| s.keys[1].granted_windows = 1),
        ),
        (
            "window deliveries",
            Box::new(|s| s.keys[1].window_deliveries = 1),
        ),
        ("attempted", Box::new(|s| s.keys[1].attempted = 1)),
        ("acked 0", Box::new(|s| s.keys[1].acked = Some(0))),
        ("acked 1", Box::new(|s| s.keys[1].acked = Some(1))),
        ("crashes", Box::new(|s| s.budget.crashes += 1)),
        ("store crashes", Box::new(|s| s.budget.store_crashes += 1)),
        ("indeterminate", Box::new(|s| s.budget.indeterminate += 1)),
        (
            "delivery failures",
            Box::new(|s| s.budget.delivery_failures += 1),
        ),
        ("total", Box::new(|s| s.budget.total -= 1)),
        ("pauses", Box::new(|s| s.budget.pauses += 1)),
        ("violations", Box::new(|s| s.flag(Invariant::S1))),
        ("events", Box::new(|s| s.note(Event::LostRace))),
        ("late events", Box::new(|s| s.note(Event::CorruptSkipped))),
        ("skews", Box::new(|s| s.budget.skews += 1)),
        ("stale reads", Box::new(|s| s.budget.stale_reads += 1)),
        ("compactions", Box::new(|s| s.budget.compactions += 1)),
        ("corruptions", Box::new(|s| s.budget.corruptions += 1)),
        ("sink fence", Box::new(|s| s.keys[1].sink_fence = Some(0))),
        ("claim ids", Box::new(|s| s.keys[1].claim_ids = 1)),
        ("durable", Box::new(|s| s.keys[1].durable = 1)),
    ];
    let base = model.initial_state();
    let mut seen = HashSet::from([fingerprint(&base)]);
    for (name, change) in &changes {
        let mut state = base.clone();
        change(&mut state);
        assert_ne!(state, base, "{name} changes the state");
        assert!(seen.insert(fingerprint(&state)), "{name} changes the hash");
    }
}
