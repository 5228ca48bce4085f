//! Checks shared by the tests of every durable store backend: racing appends
//! from many tasks, and the seed semantics of `DedupCache` on top.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use atmostonce::{
    DedupCache, DedupDecision, DedupSweeper, DurabilityError, DurableStore, ProcessingReceipt,
};

/// Tasks that race; the issue asks for 16.
pub const RACING_TASKS: usize = 16;
/// Streams they race on: few, so that most appends collide.
const RACED_STREAMS: usize = 4;
/// Appends each task gets acknowledged before it stops.
const ACKS_PER_TASK: usize = 25;
/// Attempts a task may make before the test gives up on the store: with 16
/// tasks on 4 streams a task loses most races, but never this many.
const MAX_ATTEMPTS_PER_TASK: usize = 100_000;

/// An append some task got acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Acked {
    stream: String,
    sequence: u64,
    payload: Vec<u8>,
}

/// 16 tokio tasks append to the same 4 streams at the head they believe in,
/// learning the real head from each conflict. Then every stream must be
/// 0, 1, 2, ... without a gap or a repeated sequence, hold every
/// acknowledged append at its sequence, and hold nothing else (no append
/// failed indeterminately, so every entry must have been acknowledged).
/// Returns the number of acknowledged appends and of lost races.
pub async fn racing_appends_leave_no_gap_duplicate_or_lost_append(
    store: Arc<dyn DurableStore>,
    prefix: &str,
) -> (usize, usize) {
    let streams: Vec<String> = (0..RACED_STREAMS)
        .map(|index| format!("{prefix}/race-{index}"))
        .collect();
    let mut tasks = Vec::new();
    for task in 0..RACING_TASKS {
        let store = Arc::clone(&store);
        let streams = streams.clone();
        tasks.push(tokio::spawn(async move {
            let mut heads = vec![0u64; streams.len()];
            let mut acked = Vec::new();
            let mut lost_races = 0;
            for attempt in 0..MAX_ATTEMPTS_PER_TASK {
                if acked.len() == ACKS_PER_TASK {
                    return (acked, lost_races);
                }
                let index = (task + attempt) % streams.len();
                let stream = &streams[index];
                let payload = format!("task {task} attempt {attempt}").into_bytes();
                match store.append(stream, &payload, heads[index]).await {
                    Ok(sequence) => {
                        assert_eq!(sequence, heads[index], "append to {stream} got the wrong sequence");
                        heads[index] = sequence + 1;
                        acked.push(Acked {
                            stream: stream.clone(),
                            sequence,
                            payload,
                        });
                    }
                    Err(DurabilityError::SequenceConflict { expected, actual }) => {
                        assert_eq!(expected, heads[index], "conflict on {stream} misreports the expected sequence");
                        // Heads only grow and ours came from the store, so a
                        // refused append must be behind the real head.
                        assert!(
                            actual > expected,
                            "conflict on {stream} reports head {actual}, not past the refused {expected}"
                        );
                        heads[index] = actual;
                        lost_races += 1;
                    }
                    Err(error) => panic!("append to {stream} failed: {error}"),
                }
            }
            panic!("task {task} got fewer than {ACKS_PER_TASK} appends acknowledged in {MAX_ATTEMPTS_PER_TASK} attempts");
        }));
    }
    let mut acked = BTreeSet::new();
    let mut lost_races = 0;
    for task in tasks {
        let (task_acked, task_lost) = task.await.expect("a racing task panicked");
        lost_races += task_lost;
        for append in task_acked {
            assert!(
                acked.insert(append.clone()),
                "{append:?} acknowledged twice"
            );
        }
    }
    let mut stored = BTreeSet::new();
    for stream in &streams {
        let entries = store
            .read_from(stream, 0, usize::MAX)
            .await
            .unwrap_or_else(|error| panic!("reading {stream} back failed: {error}"));
        let sequences: Vec<u64> = entries.iter().map(|entry| entry.sequence).collect();
        let contiguous: Vec<u64> = (0..entries.len() as u64).collect();
        assert_eq!(
            sequences, contiguous,
            "stream {stream} has a gap or a repeated sequence"
        );
        for entry in entries {
            stored.insert(Acked {
                stream: stream.clone(),
                sequence: entry.sequence,
                payload: entry.payload,
            });
        }
    }
    let lost: Vec<&Acked> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged appends missing from the store: {lost:?}"
    );
    let unacknowledged: Vec<&Acked> = stored.difference(&acked).collect();
    assert!(
        unacknowledged.is_empty(),
        "entries nobody got acknowledged: {unacknowledged:?}"
    );
    assert_eq!(acked.len(), RACING_TASKS * ACKS_PER_TASK);
    (acked.len(), lost_races)
}

fn receipt(text: &str) -> ProcessingReceipt {
    ProcessingReceipt::new(text.as_bytes().to_vec())
}

/// Claim, complete, then a duplicate gets the receipt; completing again with
/// the same receipt is fine, with another one it is a collision.
pub async fn a_completed_key_answers_duplicates_with_its_receipt(cache: &DedupCache) {
    let now_millis = 1_000;
    assert_eq!(cache.lookup("order-1").await.unwrap(), None);
    assert_eq!(
        cache.claim_or_get("order-1", now_millis).await.unwrap(),
        DedupDecision::Claimed
    );
    assert_eq!(
        cache.claim_or_get("order-1", now_millis + 1).await.unwrap(),
        DedupDecision::InFlight
    );
    cache
        .complete_receipt_at("order-1", &receipt("charged"), now_millis + 2)
        .await
        .unwrap();
    assert_eq!(
        cache.claim_or_get("order-1", now_millis + 3).await.unwrap(),
        DedupDecision::Completed(receipt("charged"))
    );
    assert_eq!(
        cache.lookup("order-1").await.unwrap(),
        Some(DedupDecision::Completed(receipt("charged")))
    );
    cache
        .complete_receipt_at("order-1", &receipt("charged"), now_millis + 4)
        .await
        .unwrap();
    assert!(matches!(
        cache
            .complete_receipt_at("order-1", &receipt("refunded"), now_millis + 5)
            .await,
        Err(DurabilityError::DedupCollision { .. })
    ));
    assert!(matches!(
        cache
            .complete_receipt_at("never-claimed", &receipt("x"), now_millis)
            .await,
        Err(DurabilityError::DedupCollision { .. })
    ));
}

/// A released claim can be claimed again; a release never clobbers a
/// receipt.
pub async fn a_released_key_can_be_claimed_again_and_receipts_survive_release(cache: &DedupCache) {
    let now_millis = 1_000;
    assert_eq!(
        cache.claim_or_get("flaky", now_millis).await.unwrap(),
        DedupDecision::Claimed
    );
    cache
        .release_claim_at("flaky", now_millis + 1)
        .await
        .unwrap();
    assert_eq!(cache.lookup("flaky").await.unwrap(), None);
    assert_eq!(
        cache.claim_or_get("flaky", now_millis + 2).await.unwrap(),
        DedupDecision::Claimed
    );
    cache
        .complete_receipt_at("flaky", &receipt("done"), now_millis + 3)
        .await
        .unwrap();
    cache
        .release_claim_at("flaky", now_millis + 4)
        .await
        .unwrap();
    assert_eq!(
        cache.claim_or_get("flaky", now_millis + 5).await.unwrap(),
        DedupDecision::Completed(receipt("done"))
    );
}

/// The sweeper tombstones entries past TTL + grace (completed ones and
/// claims whose holder vanished) and keeps younger ones.
pub async fn the_sweeper_expires_old_entries_and_keeps_young_ones(cache: &DedupCache) {
    let ttl = Duration::from_secs(60);
    let old_millis = 1_000_000;
    cache.claim_or_get("old-done", old_millis).await.unwrap();
    cache
        .complete_receipt_at("old-done", &receipt("r"), old_millis)
        .await
        .unwrap();
    cache.claim_or_get("old-stuck", old_millis).await.unwrap();
    let now_millis = old_millis + 60_000 + 1_000 + 1;
    cache.claim_or_get("young", now_millis).await.unwrap();
    let sweeper = DedupSweeper::new(cache, ttl, Duration::from_secs(10));
    let report = sweeper.sweep_once(now_millis).await.unwrap();
    assert_eq!((report.expired_entries, report.retained_entries), (2, 1));
    assert_eq!(cache.lookup("old-done").await.unwrap(), None);
    assert_eq!(cache.lookup("old-stuck").await.unwrap(), None);
    assert_eq!(
        cache.lookup("young").await.unwrap(),
        Some(DedupDecision::InFlight)
    );
    assert_eq!(
        cache.claim_or_get("old-done", now_millis).await.unwrap(),
        DedupDecision::Claimed
    );
}

/// 16 tasks claim one key at once: exactly one gets it.
pub async fn concurrent_claims_of_one_key_grant_it_once(cache: &DedupCache) {
    let claims: Vec<_> = (0..RACING_TASKS)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.claim_or_get("hot", 5_000).await })
        })
        .collect();
    let mut granted = 0;
    for claim in claims {
        match claim.await.expect("a claiming task panicked") {
            Ok(DedupDecision::Claimed) => granted += 1,
            Ok(DedupDecision::InFlight) | Err(DurabilityError::SequenceConflict { .. }) => {}
            other => panic!("unexpected answer to a racing claim: {other:?}"),
        }
    }
    assert_eq!(granted, 1, "claims granted for one key");
}
