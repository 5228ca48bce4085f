//! Input limits: bad input gets an error naming the limit and the size seen,
//! and nothing is written.

mod common;

use std::sync::Arc;

use atmostonce::limits::{MAX_KEY_BYTES, MAX_NAMESPACE_BYTES, MAX_RECEIPT_BYTES};
use atmostonce::{DedupCache, DedupOptions, DurabilityError, MemoryStore, ProcessingReceipt};
use common::run;

fn config_error(result: Result<DedupCache, DurabilityError>) -> String {
    match result {
        Err(DurabilityError::ConfigError(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn an_empty_namespace_is_refused() {
    let message = config_error(DedupCache::try_new(Arc::new(MemoryStore::new()), ""));
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn a_namespace_containing_a_colon_is_refused_with_the_reason() {
    let message = config_error(DedupCache::try_new(Arc::new(MemoryStore::new()), "a:b"));
    assert!(
        message.contains("\"a:b\"") && message.contains("':'"),
        "{message}"
    );
}

#[test]
fn a_namespace_over_the_limit_is_refused_with_its_size() {
    let namespace = "n".repeat(MAX_NAMESPACE_BYTES + 1);
    assert_eq!(
        DedupCache::try_new(Arc::new(MemoryStore::new()), namespace).err(),
        Some(DurabilityError::LimitExceeded {
            what: "namespace",
            max_bytes: MAX_NAMESPACE_BYTES,
            actual_bytes: MAX_NAMESPACE_BYTES + 1
        })
    );
}

#[test]
fn the_seed_constructor_reports_an_invalid_namespace_at_every_operation_and_writes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let cache = DedupCache::new(store.clone(), "a:b");
    let expected = DedupCache::try_new(store.clone(), "a:b").err();
    assert!(matches!(expected, Some(DurabilityError::ConfigError(_))));
    let receipt = ProcessingReceipt::new(b"r".to_vec());
    assert_eq!(run(cache.claim_or_get("k", 1)).err(), expected);
    assert_eq!(run(cache.lookup("k")).err(), expected);
    assert_eq!(
        run(cache.complete_receipt_at("k", &receipt, 2)).err(),
        expected
    );
    assert_eq!(run(cache.complete_receipt("k", receipt)).err(), expected);
    assert_eq!(run(cache.release_claim_at("k", 3)).err(), expected);
    let sweeper = atmostonce::DedupSweeper::new(
        &cache,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(1),
    );
    assert_eq!(run(sweeper.sweep_once(5_000)).err(), expected);
    assert_eq!(cache.protocol().err(), expected);
    assert_eq!(cache.namespace(), "a:b");
    assert!(store.snapshot().is_empty());
}

#[test]
fn out_of_range_options_are_refused() {
    let store = Arc::new(MemoryStore::new());
    for options in [
        DedupOptions::default().with_read_batch(0),
        DedupOptions::default().with_read_batch(atmostonce::limits::MAX_READ_BATCH + 1),
        DedupOptions::default().with_hash_bits(0),
        DedupOptions::default().with_hash_bits(65),
    ] {
        let message = config_error(DedupCache::with_options(store.clone(), "ns", options));
        assert!(message.contains("must be between"), "{message}");
    }
}

#[test]
fn an_empty_key_is_refused_by_every_operation_and_nothing_is_written() {
    let store = Arc::new(MemoryStore::new());
    let cache = DedupCache::new(store.clone(), "ns");
    let receipt = ProcessingReceipt::new(b"r".to_vec());
    assert!(matches!(
        run(cache.claim_or_get("", 1)),
        Err(DurabilityError::InvalidInput(_))
    ));
    assert!(matches!(
        run(cache.lookup("")),
        Err(DurabilityError::InvalidInput(_))
    ));
    assert!(matches!(
        run(cache.complete_receipt_at("", &receipt, 1)),
        Err(DurabilityError::InvalidInput(_))
    ));
    assert!(matches!(
        run(cache.release_claim_at("", 1)),
        Err(DurabilityError::InvalidInput(_))
    ));
    assert!(store.snapshot().is_empty());
}

#[test]
fn a_key_over_the_limit_is_refused_with_its_size_and_nothing_is_written() {
    let store = Arc::new(MemoryStore::new());
    let cache = DedupCache::new(store.clone(), "ns");
    let at_limit = "k".repeat(MAX_KEY_BYTES);
    run(cache.claim_or_get(&at_limit, 1)).unwrap();
    let over = "k".repeat(MAX_KEY_BYTES + 1);
    let error = run(cache.claim_or_get(&over, 1)).unwrap_err();
    assert_eq!(
        error,
        DurabilityError::LimitExceeded {
            what: "idempotency key",
            max_bytes: MAX_KEY_BYTES,
            actual_bytes: MAX_KEY_BYTES + 1
        }
    );
    assert!(
        error
            .to_string()
            .contains("1025 bytes, over the limit of 1024 bytes"),
        "{error}"
    );
    assert_eq!(store.snapshot().stream_lengths().count(), 1);
}

#[test]
fn a_receipt_over_the_limit_is_refused_with_its_size_and_the_claim_is_kept() {
    let store = Arc::new(MemoryStore::new());
    let cache = DedupCache::new(store.clone(), "ns");
    run(cache.claim_or_get("k", 1)).unwrap();
    let huge = ProcessingReceipt::new(vec![0u8; MAX_RECEIPT_BYTES + 1]);
    assert_eq!(
        run(cache.complete_receipt_at("k", &huge, 2)),
        Err(DurabilityError::LimitExceeded {
            what: "receipt",
            max_bytes: MAX_RECEIPT_BYTES,
            actual_bytes: MAX_RECEIPT_BYTES + 1
        })
    );
    assert_eq!(store.snapshot().len(&cache.stream_key_for("k")), 1);
    let at_limit = ProcessingReceipt::new(vec![7u8; MAX_RECEIPT_BYTES]);
    run(cache.complete_receipt_at("k", &at_limit, 3)).unwrap();
}
