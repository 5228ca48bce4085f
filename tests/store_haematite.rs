//! `HaematiteStore` against real haematite databases: the conformance suite,
//! racing appends, reopening, and the seed semantics of `DedupCache` on top.
//! (Crash durability is `tests/haematite_crash.rs`.)

mod common;

use std::num::NonZeroU64;
use std::sync::Arc;

use atmostonce::store::HaematiteOptions;
use atmostonce::{DedupCache, DurabilityError, DurableStore, HaematiteStore, conformance};

/// Both of haematite's commit policies: buffered appends (the default) and
/// a tree commit per append.
fn both_commit_policies() -> [HaematiteOptions; 2] {
    [
        HaematiteOptions::default(),
        HaematiteOptions::default().with_buffered_commit_bytes(None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_store_passes_the_conformance_suite() {
    let store = HaematiteStore::ephemeral().unwrap();
    let report = conformance::run_all(&store, "conformance").await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_disk_passes_the_conformance_suite_under_both_commit_policies() {
    for options in both_commit_policies() {
        let dir = tempfile::tempdir().unwrap();
        let store = HaematiteStore::open_with_options(dir.path().join("db"), options).unwrap();
        let report = conformance::run_all(&store, "conformance").await;
        assert!(report.passed(), "{options:?}:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_racing_tasks_leave_no_gap_duplicate_or_lost_append() {
    for options in both_commit_policies() {
        let dir = tempfile::tempdir().unwrap();
        let store = HaematiteStore::open_with_options(dir.path().join("db"), options).unwrap();
        let (acked, lost_races) =
            common::racing_appends_leave_no_gap_duplicate_or_lost_append(Arc::new(store), "race")
                .await;
        assert!(
            lost_races > 0,
            "{acked} appends raced without a single conflict"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_closing_and_reopening_the_database() {
    for options in both_commit_policies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = HaematiteStore::open_with_options(&path, options).unwrap();
            for sequence in 0..50 {
                store
                    .append("orders:1", format!("entry {sequence}").as_bytes(), sequence)
                    .await
                    .unwrap();
            }
        }
        let store = HaematiteStore::open_with_options(&path, options).unwrap();
        let entries = store.read_from("orders:1", 0, 1000).await.unwrap();
        assert_eq!(entries.len(), 50, "{options:?}");
        assert_eq!(entries[49].payload, b"entry 49");
        assert_eq!(store.append("orders:1", b"next", 50).await, Ok(50));
    }
}

#[test]
fn a_second_open_of_a_database_in_use_fails_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let _first = HaematiteStore::open(dir.path().join("db")).unwrap();
    match HaematiteStore::open(dir.path().join("db")) {
        Err(DurabilityError::StoreError(message)) => {
            assert!(message.contains("one writer per directory"), "{message}");
        }
        other => panic!("a second open of a locked database gave {other:?}"),
    }
}

#[test]
fn an_ephemeral_store_removes_its_directory_when_dropped() {
    let store = HaematiteStore::ephemeral().unwrap();
    let path = store.path().to_path_buf();
    assert!(path.exists());
    drop(store);
    assert!(!path.exists(), "{} is still there", path.display());
}

#[test]
fn invalid_options_are_refused_with_a_config_error() {
    let zero_workers = HaematiteOptions::default().with_worker_threads(0);
    assert!(matches!(
        HaematiteStore::ephemeral_with_options(zero_workers),
        Err(DurabilityError::ConfigError(_))
    ));
    let zero_shards = HaematiteOptions::default().with_shard_count(0);
    assert!(matches!(
        HaematiteStore::ephemeral_with_options(zero_shards),
        Err(DurabilityError::ConfigError(_))
    ));
    let zero_cache = HaematiteOptions::default().with_node_cache_bytes(0);
    assert!(matches!(
        HaematiteStore::ephemeral_with_options(zero_cache),
        Err(DurabilityError::ConfigError(_))
    ));
}

#[test]
fn the_store_runs_under_an_executor_other_than_tokio() {
    let store = HaematiteStore::ephemeral_with_options(
        HaematiteOptions::default().with_buffered_commit_bytes(NonZeroU64::new(1)),
    )
    .unwrap();
    futures::executor::block_on(async {
        assert_eq!(store.append("s", b"a", 0).await, Ok(0));
        store.flush().await.unwrap();
        assert_eq!(store.read_from("s", 0, 10).await.unwrap().len(), 1);
    });
}

#[test]
fn entries_carry_a_millisecond_timestamp_from_the_store_clock() {
    let store = HaematiteStore::ephemeral().unwrap();
    let before = atmostonce::wall_clock_millis();
    futures::executor::block_on(async {
        store.append("s", b"a", 0).await.unwrap();
        let entry = &store.read_from("s", 0, 1).await.unwrap()[0];
        let after = atmostonce::wall_clock_millis();
        assert!(
            (before..=after).contains(&entry.timestamp),
            "timestamp {} outside {before}..={after}",
            entry.timestamp
        );
    });
}

fn cache(namespace: &str) -> DedupCache {
    DedupCache::new(Arc::new(HaematiteStore::ephemeral().unwrap()), namespace)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_key_answers_duplicates_with_its_receipt() {
    common::a_completed_key_answers_duplicates_with_its_receipt(&cache("orders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_key_can_be_claimed_again_and_receipts_survive_release() {
    common::a_released_key_can_be_claimed_again_and_receipts_survive_release(&cache("orders"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_expires_old_entries_and_keeps_young_ones() {
    common::the_sweeper_expires_old_entries_and_keeps_young_ones(&cache("orders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_key_grant_it_once() {
    common::concurrent_claims_of_one_key_grant_it_once(&cache("orders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fenced_api_keeps_its_promises_on_haematite() {
    let store: Arc<dyn DurableStore> = Arc::new(HaematiteStore::ephemeral().unwrap());
    common::fenced::the_fenced_api_keeps_its_promises_on(store).await;
}
