//! What the benchmarks share: the quick mode, interleaved A/B medians, the
//! machine's load, and fenced histories built as records (so a history of
//! a million operations costs one encode per record, not a million engine
//! calls).
//!
//! Each bench binary uses a part of it.
#![allow(dead_code)]

pub mod calls;

use std::time::{Duration, Instant};

use atmostonce::codec::{
    ClaimId, ClaimRecord, CompletionRecord, FencedRecord, ProcessingReceipt, ReleaseRecord,
};

/// A fixed "now" for every measured call: no wall clock in a decision.
pub const NOW_MILLIS: u64 = 1_700_000_000_000;
/// When a built history's records were written: ten minutes before
/// [`NOW_MILLIS`], so every claim in it has expired (the default lease is
/// 30 s) and every receipt is live (the default receipt TTL is one day).
pub const HISTORY_MILLIS: u64 = NOW_MILLIS - 600_000;
/// The lease of a built history's claims (the default's).
pub const LEASE_MS: u64 = 30_000;

/// Quick mode: criterion's `--quick` on the command line, or
/// `ATMOSTONCE_BENCH_QUICK=1` in the environment. Fewer rounds, fewer calls
/// per round and (where a bench says so) fewer sizes.
pub fn quick() -> bool {
    std::env::args().any(|arg| arg == "--quick")
        || std::env::var_os("ATMOSTONCE_BENCH_QUICK").is_some_and(|value| value != "0")
}

/// `cargo test --benches` runs a bench binary with `--test` (and `--list`
/// lists it): the A/B runs are skipped there.
pub fn is_test_run() -> bool {
    std::env::args().any(|arg| arg == "--test" || arg == "--list")
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), to print
/// beside the figures: the machine is shared, so absolute times say little.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Medians of `a`'s and `b`'s answers (each one round's time per call)
/// over `rounds` alternating rounds.
pub fn interleaved(
    rounds: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    let (mut times_a, mut times_b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        times_a.push(a());
        times_b.push(b());
    }
    (median(times_a), median(times_b))
}

/// The median (the upper one of an even count; zero for none).
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// `a / b`.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Runs `call` until `max_calls` calls are made or `budget` has passed
/// (at least one call); returns the time per call.
pub fn per_call(max_calls: u32, budget: Duration, mut call: impl FnMut()) -> Duration {
    let started = Instant::now();
    let mut calls = 0;
    while calls < max_calls.max(1) {
        call();
        calls += 1;
        if started.elapsed() >= budget {
            break;
        }
    }
    started.elapsed() / calls
}

/// A claim id that is a function of `n` (never all zero).
pub fn claim_id(n: u64) -> ClaimId {
    let mut bytes = [0u8; atmostonce::codec::CLAIM_ID_LEN];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8] = 1;
    ClaimId::new(bytes).expect("byte 8 is not zero")
}

/// The encoded records of `records` operations on `key`: claims, each
/// released by the next record, ending with a release (so the next claim
/// is granted and appends). An odd count starts with a release, as a
/// compacted stream may. Claim ids are `claim_id(sequence)`, fences the
/// claims' sequences (`docs/record-format.md`).
pub fn released_history(key: &str, records: u64) -> Vec<Vec<u8>> {
    (0..records)
        .map(|sequence| {
            if (records - sequence) % 2 == 1 {
                let fence = sequence.saturating_sub(1);
                FencedRecord::Release(ReleaseRecord::released(
                    key,
                    claim_id(fence),
                    fence,
                    HISTORY_MILLIS,
                ))
            } else {
                FencedRecord::Claim(claim_at(key, sequence))
            }
            .encode()
        })
        .collect()
}

/// The encoded records of `records` operations on `key` ending with a live
/// completion (written at [`HISTORY_MILLIS`], within the default receipt
/// TTL): claim/release pairs, then the claim that completed and its
/// completion. An odd count starts with a release.
pub fn completed_history(key: &str, records: u64, receipt: &ProcessingReceipt) -> Vec<Vec<u8>> {
    let mut history = released_history(key, records.saturating_sub(2));
    if records >= 2 {
        let sequence = records - 2;
        let claim = claim_at(key, sequence);
        history.push(FencedRecord::Claim(claim.clone()).encode());
        history.push(
            FencedRecord::Completion(CompletionRecord::of(
                &claim,
                receipt.clone(),
                HISTORY_MILLIS,
            ))
            .encode(),
        );
    } else if records == 1 {
        // A compacted stream: the completion is its only record left.
        let claim = claim_at(key, 0);
        history.push(
            FencedRecord::Completion(CompletionRecord::of(
                &claim,
                receipt.clone(),
                HISTORY_MILLIS,
            ))
            .encode(),
        );
    }
    history
}

fn claim_at(key: &str, sequence: u64) -> ClaimRecord {
    ClaimRecord::new(
        key,
        claim_id(sequence),
        sequence,
        HISTORY_MILLIS,
        LEASE_MS,
        None,
    )
}
