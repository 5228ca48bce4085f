//! The tasks of a simulated run: producers, the sweeper, the fault
//! controllers, and the run itself (main phase, quiet phase, probe).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use atmostonce::spec::{SpecAnswer, SpecOp};
use atmostonce::{
    DedupCache, DedupDecision, DedupOptions, DedupSweeper, DurabilityError, ProcessingReceipt,
};
use madsim::runtime::Handle;
use madsim::task::NodeId;

use super::store::{FaultStore, StoreCore};
use super::{World, sim_rng, sleep_ms};
use crate::config::{Config, Draw, Fault};
use crate::history::{
    Event, FaultEvent, History, KeyId, OpId, Process, echo_receipt_for, receipt_for,
};
use crate::workload::{
    BACKOFF_MS, DELIVERY_MS, MAX_CLAIM_ATTEMPTS, MAX_FINISH_ATTEMPTS, NAMESPACE, key_names,
    pick_key,
};

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

fn cache_options(config: &Config) -> DedupOptions {
    DedupOptions {
        read_batch: config.read_batch,
        hash_bits: config.hash_bits,
    }
}

fn cache_for(
    world: &Arc<World>,
    core: &Arc<StoreCore>,
    process: Process,
) -> Result<DedupCache, DurabilityError> {
    let store = FaultStore::new(core.clone(), world.clone(), process);
    DedupCache::with_options(Arc::new(store), NAMESPACE, cache_options(&world.config))
}

/// Runs one engine call as a history operation: invocation, then (unless the
/// caller is killed first) the response.
/// Who invokes an operation: a process and its incarnation.
#[derive(Debug, Clone, Copy)]
struct Who {
    process: Process,
    incarnation: u32,
}

impl Who {
    /// The producer's index (0 for the sweeper and the probe, which never
    /// spend a budget).
    fn process_index(self) -> u16 {
        match self.process {
            Process::Producer(index) => index,
            Process::Sweeper | Process::Probe => 0,
        }
    }
}

async fn traced<T, F>(
    world: &World,
    who: Who,
    key: KeyId,
    op: SpecOp,
    claim: Option<OpId>,
    call: F,
    answer: fn(&T) -> SpecAnswer,
) -> (OpId, Result<T, DurabilityError>)
where
    F: Future<Output = Result<T, DurabilityError>>,
{
    let Who {
        process,
        incarnation,
    } = who;
    let id = world
        .history()
        .invoke(process, incarnation, key, op, claim, world.now_us());
    world.set_current(process, Some(id));
    let result = call.await;
    world.set_current(process, None);
    let observed = result.as_ref().map(answer).map_err(Clone::clone);
    world.history().respond(id, observed, world.now_us());
    (id, result)
}

fn decision(decision: &DedupDecision) -> SpecAnswer {
    SpecAnswer::Decision(decision.clone())
}

fn lookup(answer: &Option<DedupDecision>) -> SpecAnswer {
    SpecAnswer::Lookup(answer.clone())
}

fn done(_: &()) -> SpecAnswer {
    SpecAnswer::Done
}

/// One producer incarnation: process messages until the budget is spent.
async fn producer(world: Arc<World>, core: Arc<StoreCore>, index: u16) {
    let process = Process::Producer(index);
    let incarnation = world.begin_incarnation(index);
    let who = Who {
        process,
        incarnation,
    };
    let Ok(cache) = cache_for(&world, &core, process) else {
        world.finish(index);
        return;
    };
    let config = world.config.clone();
    let mut rng = sim_rng();
    while world.has_budget(index) {
        sleep_ms(rng.range(0, config.think_max_ms)).await;
        let key = pick_key(&config, &mut rng);
        let name = world.keys[usize::from(key)].clone();
        if rng.chance(config.lookup_pm) {
            world.spend(index);
            // The answer is only recorded: a lookup steers nothing here.
            let _ = traced(
                &world,
                who,
                key,
                SpecOp::Lookup,
                None,
                cache.lookup(&name),
                lookup,
            )
            .await;
        }
        let mut granted = None;
        for attempt in 0..MAX_CLAIM_ATTEMPTS {
            if attempt > 0 && !world.has_budget(index) {
                break;
            }
            world.spend(index);
            let now_millis = world.clock_ms(process);
            let (id, result) = traced(
                &world,
                who,
                key,
                SpecOp::Claim { now_millis },
                None,
                cache.claim_or_get(&name, now_millis),
                decision,
            )
            .await;
            match result {
                Ok(DedupDecision::Claimed) => {
                    granted = Some(id);
                    break;
                }
                Ok(DedupDecision::Completed(_)) => break,
                Ok(DedupDecision::InFlight) | Err(_) => {
                    sleep_ms(rng.range(BACKOFF_MS.0, BACKOFF_MS.1)).await;
                }
            }
        }
        let Some(claim) = granted else { continue };
        world.set_holding(index, true);
        sleep_ms(rng.range(DELIVERY_MS.0, DELIVERY_MS.1)).await;
        let ok = !rng.chance(config.delivery_failure_pm);
        let at_us = world.now_us();
        world.history().event(Event::Delivery {
            process,
            key,
            claim,
            ok,
            at_us,
        });
        let receipt = ProcessingReceipt::new(receipt_for(&name, process, claim));
        let mut completed = false;
        for _ in 0..MAX_FINISH_ATTEMPTS {
            world.spend(index);
            let timestamp_millis = world.clock_ms(process);
            let result = if ok {
                let op = SpecOp::Complete {
                    receipt: receipt.clone(),
                    timestamp_millis,
                };
                let call = cache.complete_receipt_at(&name, &receipt, timestamp_millis);
                traced(&world, who, key, op, Some(claim), call, done)
                    .await
                    .1
            } else {
                let call = cache.release_claim_at(&name, timestamp_millis);
                traced(&world, who, key, SpecOp::Release, Some(claim), call, done)
                    .await
                    .1
            };
            match result {
                Ok(()) => {
                    completed = ok;
                    break;
                }
                Err(DurabilityError::DedupCollision { .. })
                | Err(DurabilityError::SequenceConflict { .. }) => break,
                Err(_) => sleep_ms(rng.range(BACKOFF_MS.0, BACKOFF_MS.1)).await,
            }
        }
        world.set_holding(index, false);
        if completed && rng.chance(config.echo_pm) {
            echo(&world, who, &cache, key, &name, claim, &mut rng).await;
        }
    }
    world.finish(index);
}

/// A duplicate notification for a message just completed: a late release
/// (the engine must leave the receipt alone) or a completion with other
/// receipt bytes (the engine must refuse it). Both arrive well within the
/// TTL, so the key is still completed with this producer's receipt.
async fn echo(
    world: &World,
    who: Who,
    cache: &DedupCache,
    key: KeyId,
    name: &str,
    claim: OpId,
    rng: &mut impl Draw,
) {
    world.spend(who.process_index());
    let timestamp_millis = world.clock_ms(who.process);
    // The answers are only recorded: the checker judges them.
    if rng.chance(500) {
        let call = cache.release_claim_at(name, timestamp_millis);
        let _ = traced(world, who, key, SpecOp::Release, Some(claim), call, done).await;
    } else {
        let other = ProcessingReceipt::new(echo_receipt_for(name, who.process, claim));
        let op = SpecOp::Complete {
            receipt: other.clone(),
            timestamp_millis,
        };
        let call = cache.complete_receipt_at(name, &other, timestamp_millis);
        let _ = traced(world, who, key, op, Some(claim), call, done).await;
    }
}

/// The sweeper: one pass every interval until the run stops.
async fn sweeper(world: Arc<World>, core: Arc<StoreCore>) {
    let Ok(cache) = cache_for(&world, &core, Process::Sweeper) else {
        return;
    };
    let config = &world.config;
    let sweeper = DedupSweeper::new(
        cache,
        Duration::from_millis(config.ttl_ms),
        Duration::from_millis(config.sweep_interval_ms),
    );
    while !world.stopped() {
        sleep_ms(config.sweep_interval_ms).await;
        // A failed sweep is normal under faults (the seed sweep stops at the
        // first error); its expiries are in the history either way.
        let _ = sweeper.sweep_once(world.clock_ms(Process::Sweeper)).await;
    }
}

fn pick_producer(world: &World, rng: &mut impl Draw) -> u16 {
    u16::try_from(rng.range(0, u64::from(world.config.shape.producers) - 1)).unwrap_or(0)
}

/// Kills a random producer now and then; restarts it after a while.
async fn crash_producers(world: Arc<World>, handle: Handle, nodes: Vec<NodeId>) {
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
async fn pause_producers(world: Arc<World>, handle: Handle, nodes: Vec<NodeId>) {
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
            + atmostonce::limits::CLOCK_SKEW_GRACE_MS
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

async fn crash_store(world: Arc<World>, core: Arc<StoreCore>) {
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

async fn corrupt_records(world: Arc<World>, core: Arc<StoreCore>) {
    let mut rng = sim_rng();
    loop {
        sleep_ms(rng.around(world.config.corruption_every_ms)).await;
        if !world.faults_on() {
            return;
        }
        core.corrupt(&world, &mut rng);
    }
}

fn draw_offset(config: &Config, rng: &mut impl Draw) -> i64 {
    let half = i64::try_from(config.max_skew_ms / 2).unwrap_or(0);
    let span = u64::try_from(2 * half).unwrap_or(0);
    i64::try_from(rng.range(0, span)).unwrap_or(0) - half
}

async fn jump_clocks(world: Arc<World>) {
    let mut rng = sim_rng();
    let config = world.config.clone();
    loop {
        sleep_ms(rng.around(config.clock_jump_every_ms)).await;
        if !world.faults_on() {
            return;
        }
        let pick = rng.range(0, u64::from(config.shape.producers));
        let process = match u16::try_from(pick) {
            Ok(index) if index < config.shape.producers => Process::Producer(index),
            _ => Process::Sweeper,
        };
        let offset_ms = draw_offset(&config, &mut rng);
        world.set_offset(process, offset_ms);
        world
            .history()
            .event(world.fault(FaultEvent::ClockJump { process, offset_ms }));
    }
}

/// Runs one simulated run of `config` and returns its history.
pub(crate) async fn simulate(config: Config) -> Result<History, String> {
    let keys = key_names(config.shape.keys);
    let protocol = atmostonce::core::Protocol::new(NAMESPACE, cache_options(&config), true)
        .map_err(|error| format!("invalid configuration: {error}"))?;
    let streams = keys
        .iter()
        .map(|key| protocol.stream_key_for(key))
        .collect();
    let mut history = History::new(keys.clone(), streams);
    let mut rng = sim_rng();
    let offsets_ms = (0..=config.shape.producers)
        .map(|_| draw_offset(&config, &mut rng))
        .collect();
    history.hash_in(&config);
    history.dedup_window_us = Some(
        (config.ttl_ms + atmostonce::limits::CLOCK_SKEW_GRACE_MS)
            .saturating_sub(config.max_skew_ms)
            * 1000,
    );
    let world = Arc::new(super::World::new(config.clone(), keys, history, offsets_ms));
    let core = Arc::new(StoreCore::default());
    let handle = Handle::current();

    let nodes: Vec<NodeId> = (0..config.shape.producers)
        .map(|index| {
            let (world, core) = (world.clone(), core.clone());
            handle
                .create_node()
                .name(format!("p{index}"))
                .init(move || producer(world.clone(), core.clone(), index))
                .build()
                .id()
        })
        .collect();
    {
        let (world, core) = (world.clone(), core.clone());
        handle
            .create_node()
            .name("sweeper")
            .init(move || sweeper(world.clone(), core.clone()))
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
    let probe = cache_for(&world, &core, Process::Probe)
        .map_err(|error| format!("probe cache: {error}"))?;
    for (index, name) in world.keys.clone().iter().enumerate() {
        let key = KeyId::try_from(index).map_err(|_| "too many keys".to_owned())?;
        // The checker judges the answer (A2); nothing here depends on it.
        let _ = traced(
            &world,
            Who {
                process: Process::Probe,
                incarnation: 0,
            },
            key,
            SpecOp::Lookup,
            None,
            probe.lookup(name),
            lookup,
        )
        .await;
    }
    world.stop();
    Ok(take_history(&world))
}

fn take_history(world: &World) -> History {
    std::mem::take(&mut *world.history())
}
