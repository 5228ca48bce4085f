//! madsim's randomness and time, as the simulation's tasks and store draw
//! them (madsim build only).

use std::time::Duration;

use crate::config::Draw;

impl Draw for madsim::rand::GlobalRng {
    fn next_u64(&mut self) -> u64 {
        madsim::rand::RngCore::next_u64(self)
    }
}

/// The simulation's RNG (seeded by madsim from the run's seed).
pub(crate) fn sim_rng() -> madsim::rand::GlobalRng {
    madsim::rand::thread_rng()
}

/// Sleeps `ms` simulated milliseconds.
pub(crate) async fn sleep_ms(ms: u64) {
    madsim::time::sleep(Duration::from_millis(ms)).await;
}
