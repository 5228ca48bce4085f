//! The simulated surroundings of a run (madsim build only): madsim's clock,
//! RNG and sleep, and the fault-injecting store every caller gets a handle
//! on, as the [`Env`] the shared actors run in.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use atmostonce::DurableStore;
use madsim::time::Instant;

use super::rng::{sim_rng, sleep_ms};
use super::store::{FaultStore, StoreCore};
use crate::history::Process;
use crate::world::{Env, World};
use atmostonce_verify::served::Served;

/// The simulated surroundings: madsim's clock, RNG and sleep, and the
/// fault-injecting store every caller gets a handle on.
#[derive(Debug)]
pub(crate) struct Simulated {
    start: Instant,
    core: Arc<StoreCore>,
}

/// The world of a simulated run.
pub(crate) type SimWorld = World<Simulated>;

impl Simulated {
    /// Surroundings whose clock starts now, over the run's store.
    pub(crate) fn new(core: Arc<StoreCore>) -> Simulated {
        Simulated {
            start: Instant::now(),
            core,
        }
    }
}

impl Env for Simulated {
    type Rng = madsim::rand::GlobalRng;

    fn rng(&self) -> Self::Rng {
        sim_rng()
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn wall_millis(&self) -> u64 {
        // madsim simulates the system clock too.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
    }

    fn sleep_ms(&self, ms: u64) -> impl std::future::Future<Output = ()> + Send {
        sleep_ms(ms)
    }

    fn store_for(world: &Arc<SimWorld>, process: Process) -> Arc<dyn DurableStore> {
        Arc::new(Served(FaultStore::new(
            world.env.core.clone(),
            world.clone(),
            process,
        )))
    }
}
