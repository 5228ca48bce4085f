//! A short program of operations, faults and interleavings on the engine's
//! state machines, judged against the specification (S1-S7). Known
//! weaknesses of the seed API end in a documented outcome, not a crash;
//! see the README's "Fuzzing" section.
#![no_main]

use atmostonce_fuzz_check::program::{Program, check_program};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|program: Program| {
    let _ = check_program(&program);
});
