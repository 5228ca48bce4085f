//! What the engine reports (`docs/metrics.md`), checked against what each
//! test's operations did: a test recorder (metrics-util's
//! `DebuggingRecorder`, installed for the test's thread only) counts every
//! metric. The spans and events are checked in `telemetry_spans.rs`, a
//! test binary of their own (see there).

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atmostonce::fenced::{Claim, FencedCache, FencedOptions, FencedSweeper};
use atmostonce::telemetry::{
    EXPIRIES_TOTAL, INDETERMINATE_APPENDS_TOTAL, LOST_RACES_TOTAL, OPERATION_SECONDS,
    OPERATIONS_TOTAL, RETRIES_TOTAL, STORE_CALL_SECONDS, STORE_ERRORS_TOTAL, SWEEP_PAGES_TOTAL,
};
use atmostonce::{
    DedupCache, DedupDecision, DedupSweeper, DurableStore, MemoryStore, ProcessingReceipt,
    ScannedEntry, StoreFuture, StoredEntry, StreamHead,
};
use common::{AppendFault, run, scripted_store};
use futures::FutureExt as _;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// Every metric a closure reported: counters by name and sorted labels,
/// and each histogram's number of samples.
#[derive(Debug, Default)]
struct Reported {
    counters: BTreeMap<(String, Vec<(String, String)>), u64>,
    samples: BTreeMap<(String, Vec<(String, String)>), usize>,
}

impl Reported {
    fn of(work: impl FnOnce()) -> Reported {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, work);
        let mut reported = Reported::default();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let mut labels: Vec<_> = key
                .key()
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            labels.sort();
            let id = (key.key().name().to_owned(), labels);
            match value {
                DebugValue::Counter(count) => {
                    reported.counters.insert(id, count);
                }
                DebugValue::Histogram(values) => {
                    reported.samples.insert(id, values.len());
                }
                DebugValue::Gauge(_) => panic!("the engine reports no gauges: {id:?}"),
            }
        }
        reported
    }

    fn id(name: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        let mut labels: Vec<_> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        labels.sort();
        (name.to_owned(), labels)
    }

    /// The counter with exactly these labels (0 if never reported).
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .get(&Reported::id(name, labels))
            .copied()
            .unwrap_or(0)
    }

    /// The sum of every counter named `name`.
    fn total(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .filter(|((counter, _), _)| counter == name)
            .map(|(_, count)| count)
            .sum()
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.samples
            .get(&Reported::id(name, labels))
            .copied()
            .unwrap_or(0)
    }
}

/// A memory store that counts its calls by kind and can lose the first
/// append's race: just before it, an identical record lands (another
/// producer claiming in the same millisecond).
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    race_first_append: bool,
    reads: AtomicUsize,
    heads: AtomicUsize,
    appends: AtomicUsize,
    scans: AtomicUsize,
    flushes: AtomicUsize,
}

impl DurableStore for Counting {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected: u64,
    ) -> StoreFuture<'a, u64> {
        if self.appends.fetch_add(1, Ordering::SeqCst) == 0 && self.race_first_append {
            // The memory store answers at once: no executor needed.
            let raced = self.inner.append(stream, payload, expected).now_or_never();
            assert_eq!(raced, Some(Ok(expected)), "the racing append lands");
        }
        self.inner.append(stream, payload, expected)
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_from(stream, offset, limit)
    }

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_head(stream)
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.inner.scan(prefix)
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush()
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.inner.acknowledged_appends_are_durable()
    }
}

impl Counting {
    fn calls(&self, call: &str) -> usize {
        match call {
            "read" => &self.reads,
            "read_head" => &self.heads,
            "append" => &self.appends,
            "scan" => &self.scans,
            _ => &self.flushes,
        }
        .load(Ordering::SeqCst)
    }
}

fn seed(operation: &str, outcome: &str) -> [(&'static str, String); 3] {
    [
        ("api", "seed".into()),
        ("operation", operation.into()),
        ("outcome", outcome.into()),
    ]
}

fn labels<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}

#[test]
fn every_seed_operation_is_counted_by_its_outcome_and_every_store_call_timed() {
    let store = Arc::new(Counting::default());
    let cache = DedupCache::new(store.clone(), "orders");
    let receipt = ProcessingReceipt::new(b"r".to_vec());
    let reported = Reported::of(|| {
        assert_eq!(run(cache.claim_or_get("a", 1)), Ok(DedupDecision::Claimed));
        assert_eq!(run(cache.claim_or_get("a", 2)), Ok(DedupDecision::InFlight));
        run(cache.complete_receipt_at("a", &receipt, 3)).unwrap();
        assert_eq!(
            run(cache.claim_or_get("a", 4)),
            Ok(DedupDecision::Completed(receipt.clone()))
        );
        assert_eq!(run(cache.lookup("b")), Ok(None));
        assert!(run(cache.claim_or_get("", 5)).is_err());
        assert!(run(cache.complete_receipt_at("b", &receipt, 5)).is_err());
        let sweeper = DedupSweeper::new(
            &cache,
            std::time::Duration::from_millis(1),
            std::time::Duration::from_secs(1),
        );
        assert_eq!(
            run(sweeper.sweep_once(1_000_000)).unwrap().expired_entries,
            1
        );
    });
    for (operation, outcome, count) in [
        ("claim", "claimed", 1),
        ("claim", "in_flight", 1),
        ("claim", "completed", 1),
        ("claim", "invalid_input", 1),
        ("complete", "ok", 1),
        ("complete", "dedup_collision", 1),
        ("lookup", "absent", 1),
        ("sweep", "ok", 1),
    ] {
        let pairs = seed(operation, outcome);
        assert_eq!(
            reported.counter(OPERATIONS_TOTAL, &labels(&pairs)),
            count,
            "{operation} {outcome}"
        );
    }
    assert_eq!(reported.total(OPERATIONS_TOTAL), 8);
    assert_eq!(
        reported.counter(EXPIRIES_TOTAL, &[("api", "seed"), ("kind", "entry")]),
        1
    );
    assert_eq!(reported.counter(SWEEP_PAGES_TOTAL, &[("api", "seed")]), 1);
    assert_eq!(
        reported.total(LOST_RACES_TOTAL) + reported.total(RETRIES_TOTAL),
        0
    );
    for call in ["read", "read_head", "append", "scan", "flush"] {
        assert_eq!(
            reported.samples(STORE_CALL_SECONDS, &[("call", call)]),
            store.calls(call),
            "{call}"
        );
    }
    assert!(
        store.calls("append") >= 3 && store.calls("read_head") >= 6,
        "the test's premise"
    );
    assert_eq!(
        reported.samples(
            OPERATION_SECONDS,
            &[("api", "seed"), ("operation", "claim")]
        ),
        4
    );
}

#[test]
fn a_lost_race_is_counted_and_the_winner_decides() {
    let store = Arc::new(Counting {
        race_first_append: true,
        ..Counting::default()
    });
    let cache = DedupCache::new(store, "orders");
    let reported = Reported::of(|| {
        assert_eq!(run(cache.claim_or_get("a", 1)), Ok(DedupDecision::InFlight));
    });
    assert_eq!(
        reported.counter(LOST_RACES_TOTAL, &[("api", "seed"), ("operation", "claim")]),
        1
    );
    let pairs = seed("claim", "in_flight");
    assert_eq!(reported.counter(OPERATIONS_TOTAL, &labels(&pairs)), 1);
    assert_eq!(reported.total(STORE_ERRORS_TOTAL), 0);
}

fn fenced(operation: &str, outcome: &str) -> [(&'static str, String); 3] {
    [
        ("api", "fenced".into()),
        ("operation", operation.into()),
        ("outcome", outcome.into()),
    ]
}

#[test]
fn fenced_operations_count_stale_tokens_mismatches_collisions_and_expiries() {
    let options = FencedOptions::default()
        .with_lease_ms(10)
        .with_receipt_ttl_ms(10)
        .with_hash_bits(1);
    let cache = FencedCache::new(Arc::new(MemoryStore::new()), "orders", options).unwrap();
    let twin = (0..)
        .map(|n| format!("k{n}"))
        .find(|key| cache.stream_key_for(key) == cache.stream_key_for("a"))
        .unwrap();
    let receipt = ProcessingReceipt::new(b"r".to_vec());
    let reported = Reported::of(|| {
        let Ok(Claim::Granted(token)) = run(cache.claim_with_fingerprint("a", b"f1", 1)) else {
            panic!("a fresh key is granted");
        };
        assert!(run(cache.claim_with_fingerprint("a", b"f2", 2)).is_err());
        let token = run(cache.renew(&token, 3)).unwrap();
        run(cache.complete(&token, &receipt, 4)).unwrap();
        assert!(run(cache.release(&token, 5)).is_err());
        assert!(run(cache.claim(&twin, 6)).is_err());
        assert!(run(cache.lookup("a", 7)).unwrap().is_some());
        let report = run(FencedSweeper::new(&cache).sweep_once(1_000_000)).unwrap();
        assert_eq!(report.expired_receipts, 1);
    });
    for (operation, outcome) in [
        ("claim", "granted"),
        ("claim", "fingerprint_mismatch"),
        ("claim", "dedup_collision"),
        ("renew", "renewed"),
        ("complete", "ok"),
        ("release", "stale_claim"),
        ("lookup", "completed"),
        ("sweep", "ok"),
    ] {
        let pairs = fenced(operation, outcome);
        assert_eq!(
            reported.counter(OPERATIONS_TOTAL, &labels(&pairs)),
            1,
            "{operation} {outcome}"
        );
    }
    assert_eq!(reported.total(OPERATIONS_TOTAL), 8);
    assert_eq!(
        reported.counter(EXPIRIES_TOTAL, &[("api", "fenced"), ("kind", "receipt")]),
        1
    );
    assert_eq!(
        reported.counter(EXPIRIES_TOTAL, &[("api", "fenced"), ("kind", "claim")]),
        0
    );
    assert_eq!(reported.counter(SWEEP_PAGES_TOTAL, &[("api", "fenced")]), 1);
}

#[test]
fn indeterminate_appends_are_counted_by_how_they_resolved() {
    let store = Arc::new(scripted_store(true));
    let cache = FencedCache::new(store.clone(), "orders", FencedOptions::default()).unwrap();
    let reported = Reported::of(|| {
        store.script_appends(&[Some(AppendFault::AppliedThenError)]);
        assert!(matches!(
            run(cache.claim("landed", 1)),
            Ok(Claim::Granted(_))
        ));
        store.script_appends(&[Some(AppendFault::LostWithError)]);
        assert!(matches!(
            run(cache.claim("absent", 1)),
            Ok(Claim::Granted(_))
        ));
    });
    let resolved = |resolution| {
        reported.counter(
            INDETERMINATE_APPENDS_TOTAL,
            &[
                ("api", "fenced"),
                ("operation", "claim"),
                ("resolution", resolution),
            ],
        )
    };
    assert_eq!(
        (resolved("landed"), resolved("absent"), resolved("lost")),
        (1, 1, 0)
    );
    assert_eq!(resolved("unresolved"), 0);
    // The append that did not land is made again: one retry.
    assert_eq!(
        reported.counter(RETRIES_TOTAL, &[("api", "fenced"), ("operation", "claim")]),
        1
    );
    assert_eq!(
        reported.counter(STORE_ERRORS_TOTAL, &[("call", "append")]),
        2
    );
    assert_eq!(store.appends.load(Ordering::SeqCst), 3);
}
