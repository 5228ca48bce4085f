//! Structured records (arbitrary-derived) encoded, then decoded: the same
//! record back, within the encoding's size.
#![no_main]

use atmostonce_fuzz_check::alloc::{CountingAllocator, is_counting};
use atmostonce_fuzz_check::codec::{ArbRecord, check_roundtrip};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fuzz_target!(
    init: assert!(is_counting(), "the allocation bound would go unchecked"),
    |record: ArbRecord| check_roundtrip(&record.to_record())
);
