//! The store conformance suite against the built-in `MemoryStore`.

mod common;

use atmostonce::{MemoryStore, conformance};

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
