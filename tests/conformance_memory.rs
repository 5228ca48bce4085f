//! The store conformance suite against the built-in `MemoryStore`.

mod common;

use atmostonce::conformance::RequiredCallsOnly;
use atmostonce::{DurableStore, MemoryStore, conformance};

#[test]
fn memory_store_passes_every_conformance_check() {
    let store = MemoryStore::new();
    let report = common::run(conformance::run_all(&store, "conformance"));
    assert_eq!(report.results.len(), conformance::CHECK_NAMES.len());
    assert!(report.passed(), "{report}");
}

#[test]
fn a_shared_store_passes_again_under_a_fresh_prefix() {
    let store = MemoryStore::new();
    assert!(common::run(conformance::run_all(&store, "run-1")).passed());
    let report = common::run(conformance::run_all(&store, "run-2"));
    assert!(report.passed(), "{report}");
}

#[test]
fn a_store_with_only_the_required_calls_passes_through_the_default_head_calls() {
    let store = RequiredCallsOnly(MemoryStore::new());
    let report = common::run(conformance::run_all(&store, "conformance"));
    assert!(report.passed(), "{report}");
    // The default compaction removed nothing: the native one still finds
    // all but the head of the 7 entries to remove.
    assert_eq!(common::run(store.compact("conformance/compact", 7)), Ok(0));
    assert_eq!(
        common::run(store.0.compact("conformance/compact", 7)),
        Ok(6)
    );
    let entries = common::run(store.read_from("conformance/head", 0, 10)).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(common::run(store.0.compact("conformance/head", 3)), Ok(3));
    let head = common::run(store.read_head("conformance/head")).unwrap();
    assert_eq!((head.length, head.last.map(|e| e.sequence)), (4, Some(3)));
}
