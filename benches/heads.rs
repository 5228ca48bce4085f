//! Cost against history, per store: a head read and a claim on a key whose
//! stream holds 1, 100 and 10,000 records, each as a ratio to the same call
//! on a 1-record stream, measured in this process by alternating rounds
//! (medians), on `MemoryStore`, on a store with only the required calls
//! (the default `read_head`, which reads the whole stream) and on an
//! ephemeral `HaematiteStore`.
//!
//! ```text
//! cargo bench --bench heads
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atmostonce::conformance::RequiredCallsOnly;
use atmostonce::{DedupCache, DedupEntry, DurableStore, HaematiteStore, MemoryStore, Tombstone};
use futures::executor::block_on;

const KEY: &str = "order-0000017";
const STREAM_LENGTHS: [u64; 3] = [1, 100, 10_000];
/// Alternating rounds behind each median.
const ROUNDS: usize = 9;

/// Appends `records` records of claim/release churn for `KEY`, ending with
/// a tombstone (so the next claim appends).
fn churn(store: &dyn DurableStore, stream: &str, records: u64) {
    for sequence in 0..records {
        let payload = if (records - sequence) % 2 == 1 {
            Tombstone::new(KEY, sequence).serialize()
        } else {
            DedupEntry::new(KEY, None, sequence)
                .serialize()
                .expect("within the limits")
        };
        block_on(store.append(stream, &payload, sequence)).expect("fresh stream");
    }
}

/// Median time per call of `a` and of `b` over alternating rounds.
fn interleaved(calls: u32, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..calls {
            f();
        }
        started.elapsed() / calls
    };
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        times_a.push(time(&mut a));
        times_b.push(time(&mut b));
    }
    times_a.sort();
    times_b.sort();
    (times_a[ROUNDS / 2], times_b[ROUNDS / 2])
}

fn ratio(long: Duration, base: Duration) -> f64 {
    long.as_secs_f64() / base.as_secs_f64()
}

/// Head reads and claims against history on `store`, one stream per length.
fn measure(name: &str, store: Arc<dyn DurableStore>) {
    let caches: Vec<(u64, DedupCache, String)> = STREAM_LENGTHS
        .iter()
        .map(|&records| {
            let namespace = format!("n{records}");
            let cache = DedupCache::new(Arc::clone(&store), namespace.as_str());
            let stream = cache.stream_key_for(KEY);
            churn(&*store, &stream, records);
            (records, cache, stream)
        })
        .collect();
    let (_, base_cache, base_stream) = &caches[0];
    for (records, cache, stream) in &caches {
        let calls = if *records >= 10_000 { 20 } else { 500 };
        let (long, base) = interleaved(
            calls,
            || drop(black_box(block_on(store.read_head(stream)))),
            || drop(black_box(block_on(store.read_head(base_stream)))),
        );
        println!(
            "  {name}: head read on a stream of {records:>6} records: {long:?} = {:.2}x ({base:?})",
            ratio(long, base)
        );
        // A claim that finds the key free appends a claim; the lookup that
        // follows is what the next claim costs, so claims are measured as
        // lookups of a stream ending in a claim or tombstone alike.
        let (long, base) = interleaved(
            calls,
            || drop(black_box(block_on(cache.lookup(KEY)))),
            || drop(black_box(block_on(base_cache.lookup(KEY)))),
        );
        println!(
            "  {name}: lookup on a stream of {records:>6} records: {long:?} = {:.2}x ({base:?})",
            ratio(long, base)
        );
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        return;
    }
    println!("medians of {ROUNDS} interleaved rounds, ratios to the 1-record stream:");
    measure("memory", Arc::new(MemoryStore::new()));
    measure(
        "default read_head",
        Arc::new(RequiredCallsOnly(MemoryStore::new())),
    );
    let haematite = HaematiteStore::ephemeral().expect("an ephemeral haematite store");
    measure("haematite", Arc::new(haematite));
}
