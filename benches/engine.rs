//! Engine benchmarks on `MemoryStore`.
//!
//! 1. `claim+complete`: one claim and one completion of a fresh key through
//!    `DedupCache`, against `bare store calls`: the same four store calls
//!    (read, append, read, append) with pre-encoded payloads, made directly
//!    on the same store type. Their ratio is the engine's own overhead.
//! 2. `fenced claim+complete`: the same through `FencedCache` (v2 records
//!    with claim ids and CRC-32C, a random claim id per claim), against the
//!    seed's `claim+complete`, and against `fenced bare store calls`: the
//!    store calls the fenced claim + complete makes on a fresh key, recorded
//!    from one probe run at start-up (so they follow the engine: read,
//!    append, read, append while operations read first; an append and an
//!    append once they try the conditional append first), replayed with the
//!    probe's payloads on a fresh `MemoryStore`. Target (issue 14): at most
//!    1.5x.
//! 3. `claim on a stream of N records`: `claim_or_get` on a key whose stream
//!    already holds N records of claim/release churn (N = 1, 100, 10,000).
//!
//! After criterion's report, an interleaved A/B run prints the ratios
//! measured in this same process (medians of alternating rounds), so a
//! noisy neighbour affects both sides alike.
//!
//! ```text
//! cargo bench --bench engine               # criterion, then the ratios
//! cargo bench --bench engine -- --quick    # a minute or so
//! ```
//!
//! The fenced API's claim against history, on every store, is
//! `benches/history.rs`; its sweep, `benches/sweep.rs`.

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atmostonce::fenced::{Claim, FencedCache, FencedOptions};
use atmostonce::{
    DedupCache, DedupEntry, DurableStore, MemoryStore, ProcessingReceipt, StreamTable, Tombstone,
    limits,
};
use criterion::{BatchSize, Criterion, criterion_group};
use futures::executor::block_on;
use support::calls::{Call, names, recording, replay, take};

const KEY: &str = "order-0000017";
const NOW_MILLIS: u64 = 1_700_000_000_000;
const STREAM_LENGTHS: [u64; 3] = [1, 100, 10_000];

fn receipt() -> ProcessingReceipt {
    ProcessingReceipt::new(b"charged 12.00 EUR, ref 5f2c".to_vec())
}

fn fresh_cache() -> DedupCache {
    DedupCache::new(Arc::new(MemoryStore::new()), "orders")
}

fn fresh_fenced_cache() -> FencedCache {
    FencedCache::new(
        Arc::new(MemoryStore::new()),
        "orders",
        FencedOptions::default(),
    )
    .expect("valid namespace")
}

fn fenced_claim_and_complete(cache: &FencedCache, receipt: &ProcessingReceipt) {
    block_on(async {
        let Claim::Granted(token) = cache.claim(KEY, NOW_MILLIS).await.expect("claim") else {
            panic!("a fresh key is granted");
        };
        cache
            .complete(&token, receipt, NOW_MILLIS)
            .await
            .expect("complete");
    });
}

fn claim_and_complete(cache: &DedupCache, receipt: &ProcessingReceipt) {
    block_on(async {
        let decision = cache.claim_or_get(KEY, NOW_MILLIS).await.expect("claim");
        black_box(decision);
        cache
            .complete_receipt_at(KEY, receipt, NOW_MILLIS)
            .await
            .expect("complete");
    });
}

/// The store calls claim + complete needs, without the engine.
struct Bare {
    store: Arc<dyn DurableStore>,
    stream: String,
    claim: Vec<u8>,
    completion: Vec<u8>,
}

impl Bare {
    fn fresh(template: &Bare) -> Bare {
        Bare {
            store: Arc::new(MemoryStore::new()),
            stream: template.stream.clone(),
            claim: template.claim.clone(),
            completion: template.completion.clone(),
        }
    }

    fn template() -> Bare {
        let receipt = receipt();
        Bare {
            store: Arc::new(MemoryStore::new()),
            stream: fresh_cache().stream_key_for(KEY),
            claim: DedupEntry::new(KEY, None, NOW_MILLIS)
                .serialize()
                .expect("within the limits"),
            completion: DedupEntry::new(KEY, Some(receipt.into_bytes()), NOW_MILLIS)
                .serialize()
                .expect("within the limits"),
        }
    }

    fn run(&self) {
        block_on(async {
            let store = &*self.store;
            let batch = limits::DEFAULT_READ_BATCH;
            black_box(store.read_from(&self.stream, 0, batch).await.expect("read"));
            store
                .append(&self.stream, &self.claim, 0)
                .await
                .expect("append");
            black_box(store.read_from(&self.stream, 0, batch).await.expect("read"));
            store
                .append(&self.stream, &self.completion, 1)
                .await
                .expect("append");
        });
    }
}

/// The store calls a fenced claim + complete of a fresh key makes,
/// recorded once, replayed on a fresh `MemoryStore` each time.
struct FencedBare {
    calls: Vec<Call>,
    stream: String,
}

impl FencedBare {
    fn recorded() -> FencedBare {
        let store = Arc::new(recording(MemoryStore::new()));
        let cache = FencedCache::new(
            Arc::clone(&store) as Arc<dyn DurableStore>,
            "orders",
            FencedOptions::default(),
        )
        .expect("valid namespace");
        fenced_claim_and_complete(&cache, &receipt());
        FencedBare {
            calls: take(&store),
            stream: cache.stream_key_for(KEY),
        }
    }

    fn run(&self, store: &MemoryStore) {
        block_on(replay(store, &self.calls, &self.stream));
    }
}

/// A store whose stream for `KEY` holds `records` records of claim/release
/// churn, ending with a tombstone (so the next claim appends).
fn churned_table(records: u64) -> StreamTable {
    let stream = fresh_cache().stream_key_for(KEY);
    let mut table = StreamTable::new();
    for sequence in 0..records {
        let from_end = records - sequence;
        let payload = if from_end % 2 == 1 {
            Tombstone::new(KEY, sequence).serialize()
        } else {
            DedupEntry::new(KEY, None, sequence)
                .serialize()
                .expect("within the limits")
        };
        table
            .append(&stream, &payload, sequence, 0)
            .expect("fresh stream");
    }
    table
}

fn cache_on(table: &StreamTable) -> DedupCache {
    DedupCache::new(Arc::new(MemoryStore::from_table(table.clone())), "orders")
}

fn benches(c: &mut Criterion) {
    let receipt = receipt();
    let template = Bare::template();
    let fenced_bare = FencedBare::recorded();
    let mut group = c.benchmark_group("memory store");
    group.bench_function("claim+complete", |b| {
        b.iter_batched(
            fresh_cache,
            |cache| claim_and_complete(&cache, &receipt),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("fenced claim+complete", |b| {
        b.iter_batched(
            fresh_fenced_cache,
            |cache| fenced_claim_and_complete(&cache, &receipt),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("fenced bare store calls", |b| {
        b.iter_batched(
            MemoryStore::new,
            |store| fenced_bare.run(&store),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bare store calls", |b| {
        b.iter_batched(
            || Bare::fresh(&template),
            |bare| bare.run(),
            BatchSize::SmallInput,
        )
    });
    for records in STREAM_LENGTHS {
        let table = churned_table(records);
        group.bench_function(format!("claim on a stream of {records} records"), |b| {
            b.iter_batched(
                || cache_on(&table),
                |cache| black_box(block_on(cache.claim_or_get(KEY, NOW_MILLIS)).expect("claim")),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(criterion_benches, benches);

/// Median time of `routine` per call over `rounds` rounds of `calls` calls,
/// with setup excluded.
fn per_call<S, R: FnMut(S)>(
    setup: &mut impl FnMut() -> S,
    routine: &mut R,
    calls: usize,
) -> Duration {
    let inputs: Vec<S> = (0..calls).map(|_| setup()).collect();
    let started = Instant::now();
    for input in inputs {
        routine(input);
    }
    started.elapsed() / calls as u32
}

/// Alternates A and B for `rounds` rounds; returns their median per-call times.
fn interleaved<SA, SB>(
    rounds: usize,
    calls: usize,
    mut setup_a: impl FnMut() -> SA,
    mut a: impl FnMut(SA),
    mut setup_b: impl FnMut() -> SB,
    mut b: impl FnMut(SB),
) -> (Duration, Duration) {
    let mut times_a = Vec::with_capacity(rounds);
    let mut times_b = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        times_a.push(per_call(&mut setup_a, &mut a, calls));
        times_b.push(per_call(&mut setup_b, &mut b, calls));
    }
    times_a.sort();
    times_b.sort();
    (times_a[rounds / 2], times_b[rounds / 2])
}

fn summary() {
    let quick = support::quick();
    let rounds = if quick { 7 } else { 15 };
    let calls = if quick { 5_000 } else { 20_000 };
    let receipt = receipt();
    let template = Bare::template();
    let (engine, bare) = interleaved(
        rounds,
        calls,
        fresh_cache,
        |cache| claim_and_complete(&cache, &receipt),
        || Bare::fresh(&template),
        |bare| bare.run(),
    );
    println!(
        "\nsummary (medians of {rounds} interleaved rounds, same process; load average {}):",
        support::load_average()
    );
    println!(
        "  claim+complete {engine:?} / bare store calls {bare:?} = {:.2}x",
        engine.as_secs_f64() / bare.as_secs_f64()
    );
    let (fenced, seed) = interleaved(
        rounds,
        calls,
        fresh_fenced_cache,
        |cache| fenced_claim_and_complete(&cache, &receipt),
        fresh_cache,
        |cache| claim_and_complete(&cache, &receipt),
    );
    println!(
        "  fenced claim+complete {fenced:?} / seed claim+complete {seed:?} = {:.2}x",
        fenced.as_secs_f64() / seed.as_secs_f64()
    );
    let fenced_bare = FencedBare::recorded();
    let (fenced, bare) = interleaved(
        rounds,
        calls,
        fresh_fenced_cache,
        |cache| fenced_claim_and_complete(&cache, &receipt),
        MemoryStore::new,
        |store| fenced_bare.run(&store),
    );
    println!(
        "  fenced claim+complete {fenced:?} / its bare store calls ({}) {bare:?} = {:.2}x \
         (target: at most 1.5x)",
        names(&fenced_bare.calls),
        fenced.as_secs_f64() / bare.as_secs_f64()
    );
    let short = churned_table(STREAM_LENGTHS[0]);
    for records in STREAM_LENGTHS {
        let table = churned_table(records);
        let calls = if records >= 10_000 { 50 } else { 5_000 };
        let (long, base) = interleaved(
            rounds,
            calls,
            || cache_on(&table),
            |cache| drop(black_box(block_on(cache.claim_or_get(KEY, NOW_MILLIS)))),
            || cache_on(&short),
            |cache| drop(black_box(block_on(cache.claim_or_get(KEY, NOW_MILLIS)))),
        );
        println!(
            "  claim on a stream of {records:>6} records: {long:?} = {:.2}x a claim on a 1-record stream ({base:?})",
            long.as_secs_f64() / base.as_secs_f64()
        );
    }
}

fn main() {
    criterion_benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs benchmarks once as tests; skip the
    // A/B summary there.
    if !std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        summary();
    }
}
