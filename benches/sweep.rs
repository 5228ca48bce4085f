//! `FencedSweeper::sweep_once` over 1,000, 10,000 and 100,000 live keys
//! with 1 and 100 records of history each, on `MemoryStore`: time per live
//! key, its ratio between the two histories, and the sweep's peak memory.
//! Target (issue 14): time per key independent of history (ratio at most
//! 1.2), memory bounded by the sweep's page size.
//!
//! ```text
//! cargo bench --bench sweep -- --quick   # 1,000 and 10,000 keys
//! cargo bench --bench sweep              # and 100,000 (about 2 GB of records)
//! ```
//!
//! Every key is live and stays so: its last record is a completion written
//! ten minutes before the sweep, within the default receipt TTL of a day, so
//! the sweep expires nothing (checked: every key retained, none expired or
//! skipped) and the same store can be swept again. A history of 100 records
//! is 49 claims each released by the next record, then the claim that
//! completed and its completion; a history of 1 is the completion alone (a
//! compacted stream). The records are encoded directly
//! (`benches/support`) into a `StreamTable`, and each measured sweep runs on
//! a fresh copy of it (the copy is not timed).
//!
//! Two sweeps are timed per copy: the first, which finds every history
//! (and would compact it, once the sweeper compacts), and a repeat on the
//! same store, which finds what the first left.
//!
//! Peak memory is measured by a counting global allocator in this binary:
//! the highest number of bytes allocated and not yet freed during the
//! sweep, above what was allocated when it started (the store's records
//! are already allocated then, so only what the sweep itself holds at once
//! counts).
//!
//! The figures are medians of rounds that alternate the 1-record and the
//! 100-record store, in this process.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atmostonce::fenced::{FencedCache, FencedOptions, FencedSweepReport, FencedSweeper};
use atmostonce::{MemoryStore, ProcessingReceipt, StreamTable};
use futures::executor::block_on;
use support::{NOW_MILLIS, completed_history, median, ratio};

/// Bytes allocated and not freed, and the highest that reached since the
/// last [`reset_peak`].
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting.
struct Counting;

fn grew(bytes: usize) {
    let now = ALLOCATED.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call forwards to `System` with the caller's arguments; the
// counters are plain atomics and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(pointer, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a peak measurement; returns the bytes allocated now.
fn reset_peak() -> usize {
    let now = ALLOCATED.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Live keys per sweep, and the rounds behind each median.
const KEY_COUNTS: [(usize, usize); 3] = [(1_000, 9), (10_000, 5), (100_000, 3)];
/// Records of history per key.
const HISTORIES: [u64; 2] = [1, 100];

fn cache_on(store: Arc<MemoryStore>) -> FencedCache {
    FencedCache::new(store, "sweep", FencedOptions::default()).expect("a valid namespace")
}

/// `keys` live keys with `records` records each.
fn table(keys: usize, records: u64) -> StreamTable {
    let namer = cache_on(Arc::new(MemoryStore::new()));
    let receipt = ProcessingReceipt::new(b"charged 12.00 EUR, ref 5f2c".to_vec());
    let mut table = StreamTable::new();
    for index in 0..keys {
        let key = format!("order-{index:07}");
        let stream = namer.stream_key_for(&key);
        for (sequence, payload) in (0u64..).zip(completed_history(&key, records, &receipt)) {
            table
                .append(&stream, &payload, sequence, support::HISTORY_MILLIS)
                .expect("a fresh stream");
        }
    }
    table
}

/// One sweep's time and peak bytes above its start.
#[derive(Clone, Copy, Default)]
struct Sample {
    time: Duration,
    peak_bytes: usize,
}

fn sweep(sweeper: &FencedSweeper, keys: usize) -> Sample {
    let start = reset_peak();
    let started = Instant::now();
    let report = block_on(sweeper.sweep_once(NOW_MILLIS)).expect("a sweep of a memory store");
    let time = started.elapsed();
    let peak_bytes = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    check(&report, keys);
    Sample { time, peak_bytes }
}

/// Every key was live and nothing else happened.
fn check(report: &FencedSweepReport, keys: usize) {
    assert!(
        report.retained == keys
            && report.expired_claims == 0
            && report.expired_receipts == 0
            && report.skipped.is_empty(),
        "a sweep of {keys} live keys retains them all: {report:?}"
    );
}

/// The first sweep of a fresh copy of `table`, then a repeat.
fn round(table: &StreamTable, keys: usize) -> (Sample, Sample) {
    let store = Arc::new(MemoryStore::from_table(table.clone()));
    let sweeper = FencedSweeper::new(&cache_on(store));
    let first = sweep(&sweeper, keys);
    let repeat = sweep(&sweeper, keys);
    (first, repeat)
}

/// Medians of each field over rounds.
fn medians(samples: &[Sample]) -> Sample {
    Sample {
        time: median(samples.iter().map(|sample| sample.time).collect()),
        peak_bytes: {
            let mut peaks: Vec<usize> = samples.iter().map(|sample| sample.peak_bytes).collect();
            peaks.sort_unstable();
            peaks.get(peaks.len() / 2).copied().unwrap_or_default()
        },
    }
}

fn per_key(time: Duration, keys: usize) -> Duration {
    time / keys as u32
}

fn main() {
    if support::is_test_run() {
        return;
    }
    let quick = support::quick();
    println!(
        "fenced sweep of live keys on MemoryStore: medians of rounds alternating 1- and \
         100-record histories{} (load average {})",
        if quick { ", quick mode" } else { "" },
        support::load_average()
    );
    for (keys, rounds) in KEY_COUNTS {
        if quick && keys > 10_000 {
            continue;
        }
        let started = Instant::now();
        let tables = HISTORIES.map(|records| table(keys, records));
        println!(
            "  {keys} keys: tables built in {:.1?} ({rounds} rounds)",
            started.elapsed()
        );
        let mut firsts: [Vec<Sample>; 2] = Default::default();
        let mut repeats: [Vec<Sample>; 2] = Default::default();
        for _ in 0..rounds {
            for (index, table) in tables.iter().enumerate() {
                let (first, repeat) = round(table, keys);
                firsts[index].push(first);
                repeats[index].push(repeat);
            }
        }
        for (what, samples) in [("first sweep", &firsts), ("repeat sweep", &repeats)] {
            let [short, long] = [medians(&samples[0]), medians(&samples[1])];
            println!(
                "  {keys:>6} keys, {what:<12}: {:>8.2?}/key with 1 record, {:>8.2?}/key with 100 \
                 = {:.2}x; peak {} KiB with 1 record, {} KiB with 100",
                per_key(short.time, keys),
                per_key(long.time, keys),
                ratio(long.time, short.time),
                short.peak_bytes / 1024,
                long.peak_bytes / 1024,
            );
        }
    }
}
