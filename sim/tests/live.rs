//! Live mode end to end (ordinary build only): a short run against each
//! store with its faults on passes the checker, for each API, and every planted mistake
//! is caught by the invariant that is there to catch it.
//!
//! The PostgreSQL run uses the server at `ATMOSTONCE_POSTGRES_URL`, or
//! when that is unset a throwaway cluster the `testpg` crate starts for this
//! test binary; it crashes the server too when it knows the cluster's data
//! directory (always for a throwaway cluster; `THROWAWAY_POSTGRES_DIR` for
//! a given one).
#![cfg(not(madsim))]

use std::path::PathBuf;
use std::time::Duration;

use atmostonce_sim::check::Invariant;
use atmostonce_sim::cli::{LiveFault, Plant, StoreKind};
use atmostonce_sim::config::{Api, Shape};
use atmostonce_sim::live::{LiveOptions, LiveRun, PostgresTarget, report, run};

/// Draws the runs' timings (the runs themselves are not deterministic).
const SEED: u64 = 7;

/// A short run of `store` with its default faults, and timings shortened
/// so that faults happen within it and its quiet phase is about 2.5 s.
fn options(store: StoreKind, main_phase_ms: u64, keys: u16) -> LiveOptions {
    let shape = Shape {
        producers: 8,
        keys,
        ops: 0,
        fresh_pm: 0,
    };
    let mut options = LiveOptions::new(
        store,
        shape,
        Duration::from_millis(main_phase_ms),
        LiveFault::defaults(store),
        SEED,
        20,
    );
    let config = &mut options.config;
    config.ttl_ms = 600;
    config.sweep_interval_ms = 150;
    config.producer_crash_every_ms = 400;
    if config.store_crash_every_ms > 0 {
        config.store_crash_every_ms = 1_000;
    }
    if options.disconnect_every_ms > 0 {
        options.disconnect_every_ms = 500;
    }
    options.server_exe = PathBuf::from(env!("CARGO_BIN_EXE_atmostonce-sim"));
    options
}

fn live(options: &LiveOptions) -> LiveRun {
    run(options).unwrap_or_else(|error| panic!("the live run could not run: {error}"))
}

fn assert_passes(run: &LiveRun) {
    assert!(
        run.verdict.passed(),
        "the live run failed:\n{}",
        report::text(run, false)
    );
    assert_eq!(run.exit_code(), 0);
    let deliveries = run
        .history
        .events
        .iter()
        .filter(|event| {
            matches!(
                event,
                atmostonce_sim::history::Event::Delivery { ok: true, .. }
            )
        })
        .count();
    assert!(
        deliveries > 0,
        "nothing was delivered:\n{}",
        report::text(run, false)
    );
    assert!(run.faults.producer_crashes > 0, "no producer was crashed");
}

fn memory_run_passes(api: Api) {
    let mut options = options(StoreKind::Memory, 2_000, 16);
    options.config.api = api;
    let run = live(&options);
    assert_passes(&run);
    assert!(run.faults.delayed_calls > 0);
}

fn haematite_run_passes(api: Api) {
    let mut options = options(StoreKind::Haematite, 3_500, 16);
    options.config.api = api;
    let run = live(&options);
    assert_passes(&run);
    assert!(run.faults.store_crashes > 0, "the server was never killed");
    assert_eq!(run.faults.acknowledged_lost, 0);
}

fn postgres_run_passes(api: Api) {
    let server = testpg::server()
        .unwrap_or_else(|error| panic!("the PostgreSQL live run has no server: {error}"));
    let data = server.data_dir().map(PathBuf::from);
    let mut options = options(StoreKind::Postgres, 4_000, 16);
    options.config.api = api;
    if data.is_none() {
        eprintln!("no data directory known: the server is not restarted, only disconnected");
        options
            .faults
            .retain(|fault| *fault != LiveFault::StoreCrash);
    }
    let restarts = data.is_some();
    options.postgres = Some(PostgresTarget {
        url: server.url().to_owned(),
        data,
        bin: server.bin_dir().map(PathBuf::from),
    });
    let run = live(&options);
    assert_passes(&run);
    assert!(run.faults.disconnects > 0, "no connection was terminated");
    if restarts {
        assert!(
            run.faults.store_crashes > 0,
            "the server was never restarted"
        );
    }
    assert_eq!(run.faults.acknowledged_lost, 0);
}

#[test]
fn a_live_run_against_the_memory_store_with_crashed_producers_and_latency_passes() {
    memory_run_passes(Api::Seed);
}

#[test]
fn a_fenced_live_run_against_the_memory_store_with_crashed_producers_and_latency_passes() {
    memory_run_passes(Api::Fenced);
}

#[test]
fn a_live_run_against_haematite_whose_server_is_killed_and_restarted_passes() {
    haematite_run_passes(Api::Seed);
}

#[test]
fn a_fenced_live_run_against_haematite_whose_server_is_killed_and_restarted_passes() {
    haematite_run_passes(Api::Fenced);
}

#[test]
fn a_live_run_against_postgres_with_terminated_connections_and_restarts_passes() {
    postgres_run_passes(Api::Seed);
}

#[test]
fn a_fenced_live_run_against_postgres_with_terminated_connections_and_restarts_passes() {
    postgres_run_passes(Api::Fenced);
}

/// Runs a plant against the memory store and returns the invariants the
/// checker reported.
fn planted(plant: Plant, options: &mut LiveOptions) -> Vec<Invariant> {
    options.plant = Some(plant);
    let run = live(options);
    assert_eq!(
        run.exit_code(),
        1,
        "the plant {} went unnoticed:\n{}",
        plant.name(),
        report::text(&run, false)
    );
    run.verdict.invariants()
}

fn assert_caught(plant: Plant, invariants: &[Invariant], expected: &[Invariant]) {
    for invariant in expected {
        assert!(
            invariants.contains(invariant),
            "the plant {} was caught as {invariants:?}, without {invariant}",
            plant.name()
        );
    }
}

#[test]
fn a_store_that_acknowledges_appends_it_dropped_is_caught_as_double_grants() {
    let mut options = options(StoreKind::Memory, 1_500, 16);
    let invariants = planted(Plant::DropAppends, &mut options);
    assert_caught(
        Plant::DropAppends,
        &invariants,
        &[Invariant::S1, Invariant::S7],
    );
}

#[test]
fn reads_that_forge_a_receipt_are_caught_as_phantom_and_changed_receipts() {
    let mut options = options(StoreKind::Memory, 1_500, 16);
    let invariants = planted(Plant::ForgeReceipts, &mut options);
    assert_caught(
        Plant::ForgeReceipts,
        &invariants,
        &[Invariant::S2, Invariant::S3, Invariant::S7],
    );
}

#[test]
fn reads_that_show_another_keys_receipt_are_caught_as_collision_unsafety() {
    let mut options = options(StoreKind::Memory, 1_500, 16);
    let invariants = planted(Plant::SwapReceipts, &mut options);
    assert_caught(Plant::SwapReceipts, &invariants, &[Invariant::S6]);
}

#[test]
fn a_store_that_forgets_acknowledged_appends_in_a_crash_is_caught_by_reading_it_back() {
    let mut options = options(StoreKind::Memory, 2_500, 16);
    options.plant = Some(Plant::WipeOnCrash);
    let run = live(&options);
    assert_eq!(run.exit_code(), 1, "{}", report::text(&run, false));
    assert!(run.faults.acknowledged_lost > 0);
    let lost = run
        .verdict
        .violations
        .iter()
        .find(|violation| violation.message.contains("broke its promise"))
        .unwrap_or_else(|| panic!("no lost append reported:\n{}", report::text(&run, false)));
    assert_eq!(lost.invariant, Invariant::S4);
}

#[test]
fn claims_of_crashed_producers_that_nobody_expires_are_caught_as_no_progress() {
    // Many keys, so that claims keep being granted (and their holders
    // crashed) although, with no sweeper, a completed key never expires.
    let mut options = options(StoreKind::Memory, 2_000, 512);
    options.config.producer_crash_every_ms = 100;
    // The seed API: its claims wait for the sweeper's tombstone. A fenced
    // claim takes over an expired claim itself, so without a sweeper the
    // fenced API loses storage, not progress (docs/spec.md, A2).
    options.config.api = Api::Seed;
    let invariants = planted(Plant::NoSweeper, &mut options);
    assert_caught(Plant::NoSweeper, &invariants, &[Invariant::A2]);
}

#[test]
fn producers_that_deliver_without_winning_the_claim_are_caught_as_double_deliveries() {
    let mut options = options(StoreKind::Memory, 1_500, 16);
    let invariants = planted(Plant::DeliverWithoutClaim, &mut options);
    assert_eq!(invariants, vec![Invariant::A1]);
}
