//! A short program of fenced operations with claim tokens, faults (store
//! errors, stale reads, crashes, corruption), clock advances and
//! interleavings on the engine's state machines, every answer judged by the
//! fenced specification (S1, S2, S4-S8). The fenced API has no known
//! weakness: any violation is a crash.
#![no_main]

use atmostonce_fuzz_check::fenced::{FencedProgram, check_fenced_program};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|program: FencedProgram| {
    let _ = check_fenced_program(&program);
});
