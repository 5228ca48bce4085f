//! The tasks every run has, whatever drives it: producers, the sweeper, the
//! clock jumps and the final probe. The simulation runs them as madsim
//! nodes; live mode as tokio tasks against a real store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use atmostonce::{DedupCache, DedupDecision, DedupSweeper, DurabilityError, ProcessingReceipt};
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};

use super::{Env, WorkloadPlant, World, fenced, seed_cache};
use crate::config::{Api, Config, Draw};
use crate::history::{Event, FaultEvent, KeyId, OpId, Process, echo_receipt_for, receipt_for};
use crate::workload::{BACKOFF_MS, DELIVERY_MS, MAX_CLAIM_ATTEMPTS, MAX_FINISH_ATTEMPTS};

/// Who invokes an operation: a process and its incarnation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who {
    pub(crate) process: Process,
    pub(crate) incarnation: u32,
}

impl Who {
    /// The producer's index (0 for the sweeper and the probe, which never
    /// spend a budget).
    pub(crate) fn process_index(self) -> u16 {
        match self.process {
            Process::Producer(index) => index,
            Process::Sweeper | Process::Probe => 0,
        }
    }
}

/// Runs one engine call as a history operation: invocation, then (unless the
/// caller is killed first) the response.
pub(super) async fn traced<E, T, F>(
    world: &World<E>,
    who: Who,
    key: KeyId,
    op: SpecOp,
    claim: Option<OpId>,
    call: F,
    answer: fn(&T) -> SpecAnswer,
) -> (OpId, Result<T, DurabilityError>)
where
    E: Env,
    F: Future<Output = Result<T, DurabilityError>>,
{
    let Who {
        process,
        incarnation,
    } = who;
    let id = world
        .history()
        .invoke(process, incarnation, key, op, claim, world.now_us());
    let result = in_operation(world, process, id, call).await;
    let observed = result.as_ref().map(answer).map_err(Clone::clone);
    world.history().respond(id, observed, world.now_us());
    (id, result)
}

/// Awaits `call` as `process`'s operation `id`: its store calls are
/// attributed to `id`.
pub(crate) async fn in_operation<E, T>(
    world: &World<E>,
    process: Process,
    id: OpId,
    call: impl Future<Output = T>,
) -> T
where
    E: Env,
{
    world.set_current(process, Some(id));
    let result = call.await;
    world.set_current(process, None);
    result
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

/// One producer incarnation of the run's API: process messages until the
/// budget is spent.
pub(crate) async fn producer<E: Env>(world: Arc<World<E>>, index: u16) {
    // Boxed, so that the task a runtime spawns for a producer stays small:
    // unboxed it is as large as the larger of the two APIs' producer
    // futures (kilobytes: each engine call's future is inside), and the
    // runtime copies it whole every time it starts or restarts a node (a
    // tenth of a seed's instructions in the standard sweep).
    match world.config.api {
        Api::Seed => Box::pin(seed_producer(world, index)).await,
        Api::Fenced => Box::pin(fenced::producer(world, index)).await,
    }
}

/// One producer incarnation of the seed API.
async fn seed_producer<E: Env>(world: Arc<World<E>>, index: u16) {
    let process = Process::Producer(index);
    let incarnation = world.begin_incarnation(index);
    let who = Who {
        process,
        incarnation,
    };
    let Ok(cache) = seed_cache(&world, process) else {
        world.finish(index);
        return;
    };
    let config = world.config.clone();
    let mut rng = world.env.rng();
    while world.has_budget(index) {
        world.env.sleep_ms(rng.range(0, config.think_max_ms)).await;
        let (key, fresh) = world.next_key(&mut rng);
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
        let mut refused = None;
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
                    refused = Some(id);
                    world
                        .env
                        .sleep_ms(rng.range(BACKOFF_MS.0, BACKOFF_MS.1))
                        .await;
                }
            }
        }
        let Some(claim) = granted else {
            if let (Some(WorkloadPlant::DeliverWithoutClaim), Some(refused)) =
                (world.plant, refused)
            {
                let at_us = world.now_us();
                world.history().event(Event::Delivery {
                    process,
                    key,
                    claim: refused,
                    ok: true,
                    at_us,
                });
            }
            continue;
        };
        world.set_holding(index, true);
        world
            .env
            .sleep_ms(rng.range(DELIVERY_MS.0, DELIVERY_MS.1))
            .await;
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
                Err(_) => {
                    world
                        .env
                        .sleep_ms(rng.range(BACKOFF_MS.0, BACKOFF_MS.1))
                        .await;
                }
            }
        }
        world.set_holding(index, false);
        // A fresh key is never seen again, not even as a duplicate.
        if completed && !fresh && rng.chance(config.echo_pm) {
            echo(&world, who, &cache, key, &name, claim, &mut rng).await;
        }
    }
    world.finish(index);
}

/// A duplicate notification for a message just completed: a late release
/// (the engine must leave the receipt alone) or a completion with other
/// receipt bytes (the engine must refuse it). Both arrive well within the
/// TTL, so the key is still completed with this producer's receipt.
async fn echo<E: Env>(
    world: &World<E>,
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

/// The sweeper of the run's API: one pass every interval until the run
/// stops.
pub(crate) async fn sweeper<E: Env>(world: Arc<World<E>>) {
    // Boxed for the producer's reason (see [`producer`]).
    match world.config.api {
        Api::Seed => Box::pin(seed_sweeper(world)).await,
        Api::Fenced => Box::pin(fenced::sweeper(world)).await,
    }
}

async fn seed_sweeper<E: Env>(world: Arc<World<E>>) {
    let Ok(cache) = seed_cache(&world, Process::Sweeper) else {
        return;
    };
    let config = &world.config;
    let sweeper = DedupSweeper::new(
        cache,
        Duration::from_millis(config.ttl_ms),
        Duration::from_millis(config.sweep_interval_ms),
    );
    while !world.stopped() {
        world.env.sleep_ms(config.sweep_interval_ms).await;
        // A failed sweep is normal under faults (the seed sweep stops at the
        // first error); its expiries are in the history either way.
        let _ = sweeper.sweep_once(world.clock_ms(Process::Sweeper)).await;
    }
}

/// A random producer's index.
pub(crate) fn pick_producer<E: Env>(world: &World<E>, rng: &mut impl Draw) -> u16 {
    u16::try_from(rng.range(0, u64::from(world.config.shape.producers) - 1)).unwrap_or(0)
}

/// A clock offset within the configuration's skew bound.
pub(crate) fn draw_offset(config: &Config, rng: &mut impl Draw) -> i64 {
    let half = i64::try_from(config.max_skew_ms / 2).unwrap_or(0);
    let span = u64::try_from(2 * half).unwrap_or(0);
    i64::try_from(rng.range(0, span)).unwrap_or(0) - half
}

/// Moves a random node's clock now and then (`clock-skew`).
pub(crate) async fn jump_clocks<E: Env>(world: Arc<World<E>>) {
    let mut rng = world.env.rng();
    let config = world.config.clone();
    loop {
        world
            .env
            .sleep_ms(rng.around(config.clock_jump_every_ms))
            .await;
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

/// The probe after the quiet phase: looks every key up (A2).
pub(crate) async fn probe<E: Env>(world: &Arc<World<E>>) -> Result<(), String> {
    if world.config.api == Api::Fenced {
        return fenced::probe(world).await;
    }
    let probe =
        seed_cache(world, Process::Probe).map_err(|error| format!("probe cache: {error}"))?;
    let in_use = world.keys_in_use();
    for (index, name) in world.keys.clone().iter().enumerate().take(in_use) {
        let key = KeyId::try_from(index).map_err(|_| "too many keys".to_owned())?;
        // The checker judges the answer (A2); nothing here depends on it.
        let _ = traced(
            world,
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
    Ok(())
}
