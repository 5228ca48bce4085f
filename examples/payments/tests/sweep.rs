//! The example consumer's CI gate: each handler swept under the simulator
//! with every fault on (madsim build only: `cargo payments-test`).

#![cfg(madsim)]

use std::ops::Range;

use atmostonce_sim::harness::{Invariant, Sweep, SweepReport};
use payments::{ChargesAfterTimeout, Correct};

/// A few hundred seeds: seconds of CI time.
const SEEDS: Range<u64> = 0..200;

fn sweep(handler: impl atmostonce_sim::harness::Handler) -> SweepReport {
    Sweep::new(handler)
        .producers(4)
        .keys(4)
        .seeds(SEEDS)
        .faults("all,pause")
        .command("cargo payments-test")
        .run()
        .expect("the sweep's settings are valid")
}

#[test]
fn the_correct_handler_charges_at_most_once_under_every_fault() {
    let report = sweep(Correct);
    eprintln!("{report}");
    report.assert_passed();
    assert_eq!(report.summary.seeds, SEEDS.end - SEEDS.start);
}

#[test]
fn charging_on_in_flight_after_a_timeout_is_caught_as_a1() {
    let report = sweep(ChargesAfterTimeout);
    // What a user sees when their handler is wrong (`-- --nocapture`).
    eprintln!("{report}");
    let failure = report.failure.as_ref().unwrap_or_else(|| {
        panic!("the sweep passed a handler that charges while another holds the key:\n{report}")
    });
    // The handler's mistake, and nothing the engine did: A1 alone.
    assert_eq!(failure.invariants(), vec![Invariant::A1], "{report}");
    assert!(
        failure.report.contains("granted nothing"),
        "the violation names the claim that granted nothing:\n{report}"
    );
    assert!(report.summary.internal_errors == 0, "{report}");
    // The seed's own line (or, when this test replays a shrunk run, the
    // replay file's), naming this test.
    assert!(
        failure
            .reproduce
            .starts_with(&format!("ATMOSTONCE_SEED={} ", failure.run.seed))
            || failure.reproduce.starts_with("ATMOSTONCE_REPLAY="),
        "{}",
        failure.reproduce
    );
    assert!(
        failure.reproduce.ends_with(
            "cargo payments-test -- --exact charging_on_in_flight_after_a_timeout_is_caught_as_a1"
        ),
        "{}",
        failure.reproduce
    );
    assert!(failure.timeline.is_file(), "{}", failure.timeline.display());
    if std::env::var_os("ATMOSTONCE_REPLAY").is_some() {
        // A replayed run is not shrunk again; it must follow its trace.
        assert!(report.replay_diverged.is_none(), "{report}");
        return;
    }
    let shrunk = failure.shrunk.as_ref().expect("the failure shrinks");
    assert!(
        shrunk.run.verdict.invariants().contains(&Invariant::A1),
        "{report}"
    );
    assert!(
        shrunk.run.config.shape.ops <= failure.run.config.shape.ops,
        "{report}"
    );
    assert!(shrunk.replay.is_file(), "{}", shrunk.replay.display());
}
