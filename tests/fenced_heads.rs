//! The fenced API reads heads, not histories (`docs/spec.md`, "Fenced
//! API"): what each operation asks the store for, whatever the key's
//! history; a damaged record matters only where it is read; an
//! indeterminate append whose record was compacted away stays
//! indeterminate.

mod common;

use std::sync::Arc;

use atmostonce::codec::ClaimId;
use atmostonce::core::{Operation, Step, StoreReply, StoreRequest};
use atmostonce::fenced::{
    Claim, ClaimToken, FencedCache, FencedOptions, FencedSweeper, SkipReason,
};
use atmostonce::limits::CLOCK_SKEW_GRACE_MS;
use atmostonce::{DurabilityError, DurableStore, MemoryStore, ProcessingReceipt, StreamHead};
use common::run;

const LEASE_MS: u64 = 10_000;
const AFTER_LEASE: u64 = LEASE_MS + CLOCK_SKEW_GRACE_MS + 1;

fn options() -> FencedOptions {
    FencedOptions::default().with_lease_ms(LEASE_MS)
}

fn cache_on(store: &Arc<MemoryStore>) -> FencedCache {
    FencedCache::new(store.clone(), "orders", options()).unwrap()
}

fn receipt(text: &str) -> ProcessingReceipt {
    ProcessingReceipt::new(text.as_bytes().to_vec())
}

fn granted(claim: Claim) -> ClaimToken {
    match claim {
        Claim::Granted(token) => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn is_stale<T: std::fmt::Debug>(result: Result<T, DurabilityError>) -> bool {
    matches!(result, Err(DurabilityError::StaleClaim { .. }))
}

fn kind(request: &StoreRequest) -> &'static str {
    match request {
        StoreRequest::Read { .. } => "read",
        StoreRequest::Append { .. } => "append",
        StoreRequest::Flush => "flush",
        StoreRequest::Scan { .. } => "scan",
        StoreRequest::ReadHead { .. } => "head",
        StoreRequest::ScanHeads { .. } => "heads",
        StoreRequest::Compact { .. } => "compact",
    }
}

/// Drives `op` on `store`, returning the kinds of store call it made (and,
/// for reads, how many entries they asked for at most) and its result.
async fn calls_of<O: Operation>(
    store: &MemoryStore,
    mut op: O,
) -> (Vec<String>, Result<O::Output, DurabilityError>) {
    let mut kinds = Vec::new();
    loop {
        match op.poll() {
            Step::Request(request) => {
                kinds.push(match &request {
                    StoreRequest::Read { limit, .. } => format!("read {limit}"),
                    other => kind(other).to_owned(),
                });
                op.feed(atmostonce::execute(store, &request).await);
            }
            Step::Done(result) => return (kinds, result),
        }
    }
}

/// A key whose stream holds `operations` claims and releases.
async fn churned(cache: &FencedCache, key: &str, operations: u64) {
    for round in 0..operations / 2 {
        let token = granted(cache.claim(key, round).await.unwrap());
        cache.release(&token, round).await.unwrap();
    }
}

#[test]
fn every_operation_makes_the_same_store_calls_whatever_the_history() {
    run(async {
        for history in [0, 2, 200, 20_000] {
            let store = Arc::new(MemoryStore::new());
            let cache = cache_on(&store);
            churned(&cache, "k", history).await;
            let protocol = cache.protocol();
            let id = |byte| ClaimId::new([byte; 16]).unwrap();
            let (claim, result) =
                calls_of(&store, protocol.claim("k", id(1), None, 1).unwrap()).await;
            let token = granted(result.unwrap());
            assert_eq!(token.fence(), history, "history {history}");
            let expected_claim: &[&str] = if history == 0 {
                &["append"]
            } else {
                &["append", "head", "append"]
            };
            assert_eq!(claim, expected_claim, "claim, history {history}");
            let (lookup, _) = calls_of(&store, protocol.lookup("k", 1).unwrap()).await;
            assert_eq!(lookup, ["head"], "lookup, history {history}");
            let (renew, renewed) = calls_of(&store, protocol.renew(&token, 2).unwrap()).await;
            assert_eq!(renew, ["head", "append"], "renew, history {history}");
            let renewed = renewed.unwrap();
            let (complete, done) = calls_of(
                &store,
                protocol.complete(&renewed, &receipt("r"), 3).unwrap(),
            )
            .await;
            done.unwrap();
            assert_eq!(complete, ["append"], "complete, history {history}");
            // A retried completion: the guess conflicts, the head says done.
            let (retried, done) = calls_of(
                &store,
                protocol.complete(&renewed, &receipt("r"), 4).unwrap(),
            )
            .await;
            done.unwrap();
            assert_eq!(retried, ["append", "head"], "retry, history {history}");
            // A stale token: the old claim is two records below the head.
            let (stale, result) = calls_of(&store, protocol.release(&token, 5).unwrap()).await;
            assert!(is_stale(result), "history {history}");
            assert_eq!(stale, ["head"], "stale release, history {history}");
        }
    });
}

#[test]
fn an_indeterminate_append_whose_record_was_compacted_away_stays_indeterminate() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let id = ClaimId::new([9; 16]).unwrap();
        let mut claim = cache.protocol().claim("k", id, None, 1).unwrap();
        let Step::Request(request @ StoreRequest::Append { .. }) = claim.poll() else {
            panic!("the claim's first call is its guess");
        };
        // The guess landed, but its answer was lost.
        let landed = atmostonce::execute(&*store, &request).await;
        assert!(matches!(landed, StoreReply::Append(Ok(0))));
        let timeout = DurabilityError::StoreError("timed out".into());
        claim.feed(StoreReply::Append(Err(timeout.clone())));
        // Then the sweeper expired it, someone else claimed, and the history
        // below the head went.
        let later = cache.lookup("k", 1).await.unwrap();
        assert!(later.is_some());
        let expired = FencedSweeper::new(&cache)
            .sweep_once(10 * AFTER_LEASE)
            .await
            .unwrap();
        assert_eq!(expired.expired_claims, 1);
        granted(cache.claim("k", 10 * AFTER_LEASE).await.unwrap());
        let stream = cache.stream_key_for("k");
        // (The sweep compacts below its expiry by itself; the rest goes.)
        store.compact(&stream, 2).await.unwrap();
        let first = store.read_from(&stream, 0, 1).await.unwrap();
        assert_eq!(first[0].sequence, 2, "only the head is left");
        let Step::Request(StoreRequest::ReadHead { .. }) = claim.poll() else {
            panic!("an indeterminate append is resolved from the head");
        };
        claim.feed(StoreReply::Head(store.read_head(&stream).await));
        let Step::Request(probe @ StoreRequest::Read { .. }) = claim.poll() else {
            panic!("below the head, the append's own record is read");
        };
        assert_eq!(
            probe,
            StoreRequest::Read {
                stream: stream.clone(),
                offset: 0,
                limit: 1
            }
        );
        claim.feed(atmostonce::execute(&*store, &probe).await);
        assert_eq!(claim.poll(), Step::Done(Err(timeout)));
        // The head is still the other claimer's.
        let head: StreamHead = store.read_head(&stream).await.unwrap();
        assert_eq!(head.length, 3);
    });
}

/// A store holding a claim on "bad" whose record (sequence 0) has one bit
/// flipped, a live claim on "good", and the cache over it; with the token of
/// the damaged claim.
async fn damaged_claim() -> (FencedCache, ClaimToken, String) {
    let store = Arc::new(MemoryStore::new());
    let cache = cache_on(&store);
    let token = granted(cache.claim("bad", 0).await.unwrap());
    granted(cache.claim("good", 0).await.unwrap());
    // Damage one bit of the claim's record, keeping its length.
    let stream = cache.stream_key_for("bad");
    let mut table = store.snapshot();
    let mut bytes = table.read_from(&stream, 0, 1)[0].payload.clone();
    bytes[10] ^= 0x01;
    assert!(table.overwrite(&stream, 0, bytes));
    let store = Arc::new(MemoryStore::from_table(table));
    (cache_on(&store), token, stream)
}

fn is_envelope_error_at_0<T: std::fmt::Debug>(result: &Result<T, DurabilityError>, stream: &str) {
    assert!(
        matches!(result, Err(DurabilityError::EnvelopeError { stream: s, sequence: 0, .. }) if s == stream),
        "{result:?}"
    );
}

#[test]
fn a_corrupt_head_is_an_envelope_error_and_the_sweep_goes_on_past_it() {
    run(async {
        let (cache, _, stream) = damaged_claim().await;
        is_envelope_error_at_0(&cache.claim("bad", 1).await, &stream);
        is_envelope_error_at_0(&cache.lookup("bad", 1).await, &stream);
        let report = FencedSweeper::new(&cache)
            .sweep_once(10 * AFTER_LEASE)
            .await
            .unwrap();
        assert_eq!(report.expired_claims, 1, "{report:?}");
        assert_eq!(report.skipped.len(), 1, "{report:?}");
        assert_eq!(report.skipped[0].stream, stream);
        assert!(matches!(
            report.skipped[0].reason,
            SkipReason::Corrupt { sequence: 0, .. }
        ));
    });
}

#[test]
fn the_holder_of_a_damaged_claim_completes_after_it_and_the_damage_no_longer_matters() {
    run(async {
        let (cache, token, _) = damaged_claim().await;
        // The token says what the record at its sequence is; its completion
        // lands right after it without reading it (docs/spec.md, "Fenced
        // API", corruption).
        cache.complete(&token, &receipt("r"), 1).await.unwrap();
        assert_eq!(
            cache.claim("bad", 2).await.unwrap(),
            Claim::Completed(receipt("r"))
        );
        // The damaged record is below the head now: nothing reads it.
        assert!(is_stale(cache.release(&token, 2).await));
        assert!(is_stale(cache.renew(&token, 2).await.map(drop)));
        assert!(cache.lookup("bad", 2).await.unwrap().is_some());
        // The sweep reads heads too: nothing to skip.
        let report = FencedSweeper::new(&cache).sweep_once(3).await.unwrap();
        assert!(report.skipped.is_empty(), "{report:?}");
    });
}

#[test]
fn a_release_or_renewal_of_a_damaged_claim_reads_it_and_is_an_envelope_error() {
    run(async {
        let (cache, token, stream) = damaged_claim().await;
        is_envelope_error_at_0(&cache.renew(&token, 1).await, &stream);
        is_envelope_error_at_0(&cache.release(&token, 1).await, &stream);
    });
}
