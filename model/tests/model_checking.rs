//! Exhaustive checks of small configurations, symmetry, vacuity, and the
//! replay of counterexamples against the real async engine.

use atmostonce_model::replay::replay;
use atmostonce_model::{
    A1_VACUITY, Action, Call, Config, DedupModel, Fault, FaultSet, INVARIANTS, Invariant,
    ProducerAction, SearchOptions, Verdict, WITNESSES, check, replay_actions,
};

fn config(producers: usize, faults: &[Fault]) -> Config {
    let mut config = Config::standard();
    config.producers = producers;
    config.faults = faults.iter().fold(FaultSet::none(), |set, f| set.with(*f));
    config
}

fn standard_with(producers: usize) -> Config {
    let mut config = Config::standard();
    config.producers = producers;
    config
}

fn violated(report: &atmostonce_model::Report, invariant: Invariant) -> bool {
    matches!(report.invariant(invariant), Some(Verdict::Violated(_)))
}

#[test]
fn crashes_and_failed_deliveries_break_no_invariant_of_the_seed_api() {
    let report = check(
        &config(3, &[Fault::Crash, Fault::DeliveryFailure]),
        SearchOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn the_standard_faults_find_the_seed_violations_and_witness_every_branch() {
    let report = check(&standard_with(2), SearchOptions::default()).unwrap();
    for invariant in [
        Invariant::S1,
        Invariant::S2,
        Invariant::S4,
        Invariant::S5,
        Invariant::S7,
        Invariant::A1,
    ] {
        assert!(
            violated(&report, invariant),
            "{invariant:?} should be violated:\n{report}"
        );
    }
    for invariant in [Invariant::S3, Invariant::S6] {
        assert_eq!(
            report.invariant(invariant),
            Some(&Verdict::Holds),
            "{report}"
        );
    }
    assert!(
        !report
            .verdicts
            .iter()
            .any(|(_, v)| *v == Verdict::NotWitnessed),
        "every applicable witness is reached:\n{report}"
    );
    assert!(!report.passed());
    assert_eq!(report.catalogue_verdict().names(), "S1,S2,S4,S5,S7,A1");
    assert_eq!(report.invariant(Invariant::Internal), Some(&Verdict::Holds));
}

#[test]
fn symmetry_reduction_keeps_every_verdict_and_visits_fewer_states() {
    for config in [
        standard_with(2),
        config(3, &[Fault::Crash, Fault::DeliveryFailure]),
    ] {
        let reduced = check(
            &config,
            SearchOptions {
                symmetry: true,
                threads: 2,
            },
        )
        .unwrap();
        let full = check(
            &config,
            SearchOptions {
                symmetry: false,
                threads: 2,
            },
        )
        .unwrap();
        let kinds = |r: &atmostonce_model::Report| -> Vec<(String, String)> {
            r.verdicts
                .iter()
                .map(|(name, v)| {
                    let kind = match v {
                        Verdict::Witnessed(_) => "witnessed".to_owned(),
                        // Shortest counterexamples come from the same
                        // breadth-first search either way: they must match.
                        other => format!("{other:?}"),
                    };
                    ((*name).to_owned(), kind)
                })
                .collect()
        };
        assert_eq!(kinds(&reduced), kinds(&full), "{config}");
        assert!(
            reduced.unique_states * 3 / 2 < full.unique_states,
            "{config}: {} states with symmetry, {} without",
            reduced.unique_states,
            full.unique_states
        );
    }
}

#[test]
fn without_the_timing_assumption_a_double_delivery_is_reachable() {
    let report = check(
        &config(2, &[Fault::Crash, Fault::DeliveryFailure, Fault::Pause]),
        SearchOptions::default(),
    )
    .unwrap();
    assert!(
        matches!(report.verdict(A1_VACUITY), Some(Verdict::Witnessed(_))),
        "{report}"
    );
    assert_eq!(
        report.invariant(Invariant::A1),
        Some(&Verdict::NotApplicable)
    );
    // The seed API has no fencing: the paused holder completes over the
    // newer holder's claim.
    assert!(violated(&report, Invariant::S5), "{report}");
}

#[test]
fn the_vacuity_witness_is_not_applicable_under_the_timing_assumption() {
    let report = check(&config(2, &[]), SearchOptions::default()).unwrap();
    assert_eq!(report.verdict(A1_VACUITY), Some(&Verdict::NotApplicable));
    assert!(report.passed(), "{report}");
}

#[test]
fn an_applicable_witness_that_is_never_reached_fails_the_check() {
    let mut config = config(2, &[Fault::DeliveryFailure]);
    config.bounds.delivery_failures = 0; // the fault is on but can never happen
    let report = check(&config, SearchOptions::default()).unwrap();
    assert_eq!(
        report.verdict("a failed delivery releases the claim"),
        Some(&Verdict::NotWitnessed)
    );
    assert!(!report.passed());
}

#[test]
fn colliding_keys_are_refused_never_mixed() {
    let mut config = config(2, &[Fault::Collision, Fault::Crash]);
    config.keys = 2;
    let model = DedupModel::new(config.clone()).unwrap();
    assert_eq!(model.stream_names().len(), 1, "both keys share one stream");
    let report = check(&config, SearchOptions::default()).unwrap();
    assert_eq!(
        report.invariant(Invariant::S6),
        Some(&Verdict::Holds),
        "{report}"
    );
    assert!(report.passed(), "{report}");
}

/// The seed's "an identical record means my append landed" test, as the
/// model found it: two producers claim k0 in the same millisecond, one
/// append fails without being applied, the other lands, and the first one's
/// re-read finds an identical record and takes it for its own.
fn same_millisecond_claims() -> Vec<Action> {
    use ProducerAction::Call as Do;
    vec![
        Action::Producer(0, Do(Call::Normal)), // p0 reads: absent
        Action::Producer(0, Do(Call::AppendFailsNotApplied)), // p0's claim: error, not applied
        Action::Producer(1, Do(Call::Normal)), // p1 reads: absent
        Action::Producer(1, Do(Call::Normal)), // p1's identical claim lands
        Action::Producer(0, Do(Call::Normal)), // p0 re-reads: "mine landed"
        Action::Producer(0, Do(Call::Normal)), // p0 flushes: Claimed
        Action::Producer(1, Do(Call::Normal)), // p1 flushes: Claimed
    ]
}

#[test]
fn seed_api_grants_two_claims_when_an_indeterminate_append_meets_an_identical_record() {
    let model = DedupModel::new(config(2, &[Fault::Indeterminate])).unwrap();
    let states = replay_actions(&model, &same_millisecond_claims()).unwrap();
    assert!(states.last().unwrap().violated(Invariant::S1));
    // It is the shortest counterexample the checker reports.
    let report = check(model.config(), SearchOptions::default()).unwrap();
    assert_eq!(
        report.invariant(Invariant::S1),
        Some(&Verdict::Violated(same_millisecond_claims()))
    );
    // And the real async engine does exactly the same.
    let replayed = replay(&model, &same_millisecond_claims()).unwrap();
    assert_eq!(replayed.claims_granted(), 2, "{:#?}", replayed.answers);
    // S7 sees it one step earlier: producer 0 is answered Claimed although
    // no claim of its own ever landed.
    assert_eq!(
        report.invariant(Invariant::S7),
        Some(&Verdict::Violated(same_millisecond_claims()[..6].to_vec()))
    );
}

#[test]
fn every_seed_api_counterexample_replays_against_the_async_engine() {
    let mut configs = vec![
        standard_with(2),
        config(2, &[Fault::Crash, Fault::DeliveryFailure, Fault::Pause]),
    ];
    configs.push(config(2, &[Fault::StoreCrash, Fault::Crash]));
    // F4, F4b and F5: the model's damage is the fault table's, applied
    // alike to the replay's table.
    configs.push(config(2, &[Fault::Corruption]));
    let mut replayed = 0;
    for config in configs {
        let model = DedupModel::new(config.clone()).unwrap();
        let report = check(&config, SearchOptions::default()).unwrap();
        for always in INVARIANTS {
            let Some(Verdict::Violated(actions)) = report.verdict(always.name) else {
                continue;
            };
            let outcome = replay(&model, actions)
                .unwrap_or_else(|e| panic!("{config}: {}: {e}", always.name));
            assert!(
                outcome.final_state.violated(always.invariant),
                "{config}: the replayed path ends in a violation of {}",
                always.name
            );
            replayed += 1;
        }
    }
    assert!(
        replayed >= 7,
        "only {replayed} counterexamples were replayed"
    );
}

#[test]
fn a_replay_that_diverges_from_the_engine_is_reported() {
    let model = DedupModel::new(config(2, &[Fault::Indeterminate])).unwrap();
    // A path that is not the model's: producer 0 cannot deliver before it
    // holds a claim.
    let error = replay(&model, &[Action::Producer(0, ProducerAction::Deliver)]).unwrap_err();
    assert!(error.contains("not enabled"), "{error}");
}

#[test]
fn every_witness_has_a_unique_name() {
    let mut names: Vec<&str> = WITNESSES
        .iter()
        .map(|w| w.name)
        .chain(INVARIANTS.iter().map(|a| a.name))
        .collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count);
}

fn p(index: u8, action: ProducerAction) -> Action {
    Action::Producer(index, action)
}

const NEXT: ProducerAction = ProducerAction::Call(Call::Normal);

/// The opening of both store-crash counterexamples: producer 0 claims k0
/// and crashes before flushing; at tick 1 the sweeper scans and expires the
/// orphaned claim; none of it is flushed yet.
fn orphaned_claim_expired_unflushed() -> Vec<Action> {
    vec![
        p(0, NEXT),                    // p0 reads k0: absent
        p(0, NEXT),                    // p0 appends its claim at seq 0 (not flushed)
        p(0, ProducerAction::Crash),   // p0 crashes, restarts with no memory
        Action::Tick,                  // tick 1: the claim has expired
        Action::Sweeper(Call::Normal), // the sweeper scans: claim at seq 0, expired
    ]
}

#[test]
fn seed_api_lets_a_stale_claim_land_on_a_receipt_when_a_store_crash_reuses_sequences() {
    let mut script = orphaned_claim_expired_unflushed();
    script.extend([
        Action::Sweeper(Call::Normal), // expiry tombstone at seq 1 (not flushed)
        p(0, NEXT),                    // p0 reads k0: [claim, tombstone] -> absent, next seq 2
        Action::StoreCrash,            // both unflushed records are gone: the stream is empty
        p(1, NEXT),                    // p1 reads k0: absent
        p(1, NEXT),                    // p1 appends its claim at seq 0
        p(1, NEXT),                    // p1 flushes: Claimed
        p(1, ProducerAction::Deliver), // p1 delivers
        p(1, NEXT),                    // p1's completion reads k0
        p(1, NEXT),                    // p1 appends receipt k0#1 at seq 1
        p(0, NEXT),                    // p0's stale claim lands at seq 2, over the receipt
    ]);
    let config = config(2, &[Fault::StoreCrash, Fault::Crash]);
    let model = DedupModel::new(config.clone()).unwrap();
    let states = replay_actions(&model, &script).unwrap();
    assert!(states.last().unwrap().violated(Invariant::S2));
    let report = check(&config, SearchOptions::default()).unwrap();
    assert_eq!(
        report.invariant(Invariant::S2),
        Some(&Verdict::Violated(script.clone()))
    );
    let replayed = replay(&model, &script).unwrap();
    assert_eq!(replayed.claims_granted(), 1, "{:#?}", replayed.answers);
}

#[test]
fn seed_api_lets_a_stale_expiry_land_on_a_fresh_claim_when_a_store_crash_reuses_sequences() {
    let mut script = orphaned_claim_expired_unflushed();
    script.extend([
        Action::StoreCrash,            // the claim is gone; the sweeper still plans seq 1
        p(0, NEXT),                    // p0 (restarted) reads k0: absent
        p(0, NEXT),                    // p0 appends a fresh claim at seq 0
        p(0, NEXT),                    // p0 flushes: Claimed
        Action::Sweeper(Call::Normal), // the stale expiry lands at seq 1, over the fresh claim
        p(0, ProducerAction::Deliver), // p0 delivers
        p(1, NEXT),                    // p1 reads k0: absent
        p(1, NEXT),                    // p1 appends its claim at seq 2
        p(1, NEXT),                    // p1 flushes: Claimed
        p(1, ProducerAction::Deliver), // p1 delivers: twice in one window
    ]);
    let config = standard_with(2);
    let model = DedupModel::new(config.clone()).unwrap();
    let states = replay_actions(&model, &script).unwrap();
    assert!(states.last().unwrap().violated(Invariant::A1));
    let report = check(&config, SearchOptions::default()).unwrap();
    assert_eq!(
        report
            .invariant(Invariant::A1)
            .map(|v| matches!(v, Verdict::Violated(a) if a.len() <= script.len())),
        Some(true)
    );
    let replayed = replay(&model, &script).unwrap();
    assert_eq!(replayed.claims_granted(), 2, "{:#?}", replayed.answers);
}

#[test]
fn seed_api_lets_a_paused_holder_complete_over_the_next_holders_claim() {
    let script = vec![
        p(0, NEXT),                    // p0 reads k0: absent
        p(0, NEXT),                    // p0 appends its claim
        p(0, NEXT),                    // p0 flushes: Claimed
        p(0, ProducerAction::Deliver), // p0 delivers, then pauses past the TTL
        Action::Tick,                  // only possible without the timing assumption
        Action::Sweeper(Call::Normal), // the sweeper scans: p0's claim expired
        Action::Sweeper(Call::Normal), // expiry tombstone at seq 1
        p(1, NEXT),                    // p1 reads k0: absent
        p(1, NEXT),                    // p1 appends its claim at seq 2
        p(0, NEXT),                    // p0's completion reads k0: in flight (p1's claim)
        p(0, NEXT),                    // p0's receipt lands over p1's claim
    ];
    let config = config(2, &[Fault::Crash, Fault::DeliveryFailure, Fault::Pause]);
    let model = DedupModel::new(config.clone()).unwrap();
    let states = replay_actions(&model, &script).unwrap();
    assert!(states.last().unwrap().violated(Invariant::S5));
    // The specification has no owners: completing someone else's claim is
    // a legal step of it, so only S5 (fencing) catches the zombie.
    assert!(!states.last().unwrap().violated(Invariant::S7));
    let report = check(&config, SearchOptions::default()).unwrap();
    assert_eq!(
        report.invariant(Invariant::S5),
        Some(&Verdict::Violated(script.clone()))
    );
    replay(&model, &script).unwrap();
}

/// F4 (a flipped receipt byte answered as a receipt: S3), F4b (a flipped
/// timestamp expires an entry early: S7, then a second delivery: A1) and
/// F5 (the seed sweep stops on a damaged head: A2). No envelope error names
/// an intact record (S8).
#[test]
fn the_seed_api_answers_from_damaged_records_and_its_sweep_stops_on_them() {
    let report = check(&config(2, &[Fault::Corruption]), SearchOptions::default()).unwrap();
    for invariant in [Invariant::S3, Invariant::S7, Invariant::A1, Invariant::A2] {
        assert!(violated(&report, invariant), "{invariant}:\n{report}");
    }
    assert_eq!(report.invariant(Invariant::S8), Some(&Verdict::Holds));
}

/// The seed API reads heads: without an indeterminate append (whose probe
/// is the one read below a head) a compaction changes none of its answers.
#[test]
fn the_seed_api_holds_under_compaction_without_indeterminate_appends() {
    let faults = [Fault::Crash, Fault::DeliveryFailure, Fault::Compaction];
    let report = check(&config(2, &faults), SearchOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
}
