//! Engine benchmarks on `MemoryStore`.
//!
//! 1. `claim+complete`: one claim and one completion of a fresh key through
//!    `DedupCache`, against `bare store calls`: the same four store calls
//!    (read, append, read, append) with pre-encoded payloads, made directly
//!    on the same store type. Their ratio is the engine's own overhead.
//! 2. `fenced claim+complete`: the same through `FencedCache` (v2 records
//!    with claim ids and CRC-32C, a random claim id per claim), against the
//!    seed's `claim+complete`.
//! 3. `claim on a stream of N records`: `claim_or_get` on a key whose stream
//!    already holds N records of claim/release churn (N = 1, 100, 10,000).
//!
//! After criterion's report, an interleaved A/B run prints the ratios
//! measured in this same process (medians of alternating rounds), so a
//! noisy neighbour affects both sides alike.

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
    const ROUNDS: usize = 15;
    let receipt = receipt();
    let template = Bare::template();
    let (engine, bare) = interleaved(
        ROUNDS,
        20_000,
        fresh_cache,
        |cache| claim_and_complete(&cache, &receipt),
        || Bare::fresh(&template),
        |bare| bare.run(),
    );
    println!("\nsummary (medians of {ROUNDS} interleaved rounds, same process):");
    println!(
        "  claim+complete {engine:?} / bare store calls {bare:?} = {:.2}x",
        engine.as_secs_f64() / bare.as_secs_f64()
    );
    let (fenced, seed) = interleaved(
        ROUNDS,
        20_000,
        fresh_fenced_cache,
        |cache| fenced_claim_and_complete(&cache, &receipt),
        fresh_cache,
        |cache| claim_and_complete(&cache, &receipt),
    );
    println!(
        "  fenced claim+complete {fenced:?} / seed claim+complete {seed:?} = {:.2}x",
        fenced.as_secs_f64() / seed.as_secs_f64()
    );
    let short = churned_table(STREAM_LENGTHS[0]);
    for records in STREAM_LENGTHS {
        let table = churned_table(records);
        let calls = if records >= 10_000 { 50 } else { 5_000 };
        let (long, base) = interleaved(
            ROUNDS,
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
