//! The fenced API's semantics, rule by rule (`docs/record-format.md`,
//! `docs/spec.md`), on the in-memory store and on machines driven by hand
//! where a store fault must fall at an exact point.

mod common;

use std::sync::Arc;

use atmostonce::codec::{ClaimId, FencedRecord};
use atmostonce::core::{Operation, Step, StoreRequest};
use atmostonce::fenced::{
    Claim, ClaimToken, FencedCache, FencedOptions, FencedSweeper, KeyStatus, SkipReason,
};
use atmostonce::limits::CLOCK_SKEW_GRACE_MS;
use atmostonce::{
    DedupCache, DedupDecision, DurabilityError, DurableStore, MemoryStore, ProcessingReceipt, drive,
};
use common::fenced::{
    NotDurableOnAck, fail_append, run_until_append, the_fenced_api_keeps_its_promises_on,
};
use common::run;

const LEASE_MS: u64 = 1_000;
const TTL_MS: u64 = 10_000;

fn options() -> FencedOptions {
    FencedOptions::default()
        .with_lease_ms(LEASE_MS)
        .with_receipt_ttl_ms(TTL_MS)
}

fn cache_on(store: &Arc<MemoryStore>) -> FencedCache {
    FencedCache::new(store.clone(), "orders", options()).unwrap()
}

fn receipt(text: &str) -> ProcessingReceipt {
    ProcessingReceipt::new(text.as_bytes().to_vec())
}

fn id(byte: u8) -> ClaimId {
    ClaimId::new([byte; 16]).unwrap()
}

fn granted(claim: Claim) -> ClaimToken {
    match claim {
        Claim::Granted(token) => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn in_flight_until(claim: Claim) -> Option<u64> {
    match claim {
        Claim::InFlight {
            lease_expires_millis,
            ..
        } => Some(lease_expires_millis),
        _ => None,
    }
}

fn length(store: &MemoryStore, cache: &FencedCache, key: &str) -> u64 {
    store.snapshot().len(&cache.stream_key_for(key))
}

fn is_stale<T: std::fmt::Debug>(result: Result<T, DurabilityError>) -> bool {
    matches!(result, Err(DurabilityError::StaleClaim { .. }))
}

/// After the lease and the clock-skew grace.
const AFTER_LEASE: u64 = LEASE_MS + CLOCK_SKEW_GRACE_MS + 1;

#[test]
fn the_fenced_api_keeps_its_promises_on_the_memory_store() {
    run(the_fenced_api_keeps_its_promises_on(Arc::new(
        MemoryStore::new(),
    )));
}

#[test]
fn same_millisecond_claims_by_two_producers_write_distinguishable_records() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let protocol = cache.protocol();
        // A's append is lost with an indeterminate error; B claims in the
        // same millisecond and lands where A meant to.
        let mut a = protocol.claim("k", id(1), None, 7).unwrap();
        let request = run_until_append(&mut a, &*store).await.unwrap();
        let b = drive(&*store, protocol.claim("k", id(2), None, 7).unwrap())
            .await
            .unwrap();
        assert_eq!(granted(b).claim_id(), id(2));
        fail_append(&mut a, &*store, &request, false).await;
        let a = drive(&*store, a).await.unwrap();
        // A reads B's claim id at its sequence: not its own, so in flight.
        assert!(matches!(a, Claim::InFlight { .. }), "{a:?}");
        assert_eq!(length(&store, &cache, "k"), 1);
    });
}

#[test]
fn an_indeterminate_claim_append_that_landed_is_resolved_as_granted_by_its_claim_id() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let mut a = cache.protocol().claim("k", id(1), None, 7).unwrap();
        let request = run_until_append(&mut a, &*store).await.unwrap();
        fail_append(&mut a, &*store, &request, true).await;
        let token = granted(drive(&*store, a).await.unwrap());
        assert_eq!((token.claim_id(), token.fence()), (id(1), 0));
        assert_eq!(length(&store, &cache, "k"), 1, "nothing appended twice");
    });
}

#[test]
fn an_indeterminate_claim_append_that_was_lost_claims_again() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let mut a = cache.protocol().claim("k", id(1), None, 7).unwrap();
        let request = run_until_append(&mut a, &*store).await.unwrap();
        fail_append(&mut a, &*store, &request, false).await;
        let token = granted(drive(&*store, a).await.unwrap());
        assert_eq!(token.claim_id(), id(1));
        assert_eq!(length(&store, &cache, "k"), 1);
    });
}

#[test]
fn a_claim_that_loses_its_race_to_a_release_decides_again_and_is_granted() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let holder = granted(cache.claim("k", 0).await.unwrap());
        // A reads the claim expired and plans a takeover; the holder's
        // release lands first, so A's append conflicts.
        let mut a = cache
            .protocol()
            .claim("k", id(9), None, AFTER_LEASE)
            .unwrap();
        let request = run_until_append(&mut a, &*store).await.unwrap();
        cache.release(&holder, 1).await.unwrap();
        a.feed(atmostonce::execute(&*store, &request).await);
        let token = granted(drive(&*store, a).await.unwrap());
        assert!(token.fence() > holder.fence());
    });
}

#[test]
fn complete_release_and_renew_with_a_stale_token_are_stale_claim_and_append_nothing() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let zombie = granted(cache.claim("k", 0).await.unwrap());
        let taker = granted(cache.claim("k", AFTER_LEASE).await.unwrap());
        let before = length(&store, &cache, "k");
        assert!(is_stale(
            cache
                .complete(&zombie, &receipt("z"), AFTER_LEASE + 1)
                .await
        ));
        assert!(is_stale(cache.release(&zombie, AFTER_LEASE + 1).await));
        assert!(is_stale(cache.renew(&zombie, AFTER_LEASE + 1).await));
        assert_eq!(length(&store, &cache, "k"), before);
        // The taker is untouched and completes.
        cache
            .complete(&taker, &receipt("t"), AFTER_LEASE + 2)
            .await
            .unwrap();
        let message = cache
            .release(&zombie, AFTER_LEASE + 3)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("no longer the key's current claim"),
            "{message}"
        );
    });
}

#[test]
fn a_retried_completion_is_ok_and_another_receipt_is_a_collision() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let token = granted(cache.claim("k", 0).await.unwrap());
        cache.complete(&token, &receipt("r"), 1).await.unwrap();
        cache.complete(&token, &receipt("r"), 2).await.unwrap();
        assert_eq!(length(&store, &cache, "k"), 2, "the retry appends nothing");
        assert!(matches!(
            cache.complete(&token, &receipt("other"), 3).await,
            Err(DurabilityError::DedupCollision { .. })
        ));
        assert_eq!(
            cache.lookup("k", 4).await.unwrap(),
            Some(KeyStatus::Completed(receipt("r")))
        );
    });
}

#[test]
fn an_indeterminate_completion_that_landed_is_recognised_by_its_claim_id() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let token = granted(cache.claim("k", 0).await.unwrap());
        let mut complete = cache.protocol().complete(&token, &receipt("r"), 1).unwrap();
        let request = run_until_append(&mut complete, &*store).await.unwrap();
        fail_append(&mut complete, &*store, &request, true).await;
        assert_eq!(drive(&*store, complete).await, Ok(()));
        assert_eq!(length(&store, &cache, "k"), 2);
    });
}

#[test]
fn a_holder_completes_after_its_lease_if_nobody_took_the_key_over() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let token = granted(cache.claim("k", 0).await.unwrap());
        cache
            .complete(&token, &receipt("late"), 10 * AFTER_LEASE)
            .await
            .unwrap();
    });
}

#[test]
fn release_after_its_own_completion_is_stale_claim_and_the_receipt_stays() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let token = granted(cache.claim("k", 0).await.unwrap());
        cache.complete(&token, &receipt("r"), 1).await.unwrap();
        assert!(is_stale(cache.release(&token, 2).await));
        assert_eq!(
            cache.claim("k", 3).await.unwrap(),
            Claim::Completed(receipt("r"))
        );
    });
}

#[test]
fn a_release_retried_after_it_took_effect_is_stale_claim_and_appends_nothing() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let token = granted(cache.claim("k", 0).await.unwrap());
        cache.release(&token, 1).await.unwrap();
        assert!(matches!(
            cache.release(&token, 2).await,
            Err(DurabilityError::StaleClaim { .. })
        ));
        assert_eq!(length(&store, &cache, "k"), 2);
        assert_eq!(cache.lookup("k", 3).await.unwrap(), None);
    });
}

#[test]
fn a_release_carries_the_fence_of_the_claim_it_ends() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let stream = cache.stream_key_for("k");
        // The second grant lands at sequence 2, so its fence is 2.
        for now_millis in [0, 10] {
            let token = granted(cache.claim("k", now_millis).await.unwrap());
            cache.release(&token, now_millis + 1).await.unwrap();
            let entries = store.read_from(&stream, 0, 100).await.unwrap();
            let last = entries
                .last()
                .expect("the release is the stream's last record");
            match FencedRecord::decode(&last.payload) {
                Ok(FencedRecord::Release(release)) => {
                    assert_eq!(release.fence(), token.fence(), "{release:?}");
                }
                other => panic!("expected the release, found {other:?}"),
            }
        }
    });
}

#[test]
fn the_fence_strictly_grows_across_grants_and_a_renewal_keeps_it() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let first = granted(cache.claim("k", 0).await.unwrap());
        let renewed = cache.renew(&first, 500).await.unwrap();
        assert_eq!(renewed.fence(), first.fence());
        assert!(renewed.sequence() > first.sequence());
        assert_eq!(renewed.lease_expires_millis(), 500 + LEASE_MS);
        // The old token still names the same claim.
        cache.release(&first, 600).await.unwrap();
        let second = granted(cache.claim("k", 700).await.unwrap());
        assert!(second.fence() > first.fence());
        let third = granted(cache.claim("k", 700 + AFTER_LEASE).await.unwrap());
        assert!(third.fence() > second.fence());
    });
}

#[test]
fn a_renewal_holds_the_key_past_the_first_lease() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let first = granted(cache.claim("k", 0).await.unwrap());
        let renewed = cache.renew(&first, AFTER_LEASE - 1).await.unwrap();
        assert_eq!(
            in_flight_until(cache.claim("k", AFTER_LEASE + 1).await.unwrap()),
            Some(renewed.lease_expires_millis())
        );
    });
}

#[test]
fn a_duplicate_with_another_fingerprint_is_a_fingerprint_mismatch() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let token = granted(cache.claim_with_fingerprint("k", b"m1", 0).await.unwrap());
        assert!(matches!(
            cache.claim_with_fingerprint("k", b"m2", 1).await,
            Err(DurabilityError::FingerprintMismatch { .. })
        ));
        assert!(matches!(
            cache.claim_with_fingerprint("k", b"m1", 1).await.unwrap(),
            Claim::InFlight { .. }
        ));
        cache.complete(&token, &receipt("r"), 2).await.unwrap();
        assert!(matches!(
            cache.claim_with_fingerprint("k", b"m2", 3).await,
            Err(DurabilityError::FingerprintMismatch { .. })
        ));
        // A claim without fingerprint never mismatches.
        assert_eq!(
            cache.claim("k", 4).await.unwrap(),
            Claim::Completed(receipt("r"))
        );
        assert_eq!(length(&store, &cache, "k"), 2);
    });
}

#[test]
fn an_expired_claim_is_taken_over_and_a_live_one_is_not() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let first = granted(cache.claim("k", 0).await.unwrap());
        assert_eq!(
            in_flight_until(
                cache
                    .claim("k", LEASE_MS + CLOCK_SKEW_GRACE_MS)
                    .await
                    .unwrap()
            ),
            Some(first.lease_expires_millis())
        );
        let taker = granted(cache.claim("k", AFTER_LEASE).await.unwrap());
        assert_ne!(taker.claim_id(), first.claim_id());
    });
}

#[test]
fn a_namespace_written_by_the_seed_api_is_served_by_the_fenced_api() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let seed = DedupCache::new(store.clone(), "orders");
        assert_eq!(
            seed.claim_or_get("held", 100).await.unwrap(),
            DedupDecision::Claimed
        );
        seed.claim_or_get("done", 100).await.unwrap();
        seed.complete_receipt_at("done", &receipt("seed"), 100)
            .await
            .unwrap();

        let cache = cache_on(&store);
        assert_eq!(
            in_flight_until(cache.claim("held", 200).await.unwrap()),
            Some(100 + LEASE_MS)
        );
        assert_eq!(
            cache.claim("done", 200).await.unwrap(),
            Claim::Completed(receipt("seed"))
        );
        let token = granted(cache.claim("held", 100 + AFTER_LEASE).await.unwrap());
        assert_eq!(token.fence(), 1, "the takeover lands after the seed claim");
        cache
            .complete(&token, &receipt("fenced"), 100 + AFTER_LEASE)
            .await
            .unwrap();
    });
}

#[test]
fn a_record_of_another_key_in_the_stream_is_a_collision_and_the_sweep_skips_it() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        // One hash bit: keys share streams on purpose.
        let cache = FencedCache::new(store.clone(), "orders", options().with_hash_bits(1)).unwrap();
        let first = "k0";
        // A key named to the other stream: the sweep reads heads only, and
        // a head of a key not named to its stream is the collision it sees
        // (the engine never appends on top of another key's head).
        let other = (1..64)
            .map(|n| format!("k{n}"))
            .find(|key| cache.stream_key_for(key) != cache.stream_key_for(first))
            .unwrap();
        granted(cache.claim(first, 0).await.unwrap());
        // Written into the shared stream as if by a store that mixed them.
        let stream = cache.stream_key_for(first);
        let foreign = FencedRecord::Release(atmostonce::codec::ReleaseRecord::released(
            other.clone(),
            id(3),
            0,
            1,
        ));
        store.append(&stream, &foreign.encode(), 1).await.unwrap();
        assert!(matches!(
            cache.claim(first, 2).await,
            Err(DurabilityError::DedupCollision { .. })
        ));
        let report = FencedSweeper::new(&cache)
            .sweep_once(10 * AFTER_LEASE)
            .await
            .unwrap();
        assert!(
            report
                .skipped
                .iter()
                .any(|skip| skip.stream == stream && skip.reason == SkipReason::Collision),
            "{report:?}"
        );
    });
}

#[test]
fn the_sweeper_expires_claims_by_lease_and_receipts_by_ttl_separately() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        granted(cache.claim("claim", 0).await.unwrap());
        let token = granted(cache.claim("receipt", 0).await.unwrap());
        cache.complete(&token, &receipt("r"), 0).await.unwrap();
        let sweeper = FencedSweeper::new(&cache);
        // Past the lease, within the TTL: only the claim ends.
        let report = sweeper.sweep_once(AFTER_LEASE).await.unwrap();
        assert_eq!(
            (
                report.expired_claims,
                report.expired_receipts,
                report.retained
            ),
            (1, 0, 1)
        );
        assert_eq!(cache.lookup("claim", AFTER_LEASE).await.unwrap(), None);
        assert_eq!(
            cache.lookup("receipt", AFTER_LEASE).await.unwrap(),
            Some(KeyStatus::Completed(receipt("r")))
        );
        let after_ttl = TTL_MS + CLOCK_SKEW_GRACE_MS + 1;
        let report = sweeper.sweep_once(after_ttl).await.unwrap();
        assert_eq!((report.expired_claims, report.expired_receipts), (0, 1));
        assert_eq!(cache.lookup("receipt", after_ttl).await.unwrap(), None);
        // The expired claim's holder is stale now.
        assert!(is_stale(
            cache.complete(&token, &receipt("r"), after_ttl).await
        ));
    });
}

#[test]
fn on_a_store_whose_appends_are_not_durable_on_ack_a_claim_flushes_and_rereads_before_deciding_and_flushes_before_answering()
 {
    run(async {
        let store = Arc::new(NotDurableOnAck(MemoryStore::new()));
        let cache = FencedCache::new(store.clone(), "orders", options()).unwrap();
        granted(cache.claim("k", 0).await.unwrap());
        assert!(!store.acknowledged_appends_are_durable());
        let mut claim = cache
            .protocol()
            .claim("k", id(4), None, AFTER_LEASE)
            .unwrap();
        let mut kinds = Vec::new();
        while let Step::Request(request) = claim.poll() {
            kinds.push(match &request {
                StoreRequest::Read { .. } => "read",
                StoreRequest::Append { .. } => "append",
                StoreRequest::Flush => "flush",
                StoreRequest::Scan { .. } => "scan",
                StoreRequest::ReadHead { .. } => "head",
                StoreRequest::ScanHeads { .. } => "heads",
                StoreRequest::Compact { .. } => "compact",
            });
            claim.feed(atmostonce::execute(&*store, &request).await);
        }
        // The guess (a grant at 0) conflicts; read the head, make what was
        // read durable, read the head's record again to confirm a crash did
        // not undo it (docs/spec.md, "Store crashes"), then append and
        // flush the append before answering.
        assert_eq!(
            kinds,
            ["append", "head", "flush", "read", "append", "flush"]
        );
    });
}

#[test]
fn a_token_travels_as_bytes() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let token = granted(cache.claim("k", 0).await.unwrap());
        let carried = ClaimToken::from_bytes(&token.to_bytes()).unwrap();
        cache.complete(&carried, &receipt("r"), 1).await.unwrap();
        let error = ClaimToken::from_bytes(b"garbage!").unwrap_err();
        assert!(
            error.to_string().starts_with("not a claim token"),
            "{error}"
        );
    });
}

#[test]
fn a_key_that_moves_on_during_the_sweep_is_reported_as_a_conflict_and_the_sweep_goes_on() {
    run(async {
        let store = Arc::new(MemoryStore::new());
        let cache = cache_on(&store);
        let tokens = [
            granted(cache.claim("one", 0).await.unwrap()),
            granted(cache.claim("two", 0).await.unwrap()),
        ];
        let mut sweep = cache.protocol().sweep(AFTER_LEASE);
        let request = run_until_append(&mut sweep, &*store).await.unwrap();
        let StoreRequest::Append { stream, .. } = &request else {
            unreachable!("run_until_append returns appends")
        };
        // The holder of the key swept first releases it just before the expiry.
        let contended = tokens
            .iter()
            .find(|token| cache.stream_key_for(token.key()) == *stream)
            .unwrap();
        cache.release(contended, AFTER_LEASE).await.unwrap();
        sweep.feed(atmostonce::execute(&*store, &request).await);
        let report = drive(&*store, sweep).await.unwrap();
        assert_eq!(report.expired_claims, 1, "{report:?}");
        assert_eq!(report.skipped.len(), 1, "{report:?}");
        assert_eq!(report.skipped[0].key.as_deref(), Some(contended.key()));
        assert_eq!(report.skipped[0].reason, SkipReason::Conflict);
    });
}
