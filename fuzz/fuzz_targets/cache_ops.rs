//! A short program of operations, faults and interleavings on the engine's
//! state machines, judged against the specification (S1-S7). Known
//! weaknesses of the seed API end in a documented outcome, not a crash;
//! see the README's "Fuzzing" section.
#![no_main]

use atmostonce_fuzz_check::program::check_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_bytes(data);
});
