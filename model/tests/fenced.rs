//! The fenced API's model check (`--api fenced`) on small configurations:
//! every invariant holds, A1 unconditionally (the downstream is fenced),
//! and every applicable witness is reached, also under the store faults
//! `compaction` and `corruption`.

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

/// The idle-tick reduction (a tick is left out when no actor is in an
/// operation and nothing is stamped at the current tick) keeps every
/// verdict, invariant and witness alike, and visits fewer states.
#[test]
fn leaving_out_idle_ticks_keeps_every_verdict_and_visits_fewer_states() {
    let mut reduced = fenced(2, 1, &[Fault::Pause, Fault::Crash, Fault::DeliveryFailure]);
    reduced.bounds.max_tick = 2;
    let mut full = reduced.clone();
    full.skip_idle_ticks = false;
    let search = SearchOptions::default();
    let (reduced, full) = (
        check(&reduced, search).unwrap(),
        check(&full, search).unwrap(),
    );
    let kinds = |report: &atmostonce_model::Report| {
        report
            .verdicts
            .iter()
            .map(|(name, verdict)| (*name, std::mem::discriminant(verdict)))
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(&reduced), kinds(&full), "{reduced}\n{full}");
    assert!(reduced.passed(), "{reduced}");
    assert!(
        reduced.unique_states < full.unique_states,
        "{} states reduced, {} without",
        reduced.unique_states,
        full.unique_states
    );
}

/// A total fault budget bounds the faults of a run in all: with a total of
/// one, no run has both a producer crash and a failed delivery, and the
/// witnesses that need one fault are still reached.
#[test]
fn a_total_fault_budget_keeps_every_one_fault_witness() {
    let mut config = fenced(2, 1, &[Fault::Crash, Fault::DeliveryFailure, Fault::Pause]);
    let unbounded = check(&config, SearchOptions::default()).unwrap();
    config.bounds.total_faults = Some(1);
    let bounded = check(&config, SearchOptions::default()).unwrap();
    assert!(bounded.passed(), "{bounded}");
    assert!(bounded.unique_states < unbounded.unique_states);
    for name in [
        "the sweeper expires an in-flight claim whose holder crashed",
        "a failed delivery releases the claim",
        "a zombie's completion is refused with StaleClaim",
    ] {
        assert_witnessed(&bounded, name);
    }
}

/// Without a pause left, no tick may overtake a live claim: the zombie
/// witnesses need one.
#[test]
fn the_zombie_witnesses_need_a_pause() {
    let mut config = fenced(2, 1, &[Fault::Pause]);
    config.bounds.pauses = 0;
    let report = check(&config, SearchOptions::default()).unwrap();
    assert_eq!(
        report.verdict("a zombie's completion is refused with StaleClaim"),
        Some(&Verdict::NotWitnessed),
        "{report}"
    );
    config.bounds.pauses = 1;
    let report = check(&config, SearchOptions::default()).unwrap();
    assert_witnessed(&report, "a zombie's completion is refused with StaleClaim");
}

/// A janitor compacting below heads at any moment (`compaction`) excuses
/// nothing: every invariant holds, and both its races are reached.
#[test]
fn the_fenced_api_holds_every_invariant_while_a_janitor_compacts_under_it() {
    let faults = [Fault::Indeterminate, Fault::Pause, Fault::Compaction];
    let report = check(&fenced(2, 1, &faults), SearchOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.invariant(Invariant::S7), Some(&Verdict::Holds));
    for name in [
        "the janitor compacts a stream while an operation or a sweep pass is under way",
        "an indeterminate append's probe finds its record compacted away",
    ] {
        assert_witnessed(&report, name);
    }
}

/// A damaged record (`corruption`) is reported by name, never answered
/// from, and the sweep skips it and ends normally.
#[test]
fn the_fenced_api_reports_damaged_records_and_its_sweep_skips_them() {
    let report = check(
        &fenced(2, 1, &[Fault::Corruption, Fault::Pause]),
        SearchOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    for invariant in [Invariant::S7, Invariant::S8, Invariant::A2] {
        assert_eq!(
            report.invariant(invariant),
            Some(&Verdict::Holds),
            "{report}"
        );
    }
    for name in [
        "an operation reports a damaged record with EnvelopeError naming its stream and sequence",
        "a fenced sweep pass skips a key whose head is damaged and ends normally",
    ] {
        assert_witnessed(&report, name);
    }
}
