//! The fenced API's model check (`--api fenced`) on small configurations:
//! every invariant holds, A1 unconditionally (the downstream is fenced),
//! and every applicable witness is reached.

use atmostonce_model::{Api, Config, Fault, FaultSet, Invariant, SearchOptions, Verdict, check};

fn fenced(producers: usize, keys: usize, faults: &[Fault]) -> Config {
    let mut config = Config::standard();
    config.api = Api::Fenced;
    config.producers = producers;
    config.keys = keys;
    config.faults = faults
        .iter()
        .fold(FaultSet::none(), |set, fault| set.with(*fault));
    // One expiry epoch: a claim or receipt of tick 0 has expired at tick 1,
    // which is all a takeover, a zombie and an expiry need.
    config.bounds.max_tick = 1;
    config
}

fn assert_witnessed(report: &atmostonce_model::Report, name: &str) {
    assert!(
        matches!(report.verdict(name), Some(Verdict::Witnessed(_))),
        "{name:?} not witnessed:\n{report}"
    );
}

#[test]
fn zombies_are_fenced_and_an_indeterminate_claim_is_resolved_by_its_claim_id() {
    let report = check(
        &fenced(2, 1, &[Fault::Pause, Fault::Indeterminate]),
        SearchOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    for invariant in [Invariant::S1, Invariant::S5, Invariant::S7, Invariant::A1] {
        assert_eq!(
            report.invariant(invariant),
            Some(&Verdict::Holds),
            "{report}"
        );
    }
    for name in [
        "an indeterminate claim append is resolved by its claim id",
        "a zombie's completion is refused with StaleClaim",
        "a zombie's release is refused with StaleClaim and appends nothing",
        "the fenced downstream refuses a zombie's delivery (a lower fence than it accepted)",
        "a fenced claim loses an append race and decides again",
    ] {
        assert_witnessed(&report, name);
    }
}

/// The configuration that found the engine's decisions on reads a store
/// crash undid (an expiry of a newer claim, a claim over a live receipt):
/// fixed by re-reading the head after the flush.
#[test]
fn a_store_crash_under_a_read_never_lets_a_decision_land_on_other_records() {
    let report = check(
        &fenced(2, 1, &[Fault::StoreCrash, Fault::Pause]),
        SearchOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert_witnessed(
        &report,
        "a store crash drops an unflushed append and the next flush reports it",
    );
    assert_eq!(report.invariant(Invariant::S4), Some(&Verdict::Holds));
}

#[test]
fn a_fenced_key_sharing_its_stream_is_refused_with_dedup_collision() {
    let report = check(&fenced(1, 2, &[Fault::Collision]), SearchOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    assert_witnessed(
        &report,
        "a key whose stream holds another key's records is refused with DedupCollision",
    );
}

#[test]
fn the_seed_only_properties_are_not_listed_for_the_fenced_api() {
    let report = check(&fenced(1, 1, &[]), SearchOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.verdict(atmostonce_model::A1_VACUITY), None);
}
