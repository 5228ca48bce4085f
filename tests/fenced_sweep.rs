//! The fenced sweeper pages over stream heads and compacts history
//! (`docs/spec.md`, "Sweep"): every stream of a namespace larger than a
//! page is visited with at most one page of heads held; a corrupt,
//! collided or contended key anywhere in a page is reported and skipped;
//! compaction keeps the head and the next append's sequence and bounds the
//! records a key keeps. Each check runs on `MemoryStore`, on haematite, and
//! on PostgreSQL (a throwaway server, as `tests/store_postgres.rs` uses).
//!
//! The history is written with the store's own calls and records encoded
//! by the codec, so that these tests judge the sweep alone.

use std::sync::Arc;

use atmostonce::codec::{ClaimId, ClaimRecord, CompletionRecord, FencedRecord, ReleaseRecord};
use atmostonce::core::{Operation, Step, StoreRequest};
use atmostonce::fenced::{
    FencedCache, FencedOptions, FencedSweepReport, FencedSweeper, SkipReason,
};
use atmostonce::limits::{CLOCK_SKEW_GRACE_MS, SWEEP_PAGE_STREAMS};
use atmostonce::{DurableStore, ProcessingReceipt, execute};

const LEASE_MS: u64 = 10_000;
const TTL_MS: u64 = 100_000;
/// A time at which a claim made at 0 is past its lease and the grace.
const AFTER_LEASE: u64 = LEASE_MS + CLOCK_SKEW_GRACE_MS + 1;

fn cache_on(store: Arc<dyn DurableStore>, namespace: &str) -> FencedCache {
    let options = FencedOptions::default()
        .with_lease_ms(LEASE_MS)
        .with_receipt_ttl_ms(TTL_MS);
    FencedCache::new(store, namespace, options).unwrap()
}

fn id(n: u64) -> ClaimId {
    let mut bytes = [0xa5; 16];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    ClaimId::new(bytes).unwrap()
}

fn claim(key: &str, sequence: u64, at_millis: u64) -> Vec<u8> {
    FencedRecord::Claim(ClaimRecord::new(
        key,
        id(sequence),
        sequence,
        at_millis,
        LEASE_MS,
        None,
    ))
    .encode()
}

fn release(key: &str, fence: u64, at_millis: u64) -> Vec<u8> {
    FencedRecord::Release(ReleaseRecord::released(key, id(fence), fence, at_millis)).encode()
}

/// Appends `records` claim/release pairs to `key`'s stream (starting at
/// its length), ending with a claim at `at_millis` when `records` is odd.
async fn write_history(
    cache: &FencedCache,
    store: &dyn DurableStore,
    key: &str,
    records: u64,
    at_millis: u64,
) {
    let stream = cache.stream_key_for(key);
    let from = store.read_head(&stream).await.unwrap().length;
    for sequence in from..from + records {
        let payload = if (sequence - from) % 2 == 0 {
            claim(key, sequence, at_millis)
        } else {
            release(key, sequence - 1, at_millis)
        };
        store.append(&stream, &payload, sequence).await.unwrap();
    }
    store.flush().await.unwrap();
}

/// Entries the store still holds for `stream`.
async fn kept(store: &dyn DurableStore, stream: &str) -> Vec<u64> {
    let entries = store.read_from(stream, 0, usize::MAX).await.unwrap();
    entries.iter().map(|entry| entry.sequence).collect()
}

/// Drives one sweep by hand, checking on every step that the machine holds
/// at most one page of heads, reads heads only (no whole scan), asks for
/// pages of the named size, and never asks to compact a stream's head.
/// `before_append` runs before each of the sweep's appends (to race it).
async fn sweep_checked(
    cache: &FencedCache,
    store: &dyn DurableStore,
    now_millis: u64,
    mut before_append: impl AsyncFnMut(&str),
) -> FencedSweepReport {
    let mut sweep = cache.protocol().sweep(now_millis);
    loop {
        assert!(
            sweep.heads_held() <= SWEEP_PAGE_STREAMS,
            "the sweep holds {} heads",
            sweep.heads_held()
        );
        let request = match sweep.poll() {
            Step::Done(result) => return result.unwrap(),
            Step::Request(request) => request,
        };
        match &request {
            StoreRequest::Scan { .. } | StoreRequest::Read { .. } => {
                panic!("the sweep reads history: {request:?}")
            }
            StoreRequest::ScanHeads { limit, .. } => assert_eq!(*limit, SWEEP_PAGE_STREAMS),
            StoreRequest::Compact { stream, below_seq } => {
                let head = store.read_head(stream).await.unwrap();
                let last = head.last.expect("a compacted stream has a head");
                assert!(
                    *below_seq <= last.sequence,
                    "the sweep compacts {stream} below {below_seq}, past its head at {}",
                    last.sequence
                );
            }
            StoreRequest::Append { stream, .. } => before_append(stream).await,
            _ => {}
        }
        sweep.feed(execute(store, &request).await);
    }
}

/// `count` keys of `namespace`, sorted by the name of their stream (the
/// order a sweep visits them in).
fn keys_in_stream_order(cache: &FencedCache, count: usize) -> Vec<String> {
    let mut keys: Vec<String> = (0..count).map(|n| format!("key-{n}")).collect();
    keys.sort_by_key(|key| cache.stream_key_for(key));
    keys
}

async fn a_sweep_over_more_streams_than_a_page_visits_every_one(store: Arc<dyn DurableStore>) {
    let cache = cache_on(store.clone(), "paged");
    let count = 2 * SWEEP_PAGE_STREAMS + 7;
    for key in keys_in_stream_order(&cache, count) {
        write_history(&cache, &*store, &key, 1, 0).await;
    }
    // The streams of namespace "paged;" sort right after this one's (';'
    // follows ':'): the sweep must not touch them.
    let other = cache_on(store.clone(), "paged;");
    write_history(&other, &*store, "outsider", 1, 0).await;
    let report = sweep_checked(&cache, &*store, AFTER_LEASE, async |_| {}).await;
    assert_eq!(report.pages, 3, "{report:?}");
    assert_eq!(report.scanned_streams, count, "{report:?}");
    assert_eq!(report.expired_claims, count, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    let outsider = other.stream_key_for("outsider");
    assert_eq!(kept(&*store, &outsider).await, vec![0]);
    // Exactly one page: the sweep ends on the short (here empty) next page.
    let cache = cache_on(store.clone(), "exact");
    for key in keys_in_stream_order(&cache, SWEEP_PAGE_STREAMS) {
        write_history(&cache, &*store, &key, 1, 0).await;
    }
    let report = sweep_checked(&cache, &*store, AFTER_LEASE, async |_| {}).await;
    assert_eq!(
        (report.pages, report.expired_claims),
        (2, SWEEP_PAGE_STREAMS)
    );
}

async fn a_bad_key_in_a_page_or_at_its_boundary_is_reported_and_skipped(
    store: Arc<dyn DurableStore>,
) {
    let cache = cache_on(store.clone(), "bad");
    let count = SWEEP_PAGE_STREAMS + 40;
    let keys = keys_in_stream_order(&cache, count);
    for key in &keys {
        write_history(&cache, &*store, key, 1, 0).await;
    }
    let stream = |at: usize| cache.stream_key_for(&keys[at]);
    let last_of_page = SWEEP_PAGE_STREAMS - 1;
    // Corrupt heads in the middle of the first page, at its last stream and
    // at the first of the next page.
    let corrupt = [100, last_of_page, SWEEP_PAGE_STREAMS];
    for at in corrupt {
        store.append(&stream(at), b"not a record", 1).await.unwrap();
    }
    // Heads of a key not named to their stream, in the middle of a page and
    // as the last stream of all.
    let collided = [150, count - 1];
    for at in collided {
        store
            .append(&stream(at), &release("a stranger", 0, 1), 1)
            .await
            .unwrap();
    }
    store.flush().await.unwrap();
    // Contended: just before the sweep appends its expiry, the key is
    // released (in the middle of a page, and at the second page's first
    // stream the sweep writes to).
    let contended = [
        cache.stream_key_for(&keys[200]),
        cache.stream_key_for(&keys[SWEEP_PAGE_STREAMS + 1]),
    ];
    let raced = store.clone();
    let racing = contended.clone();
    let report = sweep_checked(&cache, &*store, AFTER_LEASE, async move |stream: &str| {
        if racing.iter().any(|s| s == stream) && raced.read_head(stream).await.unwrap().length == 1
        {
            let owner = raced.read_from(stream, 0, 1).await.unwrap();
            let record = FencedRecord::decode(&owner[0].payload).unwrap();
            let payload = release(record.idempotency_key(), 0, 2);
            raced.append(stream, &payload, 1).await.unwrap();
        }
    })
    .await;
    let reasons: Vec<(String, &SkipReason)> = report
        .skipped
        .iter()
        .map(|skip| (skip.stream.clone(), &skip.reason))
        .collect();
    let mut expected: Vec<String> = corrupt
        .iter()
        .chain(&collided)
        .map(|&at| stream(at))
        .chain(contended.iter().cloned())
        .collect();
    expected.sort();
    let mut skipped: Vec<String> = reasons.iter().map(|(stream, _)| stream.clone()).collect();
    skipped.sort();
    assert_eq!(skipped, expected, "{report:?}");
    for (stream, reason) in &reasons {
        let at = keys
            .iter()
            .position(|key| cache.stream_key_for(key) == *stream)
            .unwrap();
        let ok = match reason {
            SkipReason::Corrupt { sequence: 1, .. } => corrupt.contains(&at),
            SkipReason::Collision => collided.contains(&at),
            SkipReason::Conflict => contended.contains(stream),
            _ => false,
        };
        assert!(ok, "stream {at} skipped as {reason:?}");
    }
    assert_eq!(report.scanned_streams, count, "{report:?}");
    assert_eq!(report.expired_claims, count - expected.len(), "{report:?}");
}

async fn compaction_keeps_the_head_and_the_next_sequence_and_bounds_every_key(
    store: Arc<dyn DurableStore>,
) {
    let cache = cache_on(store.clone(), "compact");
    let sweeper = FencedSweeper::new(&cache);
    let hot = cache.stream_key_for("hot");
    let mut now = 0;
    let mut written = 0;
    // A hot key claimed and released between every two sweeps: it keeps its
    // head and the record below it, whatever its history.
    for round in 0..20 {
        now += 1_000;
        write_history(&cache, &*store, "hot", 10, now).await;
        written += 10;
        let report = sweeper.sweep_once(now + 1).await.unwrap();
        assert_eq!(report.compactions, 1, "round {round}: {report:?}");
        let head = store.read_head(&hot).await.unwrap();
        assert_eq!(head.length, written, "round {round}: the length is kept");
        assert_eq!(head.last.unwrap().payload, release("hot", written - 2, now));
        assert_eq!(kept(&*store, &hot).await, vec![written - 2, written - 1]);
    }
    assert_eq!(
        store
            .append(&hot, &claim("hot", written, now), written)
            .await
            .unwrap(),
        written
    );
    written += 1;
    // Quiet past the lease: only the head stays; expired, only the expiry.
    let quiet = now + LEASE_MS + CLOCK_SKEW_GRACE_MS + 1;
    let report = sweeper.sweep_once(quiet).await.unwrap();
    assert_eq!(
        (report.expired_claims, report.compactions),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(kept(&*store, &hot).await, vec![written]);
    assert_eq!(store.read_head(&hot).await.unwrap().length, written + 1);
    // A key nobody writes costs no compaction in later sweeps.
    let report = sweeper.sweep_once(quiet + TTL_MS).await.unwrap();
    assert_eq!(report.compactions, 0, "{report:?}");
    // A long history below a held claim goes in one sweep, the claim and
    // the record below it stay, and the next append lands after it.
    let long = cache.stream_key_for("long");
    write_history(&cache, &*store, "long", 101, quiet).await;
    let report = sweep_checked(&cache, &*store, quiet + 1, async |_| {}).await;
    assert_eq!(
        (report.retained, report.compacted_records),
        (1, 99),
        "{report:?}"
    );
    assert_eq!(kept(&*store, &long).await, vec![99, 100]);
    assert_eq!(
        store
            .append(&long, &release("long", 100, quiet), 101)
            .await
            .unwrap(),
        101
    );
    // A completed key quiet past the lease keeps only its receipt (the head)
    // while the receipt lives, and a later sweep spends no call on it.
    let cache = cache_on(store.clone(), "done");
    let sweeper = FencedSweeper::new(&cache);
    let done = cache.stream_key_for("done");
    write_history(&cache, &*store, "done", 31, 0).await;
    let claimed = ClaimRecord::new("done", id(30), 30, 0, LEASE_MS, None);
    let receipt = ProcessingReceipt::new(b"ok".to_vec());
    let completion = FencedRecord::Completion(CompletionRecord::of(&claimed, receipt, 1));
    store.append(&done, &completion.encode(), 31).await.unwrap();
    store.flush().await.unwrap();
    let report = sweeper.sweep_once(1).await.unwrap();
    assert_eq!(kept(&*store, &done).await, vec![30, 31], "{report:?}");
    let report = sweep_checked(&cache, &*store, AFTER_LEASE + 1, async |_| {}).await;
    assert_eq!((report.retained, report.compactions), (1, 1), "{report:?}");
    assert_eq!(kept(&*store, &done).await, vec![31]);
    let report = sweeper.sweep_once(AFTER_LEASE + 1).await.unwrap();
    assert_eq!(
        report.compactions, 1,
        "the first quiet sweep of this sweeper"
    );
    let report = sweeper.sweep_once(AFTER_LEASE + 1_000).await.unwrap();
    assert_eq!((report.retained, report.compactions), (1, 0), "{report:?}");
    assert_eq!(store.read_head(&done).await.unwrap().length, 32);
}

mod memory {
    use super::*;
    use atmostonce::MemoryStore;

    fn store() -> Arc<dyn DurableStore> {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn a_sweep_over_more_streams_than_a_page_visits_every_one() {
        super::a_sweep_over_more_streams_than_a_page_visits_every_one(store()).await;
    }

    #[tokio::test]
    async fn a_bad_key_in_a_page_or_at_its_boundary_is_reported_and_skipped() {
        super::a_bad_key_in_a_page_or_at_its_boundary_is_reported_and_skipped(store()).await;
    }

    #[tokio::test]
    async fn compaction_keeps_the_head_and_the_next_sequence_and_bounds_every_key() {
        super::compaction_keeps_the_head_and_the_next_sequence_and_bounds_every_key(store()).await;
    }
}

#[cfg(feature = "haematite")]
mod haematite {
    use super::*;
    use atmostonce::HaematiteStore;

    fn store() -> Arc<dyn DurableStore> {
        Arc::new(HaematiteStore::ephemeral().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sweep_over_more_streams_than_a_page_visits_every_one() {
        super::a_sweep_over_more_streams_than_a_page_visits_every_one(store()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_key_in_a_page_or_at_its_boundary_is_reported_and_skipped() {
        super::a_bad_key_in_a_page_or_at_its_boundary_is_reported_and_skipped(store()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_keeps_the_head_and_the_next_sequence_and_bounds_every_key() {
        super::compaction_keeps_the_head_and_the_next_sequence_and_bounds_every_key(store()).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use atmostonce::{PostgresOptions, PostgresStore};

    async fn store() -> Arc<dyn DurableStore> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let server = testpg::server()
            .unwrap_or_else(|error| panic!("the PostgreSQL tests have no server: {error}"));
        let table = format!(
            "sweep_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let options = PostgresOptions::default().with_table(table);
        Arc::new(
            PostgresStore::connect_with_options(server.url(), options)
                .await
                .unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sweep_over_more_streams_than_a_page_visits_every_one() {
        super::a_sweep_over_more_streams_than_a_page_visits_every_one(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_key_in_a_page_or_at_its_boundary_is_reported_and_skipped() {
        super::a_bad_key_in_a_page_or_at_its_boundary_is_reported_and_skipped(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_keeps_the_head_and_the_next_sequence_and_bounds_every_key() {
        super::compaction_keeps_the_head_and_the_next_sequence_and_bounds_every_key(store().await)
            .await;
    }
}
