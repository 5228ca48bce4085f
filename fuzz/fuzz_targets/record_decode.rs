//! Arbitrary bytes into the v1 record decoder: no panic, no allocation
//! beyond the input's size, canonical re-encoding, truthful rejections.
#![no_main]

use atmostonce_fuzz_check::alloc::{CountingAllocator, is_counting};
use atmostonce_fuzz_check::codec::check_decode;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fuzz_target!(
    init: assert!(is_counting(), "the allocation bound would go unchecked"),
    |data: &[u8]| {
        let _ = check_decode(data);
    }
);
