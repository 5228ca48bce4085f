//! The seed API reads heads, not histories (`docs/spec.md`, "Seed API"):
//! each operation asks the store for the same calls whatever the key's
//! history (`MemoryStore` acknowledges appends durably: no flush), and an
//! indeterminate append below a grown head is resolved from
//! the one record at its sequence.

mod common;

use std::sync::Arc;

use atmostonce::core::{Operation, Step, StoreReply, StoreRequest};
use atmostonce::{
    DedupCache, DedupDecision, DedupRecord, DurabilityError, DurableStore, MemoryStore,
    ProcessingReceipt, Tombstone,
};
use common::run;

fn kind(request: &StoreRequest) -> String {
    match request {
        StoreRequest::Read { limit, .. } => format!("read {limit}"),
        StoreRequest::Append { .. } => "append".into(),
        StoreRequest::Flush => "flush".into(),
        StoreRequest::Scan { .. } => "scan".into(),
        StoreRequest::ReadHead { .. } => "head".into(),
        StoreRequest::ScanHeads { .. } => "heads".into(),
        StoreRequest::Compact { .. } => "compact".into(),
    }
}

/// Drives `op` on `store` to its end: the kinds of store call it made and
/// its result.
async fn calls_of<O: Operation>(
    store: &MemoryStore,
    op: &mut O,
) -> (Vec<String>, Result<O::Output, DurabilityError>) {
    let mut kinds = Vec::new();
    loop {
        match op.poll() {
            Step::Request(request) => {
                kinds.push(kind(&request));
                op.feed(atmostonce::execute(store, &request).await);
            }
            Step::Done(result) => return (kinds, result),
        }
    }
}

/// Drives `op` until it asks to append, performs that append on `store`,
/// and answers it with an indeterminate error: the append landed, the
/// producer does not know it.
async fn append_applied_then_error<O: Operation>(store: &MemoryStore, op: &mut O) -> u64 {
    loop {
        let Step::Request(request) = op.poll() else {
            panic!("the operation ended before it appended");
        };
        let reply = atmostonce::execute(store, &request).await;
        if let StoreRequest::Append { expected_seq, .. } = request {
            assert_eq!(reply, StoreReply::Append(Ok(expected_seq)));
            op.feed(StoreReply::Append(Err(DurabilityError::StoreError(
                "append timed out".into(),
            ))));
            return expected_seq;
        }
        op.feed(reply);
    }
}

fn setup() -> (Arc<MemoryStore>, DedupCache) {
    let store = Arc::new(MemoryStore::new());
    let cache = DedupCache::new(store.clone(), "orders");
    (store, cache)
}

#[test]
fn every_seed_operation_makes_the_same_store_calls_whatever_the_history() {
    run(async {
        for history in [0_u64, 2, 200, 20_000] {
            let (store, cache) = setup();
            for round in 0..history / 2 {
                assert_eq!(
                    cache.claim_or_get("k", round).await.unwrap(),
                    DedupDecision::Claimed
                );
                cache.release_claim("k").await.unwrap();
            }
            let protocol = cache.protocol().unwrap();
            let (claim, decision) = calls_of(&store, &mut protocol.claim("k", 1).unwrap()).await;
            assert_eq!(decision.unwrap(), DedupDecision::Claimed);
            assert_eq!(claim, ["head", "append"], "claim, history {history}");
            let (lookup, found) = calls_of(&store, &mut protocol.lookup("k").unwrap()).await;
            assert_eq!(found.unwrap(), Some(DedupDecision::InFlight));
            assert_eq!(lookup, ["head"], "lookup, history {history}");
            let receipt = ProcessingReceipt::new(b"r".to_vec());
            let mut complete = protocol.complete("k", &receipt, 2).unwrap();
            let (completed, done) = calls_of(&store, &mut complete).await;
            done.unwrap();
            assert_eq!(completed, ["head", "append"], "history {history}");
            let (release, released) =
                calls_of(&store, &mut protocol.release("k", 3).unwrap()).await;
            released.unwrap();
            assert_eq!(release, ["head"], "release of a receipt, history {history}");
        }
    });
}

#[test]
fn an_indeterminate_claim_below_a_grown_head_is_resolved_by_the_record_at_its_sequence() {
    run(async {
        let (store, cache) = setup();
        let stream = cache.stream_key_for("k");
        let mut claim = cache.protocol().unwrap().claim("k", 7).unwrap();
        let sequence = append_applied_then_error(&store, &mut claim).await;
        // Another writer (a sweeper) appends past the claim before it re-reads.
        let tombstone = DedupRecord::Tombstone(Tombstone::new("k", 8)).encode();
        store
            .append(&stream, &tombstone, sequence + 1)
            .await
            .unwrap();
        let (calls, decision) = calls_of(&store, &mut claim).await;
        assert_eq!(decision.unwrap(), DedupDecision::Claimed);
        assert_eq!(calls, ["head", "read 1"]);
    });
}

#[test]
fn an_indeterminate_claim_whose_sequence_holds_another_record_lost_its_race() {
    run(async {
        let (store, cache) = setup();
        let stream = cache.stream_key_for("k");
        let mut claim = cache.protocol().unwrap().claim("k", 7).unwrap();
        let Step::Request(read) = claim.poll() else {
            panic!("a claim starts with a read");
        };
        claim.feed(atmostonce::execute(&*store, &read).await);
        // The append is lost; another producer's claim takes its sequence,
        // and a completion follows it.
        let Step::Request(StoreRequest::Append { expected_seq, .. }) = claim.poll() else {
            panic!("a claim on a new key appends");
        };
        claim.feed(StoreReply::Append(Err(DurabilityError::StoreError(
            "append timed out".into(),
        ))));
        let other = DedupRecord::Active(atmostonce::DedupEntry::new("k", None, 5)).encode();
        store.append(&stream, &other, expected_seq).await.unwrap();
        let done = DedupRecord::Active(atmostonce::DedupEntry::new("k", Some(b"r".to_vec()), 6));
        store
            .append(&stream, &done.encode(), expected_seq + 1)
            .await
            .unwrap();
        let (calls, decision) = calls_of(&store, &mut claim).await;
        assert_eq!(
            decision.unwrap(),
            DedupDecision::Completed(ProcessingReceipt::new(b"r".to_vec()))
        );
        assert_eq!(calls, ["head", "read 1"]);
    });
}

#[test]
fn an_indeterminate_claim_whose_record_was_compacted_away_returns_its_error() {
    run(async {
        let (store, cache) = setup();
        let stream = cache.stream_key_for("k");
        let mut claim = cache.protocol().unwrap().claim("k", 7).unwrap();
        let sequence = append_applied_then_error(&store, &mut claim).await;
        let tombstone = DedupRecord::Tombstone(Tombstone::new("k", 8)).encode();
        store
            .append(&stream, &tombstone, sequence + 1)
            .await
            .unwrap();
        assert_eq!(store.compact(&stream, sequence + 1).await.unwrap(), 1);
        let (calls, decision) = calls_of(&store, &mut claim).await;
        assert_eq!(
            decision,
            Err(DurabilityError::StoreError("append timed out".into()))
        );
        assert_eq!(calls, ["head", "read 1"]);
    });
}
