//! The simulator end to end (madsim build only: `cargo sim-test`).
#![cfg(madsim)]

use atmostonce_sim::check::Invariant;
use atmostonce_sim::config::{Api, Fault, FaultSpec, Shape};
use atmostonce_sim::history::{Event, FaultEvent, Process};
use atmostonce_sim::outcome::{ConfigSource, RunOptions};
use atmostonce_sim::replay::read_regressions;
use atmostonce_sim::runner::{run_regressions, run_seed, run_seeds, shrink};

/// The faults the seed API is meant to survive (the CI gate's set).
const GATE: &str = "swarm,-error-applied,-error-lost,-stale-reads,-corruption";

fn source(faults: &str) -> ConfigSource {
    ConfigSource::standard(
        Api::Seed,
        FaultSpec::parse(faults).expect("a valid fault spec"),
    )
}

fn keep() -> RunOptions {
    RunOptions {
        keep_history: true,
        ..RunOptions::default()
    }
}

#[test]
fn the_same_seed_and_configuration_give_the_same_trace_hash() {
    let summary = run_seeds(
        0..24,
        2,
        &source("all"),
        RunOptions::default(),
        true,
        |_| {},
    );
    assert_eq!(summary.internal_errors, 0);
    assert!(
        summary.nondeterministic.is_empty(),
        "{:?}",
        summary.nondeterministic
    );
    let first = run_seed(5, &source("swarm"), keep()).expect("seed 5 runs");
    let again = run_seed(5, &source("swarm"), keep()).expect("seed 5 runs again");
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_ne!(
        first.trace_hash,
        run_seed(6, &source("swarm"), keep())
            .expect("seed 6 runs")
            .trace_hash
    );
}

/// Asserts that every seed of `seeds` passes with `faults`.
fn assert_every_seed_passes(faults: &str, seeds: std::ops::Range<u64>) {
    let summary = run_seeds(
        seeds,
        2,
        &source(faults),
        RunOptions::default(),
        false,
        |_| {},
    );
    assert_eq!(
        summary.exit_code(),
        0,
        "{}",
        atmostonce_sim::report::summary_line(&summary)
    );
}

#[test]
fn with_contention_only_every_seed_passes() {
    assert_every_seed_passes("none", 0..100);
}

#[test]
fn the_gate_fault_set_passes_on_the_seed_api() {
    assert_every_seed_passes(GATE, 0..150);
}

#[test]
fn each_fresh_key_is_one_message_of_one_producer_and_the_fenced_api_passes_with_them() {
    let shape = Shape {
        fresh_pm: 300,
        ..Shape::STANDARD
    };
    let source = ConfigSource::Draw {
        api: Api::Fenced,
        shape,
        faults: FaultSpec::parse("all").expect("a valid fault spec"),
    };
    let mut fresh_used = 0;
    for seed in 0..6 {
        let run = run_seed(seed, &source, keep()).expect("the seed runs");
        assert!(run.verdict.passed(), "seed {seed}: {:?}", run.verdict);
        let history = run.history.expect("kept");
        let mut holders = std::collections::BTreeMap::new();
        for op in history
            .ops
            .iter()
            .filter(|op| op.key >= shape.keys && op.process != Process::Sweeper)
            .filter(|op| op.process != Process::Probe)
        {
            let who = (op.process, op.incarnation);
            assert_eq!(*holders.entry(op.key).or_insert(who), who, "seed {seed}");
        }
        fresh_used += holders.len();
    }
    assert!(fresh_used > 100, "only {fresh_used} fresh keys were used");
}

/// Recognises the history event a fault leaves.
type IsMark = fn(&FaultEvent) -> bool;

#[test]
fn every_fault_leaves_its_mark_in_the_history() {
    let marks: [(&str, IsMark); 8] = [
        ("producer-crash", |f| {
            matches!(f, FaultEvent::ProducerCrash(_))
        }),
        ("store-crash", |f| {
            matches!(f, FaultEvent::StoreCrash { .. })
        }),
        ("stale-reads", |f| matches!(f, FaultEvent::StaleRead { .. })),
        ("error-applied", |f| {
            matches!(f, FaultEvent::StoreCallError { applied: true, .. })
        }),
        ("error-lost", |f| {
            matches!(f, FaultEvent::StoreCallError { applied: false, .. })
        }),
        ("corruption", |f| matches!(f, FaultEvent::Corruption { .. })),
        ("clock-skew", |f| matches!(f, FaultEvent::ClockJump { .. })),
        (
            "compaction",
            |f| matches!(f, FaultEvent::Compaction { removed, .. } if *removed > 0),
        ),
    ];
    for (fault, mark) in marks {
        // Rare faults (a corruption every few seconds) may miss one short
        // run; some run of a handful must show them.
        let marked = (0..8).any(|seed| {
            let run =
                run_seed(seed, &source(&format!("none,{fault}")), keep()).expect("the seed runs");
            run.history
                .expect("kept")
                .events
                .iter()
                .any(|event| matches!(event, Event::Fault { fault, .. } if mark(fault)))
        });
        assert!(marked, "{fault} left no mark in 8 seeds");
    }
    let paused = run_seed(1, &source("none,pause"), keep()).expect("the seed runs");
    assert!(paused.history.expect("kept").events.iter().any(|event| matches!(
        event,
        Event::Fault { fault: FaultEvent::ProducerPause(_, pause_ms), .. } if *pause_ms > paused.config.ttl_ms
    )));
    let collided = run_seed(1, &source("none,collisions"), keep()).expect("the seed runs");
    assert!(
        collided
            .history
            .expect("kept")
            .shared_stream
            .iter()
            .any(|shared| *shared)
    );
    let long = run_seed(1, &source("none,long-streams"), keep()).expect("the seed runs");
    assert!(long.config.read_batch <= 4 && long.config.faults.has(Fault::LongStreams));
}

#[test]
fn a_pause_longer_than_the_ttl_makes_a_double_delivery_reachable() {
    // A1's vacuity check: with its timing assumption broken, A1 must fail.
    let run = run_seed(3, &source("none,pause"), keep()).expect("the seed runs");
    assert!(
        run.verdict.invariants().contains(&Invariant::A1),
        "{:?}",
        run.verdict
    );
}

#[test]
fn a_pinned_configuration_replays_to_the_same_trace_hash() {
    let drawn = run_seed(148, &source("none,error-lost"), keep()).expect("the seed runs");
    let pinned = ConfigSource::Fixed(drawn.config.clone());
    let once = run_seed(148, &pinned, keep()).expect("the pinned run");
    let twice = run_seed(148, &pinned, keep()).expect("the pinned run again");
    assert_eq!(once.trace_hash, twice.trace_hash);
    // Pinned, a drawn run's configuration replays that very run.
    assert_eq!(once.trace_hash, drawn.trace_hash);
}

#[test]
fn shrinking_keeps_the_invariant_and_never_grows_the_run() {
    let failing = run_seed(148, &source("none,error-lost"), keep()).expect("the seed runs");
    assert!(failing.verdict.invariants().contains(&Invariant::S1));
    let shrunk = shrink(&failing, Invariant::S1, keep(), 2, |_, _| {}).expect("it shrinks");
    assert!(shrunk.run.verdict.invariants().contains(&Invariant::S1));
    let (before, after) = (failing.config.shape, shrunk.config.shape);
    assert!(
        after.producers <= before.producers && after.ops <= before.ops && after.keys <= before.keys
    );
    assert!(after != before || shrunk.config.faults.0.len() < failing.config.faults.0.len());
    let again = run_seed(
        shrunk.seed,
        &ConfigSource::Fixed(shrunk.config.clone()),
        keep(),
    )
    .expect("the shrunk run replays");
    assert_eq!(again.trace_hash, shrunk.run.trace_hash);
}

#[test]
fn every_regression_keeps_its_expected_verdict() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions.toml");
    let entries = read_regressions(&path).expect("the regression file reads");
    for (entry, result) in run_regressions(&entries) {
        let run = result.expect("the regression runs");
        assert!(
            entry.expect.matches(&run.verdict),
            "{}: expected {}, got {:?}",
            entry.name,
            entry.expect,
            run.verdict.invariants()
        );
    }
}
