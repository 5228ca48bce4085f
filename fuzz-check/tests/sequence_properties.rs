//! proptest properties of operation sequences: single-threaded sequences
//! through the real async `DedupCache` and `DedupSweeper` over
//! `MemoryStore`, and random `cache_ops` programs, judged by the same
//! checker as the fuzz target. Shrunk failures are persisted under
//! `proptest-regressions/`.

use std::sync::Arc;
use std::time::Duration;

use atmostonce::{DedupCache, DedupOptions, DedupRecord, DedupSweeper, MemoryStore, StreamTable};
use atmostonce_fuzz_check::history::{Event, History, Verdict, stream_holds_other_key, verify};
use atmostonce_fuzz_check::program::{KEY_PRESETS, OpKind, START_MILLIS, check_bytes, receipt_for};
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};
use atmostonce_verify::table::FaultTable;
use futures::executor::block_on;
use proptest::prelude::*;

fn op_kind() -> impl Strategy<Value = OpKind> {
    prop_oneof![
        Just(OpKind::Claim),
        Just(OpKind::Lookup),
        (0u8..3).prop_map(|receipt| OpKind::Complete { receipt }),
        Just(OpKind::Release),
        Just(OpKind::Sweep),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    hash_bits: u8,
    read_batch: usize,
    ttl_ms: u64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (prop_oneof![Just(64u8), Just(1u8)], 1usize..4, 0u64..3_000).prop_map(
        |(hash_bits, read_batch, ttl_ms)| Setup {
            hash_bits,
            read_batch,
            ttl_ms,
        },
    )
}

/// Runs the steps one after another; returns the history and the store's streams.
async fn run_sequence(setup: &Setup, steps: &[(usize, OpKind, u64)]) -> (History, StreamTable) {
    let store = Arc::new(MemoryStore::new());
    let options = DedupOptions::default()
        .with_read_batch(setup.read_batch)
        .with_hash_bits(setup.hash_bits);
    let cache = DedupCache::with_options(store.clone(), "props", options).expect("a valid cache");
    let sweeper = DedupSweeper::new(
        &cache,
        Duration::from_millis(setup.ttl_ms),
        Duration::from_secs(1),
    );
    let mut now_millis = START_MILLIS;
    let mut events = Vec::new();
    for (tick, (key_index, op, advance_ms)) in (0u64..).zip(steps) {
        now_millis += advance_ms;
        let key = KEY_PRESETS[key_index % KEY_PRESETS.len()];
        let stream = cache.stream_key_for(key);
        let before = store.snapshot();
        let observed = match op {
            OpKind::Claim => cache
                .claim_or_get(key, now_millis)
                .await
                .map(SpecAnswer::Decision),
            OpKind::Lookup => cache.lookup(key).await.map(SpecAnswer::Lookup),
            OpKind::Complete { receipt } => cache
                .complete_receipt_at(key, &receipt_for(*receipt), now_millis)
                .await
                .map(|()| SpecAnswer::Done),
            OpKind::Release => cache
                .release_claim_at(key, now_millis)
                .await
                .map(|()| SpecAnswer::Done),
            OpKind::Sweep => {
                let report = sweeper.sweep_once(now_millis).await;
                assert!(
                    report.is_ok(),
                    "a sweep without contention failed: {report:?}"
                );
                let after = store.snapshot();
                for (name, len) in after.stream_lengths() {
                    for entry in after.read_from(
                        name,
                        before.len(name),
                        usize::try_from(len).unwrap_or(usize::MAX),
                    ) {
                        let Ok(DedupRecord::Tombstone(tombstone)) =
                            DedupRecord::decode(&entry.payload)
                        else {
                            panic!("a sweep appended something other than a tombstone");
                        };
                        events.push(Event {
                            key: tombstone.idempotency_key().to_owned(),
                            stream: name.to_owned(),
                            op: SpecOp::Expire,
                            sweep_now_millis: Some(now_millis),
                            invoked_tick: tick,
                            responded_tick: tick,
                            observed: Ok(SpecAnswer::Done),
                            stream_shared: false,
                            claim_seq: None,
                            exemption: None,
                        });
                    }
                }
                continue;
            }
        };
        let after = store.snapshot();
        let grew = after.len(&stream) == before.len(&stream) + 1;
        let claimed = observed == Ok(SpecAnswer::Decision(atmostonce::DedupDecision::Claimed));
        events.push(Event {
            key: key.to_owned(),
            stream_shared: stream_holds_other_key(&FaultTable::copy_of(&after), &stream, key),
            stream,
            op: op.spec_op(now_millis).expect("a single-key operation"),
            sweep_now_millis: None,
            invoked_tick: tick,
            responded_tick: tick,
            observed,
            claim_seq: (claimed && grew).then(|| before.len(&cache.stream_key_for(key))),
            exemption: None,
        });
    }
    let history = History {
        protocol: cache.protocol().expect("a valid cache").clone(),
        ttl_ms: setup.ttl_ms,
        events,
    };
    (history, store.snapshot())
}

proptest! {
    #[test]
    fn every_single_threaded_sequence_through_the_cache_matches_the_specification(
        setup in setup(),
        steps in proptest::collection::vec((0usize..KEY_PRESETS.len(), op_kind(), 0u64..1_500), 0..40),
    ) {
        let (history, table) = block_on(run_sequence(&setup, &steps));
        prop_assert_eq!(verify(&history, &FaultTable::copy_of(&table)), Ok(Verdict::default()));
    }

    #[test]
    fn every_program_from_random_bytes_is_judged_without_an_unexplained_violation(
        bytes in proptest::collection::vec(any::<u8>(), 0..768)
    ) {
        let _ = check_bytes(&bytes);
    }
}
