//! One simulated run (madsim build only): the fault controllers that need
//! madsim (killing and pausing nodes, crashing and corrupting the simulated
//! store) and the run itself (main phase, quiet phase, probe), in the
//! [`Simulated`] surroundings of `env.rs`.

use std::sync::Arc;
use std::time::Duration;

use madsim::runtime::Handle;
use madsim::task::NodeId;

use super::env::{SimWorld, Simulated};
use super::handler::{self, Workload};
use super::rng::{sim_rng, sleep_ms};
use super::store::StoreCore;
use crate::config::{Config, Draw, Fault};
use crate::history::{Event, FaultEvent, History, Process};
use crate::workload::budgets;
use crate::world::actors::{draw_offset, jump_clocks, pick_producer, probe, producer, sweeper};
use crate::world::{World, new_history};

/// Simulated time the main phase may take before the run is declared stuck.
/// The standard scenario needs about 10 s; ten minutes is far past any
/// legitimate back-off, so hitting it means producers cannot make progress.
const MAIN_PHASE_CAP: Duration = Duration::from_secs(600);

/// How often the run checks whether every producer has finished.
const FINISH_POLL_MS: u64 = 50;

/// How long a crashed producer stays down before it restarts.
const PRODUCER_DOWN_MS: (u64, u64) = (10, 500);

/// How long a crashed store stays down before it restarts.
const STORE_DOWN_MS: (u64, u64) = (5, 100);
/// Kills a random producer now and then; restarts it after a while.
async fn crash_producers(world: Arc<SimWorld>, handle: Handle, nodes: Vec<NodeId>) {
    let mut rng = sim_rng();
    let every_ms = world.config.producer_crash_every_ms;
    loop {
        sleep_ms(rng.around(every_ms)).await;
        if !world.faults_on() {
            return;
        }
        let index = pick_producer(&world, &mut rng);
        if world.is_finished(index) {
            continue;
        }
        let process = Process::Producer(index);
        handle.kill(nodes[usize::from(index)]);
        world.set_current(process, None);
        world
            .history()
            .event(world.fault(FaultEvent::ProducerCrash(process)));
        sleep_ms(rng.range(PRODUCER_DOWN_MS.0, PRODUCER_DOWN_MS.1)).await;
        world
            .history()
            .event(world.fault(FaultEvent::ProducerRestart(process)));
        handle.restart(nodes[usize::from(index)]);
    }
}

/// Pauses a random producer for longer than TTL + grace + skew + interval.
async fn pause_producers(world: Arc<SimWorld>, handle: Handle, nodes: Vec<NodeId>) {
    let mut rng = sim_rng();
    let config = world.config.clone();
    loop {
        sleep_ms(rng.around(config.pause_every_ms)).await;
        if !world.faults_on() {
            return;
        }
        // A pause matters when it hits a producer between its claim and its
        // completion (a GC pause at the worst moment): prefer those.
        let holders = world.holders();
        let index = if holders.is_empty() {
            pick_producer(&world, &mut rng)
        } else {
            holders[usize::try_from(rng.range(0, holders.len() as u64 - 1)).unwrap_or(0)]
        };
        if world.is_finished(index) {
            continue;
        }
        let process = Process::Producer(index);
        let pause_ms = config.ttl_ms
            + atmostonce_verify::oracle::expiry::CLOCK_SKEW_GRACE_MS
            + config.max_skew_ms
            + config.sweep_interval_ms
            + rng.range(100, 1_000);
        handle.pause(nodes[usize::from(index)]);
        world
            .history()
            .event(world.fault(FaultEvent::ProducerPause(process, pause_ms)));
        sleep_ms(pause_ms).await;
        handle.resume(nodes[usize::from(index)]);
        world
            .history()
            .event(world.fault(FaultEvent::ProducerResume(process)));
    }
}

async fn crash_store(world: Arc<SimWorld>, core: Arc<StoreCore>) {
    let mut rng = sim_rng();
    loop {
        sleep_ms(rng.around(world.config.store_crash_every_ms)).await;
        if !world.faults_on() {
            return;
        }
        core.crash(&world);
        sleep_ms(rng.range(STORE_DOWN_MS.0, STORE_DOWN_MS.1)).await;
        core.restart(&world);
    }
}

async fn corrupt_records(world: Arc<SimWorld>, core: Arc<StoreCore>) {
    let mut rng = sim_rng();
    loop {
        sleep_ms(rng.around(world.config.corruption_every_ms)).await;
        if !world.faults_on() {
            return;
        }
        core.corrupt(&world, &mut rng);
    }
}

/// Runs one simulated run of `config`, its producers running `workload`,
/// and returns its history.
pub(crate) async fn simulate(config: Config, workload: Workload) -> Result<History, String> {
    let history = new_history(&config)?;
    let mut rng = sim_rng();
    let offsets_ms = (0..=config.shape.producers)
        .map(|_| draw_offset(&config, &mut rng))
        .collect();
    let core = Arc::new(StoreCore::default());
    let env = Simulated::new(core.clone());
    let budgets = budgets(&config);
    let world = Arc::new(World::new(
        config.clone(),
        env,
        history,
        offsets_ms,
        budgets,
    ));
    let handle = Handle::current();

    let nodes: Vec<NodeId> = (0..config.shape.producers)
        .map(|index| {
            let world = world.clone();
            let node = handle.create_node().name(format!("p{index}"));
            let node = match &workload {
                Workload::Standard => node.init(move || producer(world.clone(), index)),
                Workload::Handler(user) => {
                    let user = user.clone();
                    // Boxed, as the workload's producers are (see
                    // `world::actors::producer`).
                    node.init(move || {
                        Box::pin(handler::producer(world.clone(), index, user.clone()))
                    })
                }
            };
            node.build().id()
        })
        .collect();
    {
        let world = world.clone();
        handle
            .create_node()
            .name("sweeper")
            .init(move || sweeper(world.clone()))
            .build();
    }
    let faults = &config.faults;
    if faults.has(Fault::ProducerCrash) {
        madsim::task::spawn(crash_producers(
            world.clone(),
            handle.clone(),
            nodes.clone(),
        ));
    }
    if faults.has(Fault::Pause) {
        madsim::task::spawn(pause_producers(
            world.clone(),
            handle.clone(),
            nodes.clone(),
        ));
    }
    if faults.has(Fault::StoreCrash) {
        madsim::task::spawn(crash_store(world.clone(), core.clone()));
    }
    if faults.has(Fault::Corruption) {
        madsim::task::spawn(corrupt_records(world.clone(), core.clone()));
    }
    if faults.has(Fault::ClockSkew) {
        madsim::task::spawn(jump_clocks(world.clone()));
    }
    if faults.has(Fault::Compaction) && config.compact_every_ms > 0 {
        core.start_janitor(config.compact_every_ms, handle.seed());
    }

    // Main phase: until every producer has spent its budget.
    loop {
        sleep_ms(FINISH_POLL_MS).await;
        let unfinished = world.unfinished();
        if unfinished.is_empty() {
            break;
        }
        if world.now_us() > u64::try_from(MAIN_PHASE_CAP.as_micros()).unwrap_or(u64::MAX) {
            let at_us = world.now_us();
            world.history().event(Event::Stuck {
                at_us,
                producers: unfinished,
            });
            world.stop();
            return Ok(take_history(&world));
        }
    }

    // Quiet phase: faults stop; every abandoned claim must expire.
    world.quiet();
    core.heal();
    world.history().event(world.fault(FaultEvent::QuietPhase));
    sleep_ms(config.quiet_ms()).await;

    // Probe every key (A2), then stop the sweeper.
    probe(&world).await?;
    world.stop();
    Ok(take_history(&world))
}

fn take_history(world: &SimWorld) -> History {
    std::mem::take(&mut *world.history())
}
