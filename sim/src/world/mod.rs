//! The world of one run, shared by its tasks: the configuration, the
//! history being recorded, and what the fault controllers and producers
//! coordinate on (clock offsets, budgets, who holds a claim).
//!
//! Runtime-agnostic: an [`Env`] supplies the clock, sleeping, randomness and
//! each caller's store. The simulation (madsim build) implements it with
//! madsim's simulated clock, RNG and the fault-injecting store
//! (`crate::madsim`); live mode (ordinary build, `crate::live`) with
//! tokio, the wall clock and a real store. The producers, the sweeper, the
//! probe and the clock jumps (`actors.rs`) are the same code in both.

pub(crate) mod actors;
pub(crate) mod fenced;
pub(crate) mod janitor;
mod sink;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use atmostonce::fenced::{FencedCache, FencedOptions};
use atmostonce::limits::SWEEP_PAGE_STREAMS;
use atmostonce::{DedupCache, DedupOptions, DurabilityError, DurableStore};
use atmostonce_verify::oracle::fenced::{FencedOp, FencedParams};
use atmostonce_verify::oracle::record::{self, Record, ReleaseReason};
use atmostonce_verify::oracle::{SpecOp, naming};

use crate::config::{Api, Config, Draw};
use crate::history::{Event, FaultEvent, History, KeyId, OpId, Process};
use crate::workload::{NAMESPACE, all_key_names, pick_key};
pub(crate) use sink::{Delivered, Sink};

/// What the tasks of a run need from their surroundings.
pub(crate) trait Env: Send + Sync + Sized + 'static {
    /// A source of randomness for one task.
    type Rng: Draw + Send;

    /// A random source (the simulation's seeded RNG, or a per-task one).
    fn rng(&self) -> Self::Rng;

    /// Microseconds since the run started, by a monotonic clock.
    fn elapsed_us(&self) -> u64;

    /// True wall-clock time in milliseconds since the Unix epoch.
    fn wall_millis(&self) -> u64;

    /// Sleeps `ms` milliseconds.
    fn sleep_ms(&self, ms: u64) -> impl Future<Output = ()> + Send;

    /// `process`'s handle on the run's store, which attributes the caller's
    /// store calls to its operations (see [`World::expire_invocation`]).
    fn store_for(world: &Arc<World<Self>>, process: Process) -> Arc<dyn DurableStore>;
}

/// The settings of a run's fenced caches: the drawn TTL is both the claim
/// lease and the receipt TTL, so a run's quiet phase (TTL + sweep interval)
/// outlasts every claim and receipt of the main phase, as for the seed API.
pub(crate) fn fenced_params(config: &Config) -> FencedParams {
    FencedParams {
        lease_ms: config.ttl_ms,
        receipt_ttl_ms: config.ttl_ms,
    }
}

/// The seed-API cache `process` uses, over its handle on the run's store.
pub(crate) fn seed_cache<E: Env>(
    world: &Arc<World<E>>,
    process: Process,
) -> Result<DedupCache, DurabilityError> {
    let options = DedupOptions::default()
        .with_read_batch(world.config.read_batch)
        .with_hash_bits(world.config.hash_bits);
    DedupCache::with_options(E::store_for(world, process), NAMESPACE, options)
}

/// The fenced cache `process` uses, over its handle on the run's store.
pub(crate) fn fenced_cache<E: Env>(
    world: &Arc<World<E>>,
    process: Process,
) -> Result<FencedCache, DurabilityError> {
    let params = fenced_params(&world.config);
    let options = FencedOptions::default()
        .with_lease_ms(params.lease_ms)
        .with_receipt_ttl_ms(params.receipt_ttl_ms)
        .with_sweep_page_streams(world.config.read_batch.min(SWEEP_PAGE_STREAMS))
        .with_hash_bits(world.config.hash_bits);
    FencedCache::new(E::store_for(world, process), NAMESPACE, options)
}

/// A mistake planted on purpose, to show the checker catches it (live
/// mode's `--plant`; never set in a simulation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadPlant {
    /// Producers deliver a message whose claim they did not win.
    // Only live mode (the ordinary build) plants it.
    #[cfg_attr(madsim, allow(dead_code))]
    DeliverWithoutClaim,
}

#[derive(Debug)]
struct WorldState {
    faults_on: bool,
    stopped: bool,
    /// Clock offsets in ms: producers, then the sweeper.
    offsets_ms: Vec<i64>,
    /// The operation each caller is in: producers, sweeper, probe.
    current: Vec<Option<OpId>>,
    incarnations: Vec<u32>,
    budgets: Vec<u32>,
    finished: Vec<bool>,
    /// Producers between a granted claim and the end of its completion.
    holding: Vec<bool>,
    /// The clock of the fenced sweeper's current pass (its expiries are
    /// judged at it).
    sweep_now_millis: u64,
    /// Fresh keys handed out so far (`--fresh-keys`).
    fresh_used: u16,
}

/// What every task of a run shares.
#[derive(Debug)]
pub(crate) struct World<E> {
    pub(crate) config: Config,
    pub(crate) keys: Vec<String>,
    pub(crate) env: E,
    pub(crate) plant: Option<WorkloadPlant>,
    streams: Vec<String>,
    key_ids: BTreeMap<String, KeyId>,
    state: Mutex<WorldState>,
    history: Mutex<History>,
    sink: Mutex<Sink>,
}

impl<E: Env> World<E> {
    /// A world for `config`: `offsets_ms` are the initial clock offsets
    /// (producers, then the sweeper), `budgets` the operations each producer
    /// may invoke.
    pub(crate) fn new(
        config: Config,
        env: E,
        history: History,
        offsets_ms: Vec<i64>,
        budgets: Vec<u32>,
    ) -> World<E> {
        let keys = history.keys.clone();
        let producers = usize::from(config.shape.producers);
        let streams = history.streams.clone();
        let key_ids = keys
            .iter()
            .enumerate()
            .filter_map(|(index, key)| Some((key.clone(), KeyId::try_from(index).ok()?)))
            .collect();
        World {
            key_ids,
            env,
            plant: None,
            state: Mutex::new(WorldState {
                faults_on: true,
                stopped: false,
                offsets_ms,
                current: vec![None; producers + 2],
                incarnations: vec![0; producers],
                budgets,
                finished: vec![false; producers],
                holding: vec![false; producers],
                sweep_now_millis: 0,
                fresh_used: 0,
            }),
            history: Mutex::new(history),
            sink: Mutex::new(Sink::default()),
            keys,
            streams,
            config,
        }
    }

    fn state(&self) -> MutexGuard<'_, WorldState> {
        self.state.lock()
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock()
    }

    /// Offers the fenced downstream a delivery of `key` with `fence` by the
    /// holder of `claim` (see [`Sink::offer`]).
    pub(crate) fn deliver_fenced(&self, key: KeyId, fence: u64, claim: OpId) -> Delivered {
        self.sink.lock().offer(key, fence, claim)
    }

    /// The fenced sweeper begins a pass at `now_millis`.
    pub(crate) fn begin_sweep(&self, now_millis: u64) {
        self.state().sweep_now_millis = now_millis;
    }

    /// Microseconds since the run started (simulated time in a simulation).
    pub(crate) fn now_us(&self) -> u64 {
        self.env.elapsed_us()
    }

    /// A fault event stamped now.
    pub(crate) fn fault(&self, fault: FaultEvent) -> Event {
        Event::Fault {
            at_us: self.now_us(),
            fault,
        }
    }

    /// True wall-clock time in milliseconds (the store's clock).
    pub(crate) fn true_millis(&self) -> u64 {
        self.env.wall_millis()
    }

    fn slot(&self, process: Process) -> usize {
        let producers = usize::from(self.config.shape.producers);
        match process {
            Process::Producer(index) => usize::from(index),
            Process::Sweeper => producers,
            Process::Probe => producers + 1,
        }
    }

    /// What `process`'s clock reads now: true time plus its offset.
    pub(crate) fn clock_ms(&self, process: Process) -> u64 {
        let slot = self
            .slot(process)
            .min(usize::from(self.config.shape.producers));
        let offset = self.state().offsets_ms.get(slot).copied().unwrap_or(0);
        self.true_millis().saturating_add_signed(offset)
    }

    pub(crate) fn set_offset(&self, process: Process, offset_ms: i64) {
        let slot = self
            .slot(process)
            .min(usize::from(self.config.shape.producers));
        if let Some(offset) = self.state().offsets_ms.get_mut(slot) {
            *offset = offset_ms;
        }
    }

    /// The key of a producer's next message, and whether it is fresh:
    /// `fresh_pm` per mille of messages take the next unused fresh key
    /// (each is handed out once), the others (and every message once the
    /// fresh keys are all used) pick among the workload's keys
    /// ([`pick_key`]). Without fresh keys it draws what [`pick_key`] draws
    /// and nothing more, so runs without them are unchanged.
    pub(crate) fn next_key(&self, rng: &mut impl Draw) -> (KeyId, bool) {
        let config = &self.config;
        if config.shape.fresh_pm > 0 && rng.chance(config.shape.fresh_pm) {
            let mut state = self.state();
            if state.fresh_used < config.fresh_keys {
                let key = config.shape.keys.saturating_add(state.fresh_used);
                state.fresh_used += 1;
                return (key, true);
            }
        }
        (pick_key(config, rng), false)
    }

    /// Fresh keys handed out so far.
    pub(crate) fn fresh_used(&self) -> u16 {
        self.state().fresh_used
    }

    /// The keys a producer may have used so far: the workload's, then the
    /// fresh ones handed out (the probe reads those; the others were never
    /// written).
    pub(crate) fn keys_in_use(&self) -> usize {
        usize::from(self.config.shape.keys)
            .saturating_add(usize::from(self.fresh_used()))
            .min(self.keys.len())
    }

    /// The stream `key` lives in.
    pub(crate) fn stream_of(&self, key: KeyId) -> Option<&str> {
        self.streams.get(usize::from(key)).map(String::as_str)
    }

    pub(crate) fn key_id(&self, key: &str) -> Option<KeyId> {
        self.key_ids.get(key).copied()
    }

    pub(crate) fn faults_on(&self) -> bool {
        self.state().faults_on
    }

    pub(crate) fn stopped(&self) -> bool {
        self.state().stopped
    }

    pub(crate) fn current_op(&self, process: Process) -> Option<OpId> {
        let slot = self.slot(process);
        self.state().current.get(slot).copied().flatten()
    }

    pub(crate) fn set_current(&self, process: Process, op: Option<OpId>) {
        let slot = self.slot(process);
        if let Some(current) = self.state().current.get_mut(slot) {
            *current = op;
        }
    }

    /// A producer (re)starts: its new incarnation number.
    pub(crate) fn begin_incarnation(&self, index: u16) -> u32 {
        let mut state = self.state();
        let slot = usize::from(index);
        state.current[slot] = None;
        state.holding[slot] = false;
        let incarnation = state.incarnations[slot];
        state.incarnations[slot] += 1;
        incarnation
    }

    /// The incarnation producer `index` began last, if any.
    #[cfg(not(madsim))]
    pub(crate) fn incarnation(&self, index: u16) -> Option<u32> {
        self.state().incarnations[usize::from(index)].checked_sub(1)
    }

    pub(crate) fn has_budget(&self, index: u16) -> bool {
        self.state().budgets[usize::from(index)] > 0
    }

    pub(crate) fn spend(&self, index: u16) {
        let mut state = self.state();
        let budget = &mut state.budgets[usize::from(index)];
        *budget = budget.saturating_sub(1);
    }

    pub(crate) fn finish(&self, index: u16) {
        self.state().finished[usize::from(index)] = true;
    }

    /// Marks producer `index` as holding a granted claim (or not).
    pub(crate) fn set_holding(&self, index: u16, holding: bool) {
        self.state().holding[usize::from(index)] = holding;
    }

    /// The producers holding a granted claim right now (the simulation's
    /// pauses and half of live mode's crashes aim at them).
    pub(crate) fn holders(&self) -> Vec<u16> {
        self.state()
            .holding
            .iter()
            .enumerate()
            .filter(|(_, holding)| **holding)
            .filter_map(|(index, _)| u16::try_from(index).ok())
            .collect()
    }

    pub(crate) fn is_finished(&self, index: u16) -> bool {
        self.state().finished[usize::from(index)]
    }

    pub(crate) fn unfinished(&self) -> Vec<u16> {
        self.state()
            .finished
            .iter()
            .enumerate()
            .filter(|(_, done)| !**done)
            .filter_map(|(index, _)| u16::try_from(index).ok())
            .collect()
    }

    /// Faults stop (the quiet phase).
    pub(crate) fn quiet(&self) {
        self.state().faults_on = false;
    }

    /// The sweeper stops after its current pass.
    pub(crate) fn stop(&self) {
        self.state().stopped = true;
    }

    /// Every producer's budget is spent: each finishes the message in hand
    /// (its completion or release and their retries) and stops. Live mode
    /// ends its main phase this way when its duration is up.
    #[cfg(not(madsim))]
    pub(crate) fn end_budgets(&self) {
        self.state()
            .budgets
            .iter_mut()
            .for_each(|budget| *budget = 0);
    }

    /// If `caller` is the sweeper and the append is a tombstone of one of
    /// the workload's keys in that key's stream, invokes (and returns) the
    /// `expire` operation it is: the sweeper's tombstones are the history's
    /// per-key expiries, from the append's invocation to its answer.
    pub(crate) fn expire_invocation(
        &self,
        caller: Process,
        stream: &str,
        payload: &[u8],
    ) -> Option<OpId> {
        if caller != Process::Sweeper {
            return None;
        }
        // Decoded by the oracle's reference decoder (`docs/record-format.md`),
        // never the engine's codec. The seed API's sweeper writes `LDT1`,
        // the fenced API's an `LDT2` with the reason `expired`.
        let key = match (self.config.api, record::decode(payload)) {
            (Api::Seed, Ok(Record::V1Tombstone { key, .. })) => key,
            (
                Api::Fenced,
                Ok(Record::Release {
                    key,
                    reason: ReleaseReason::Expired,
                    ..
                }),
            ) => key,
            _ => return None,
        };
        let key = self.key_id(&key)?;
        // A corrupted record can name a key that does not live in this
        // stream; tombstoning it is no expiry of that key.
        if self.stream_of(key) != Some(stream) {
            return None;
        }
        let now_us = self.now_us();
        let now_millis = self.state().sweep_now_millis;
        let mut history = self.history();
        Some(match self.config.api {
            Api::Seed => history.invoke(Process::Sweeper, 0, key, SpecOp::Expire, None, now_us),
            Api::Fenced => history.invoke_fenced(
                Process::Sweeper,
                0,
                key,
                FencedOp::Expire { now_millis },
                None,
                now_us,
            ),
        })
    }
}

/// The empty history of a run of `config`: its keys, the stream each lives
/// in, the configuration hashed in, and A1's dedup window.
pub(crate) fn new_history(config: &Config) -> Result<History, String> {
    let keys = all_key_names(config)?;
    if config.hash_bits == 0 || config.hash_bits > naming::MAX_HASH_BITS {
        return Err(format!(
            "invalid configuration: hash_bits is {}; it must be between 1 and {}",
            config.hash_bits,
            naming::MAX_HASH_BITS
        ));
    }
    // The oracle's stream naming (`docs/spec.md`, "Streams"), never the
    // engine's: S6 and the collision excuse must not share a naming bug.
    let streams = keys
        .iter()
        .map(|key| naming::stream_name_with_hash_bits(NAMESPACE, key, config.hash_bits))
        .collect();
    let mut history = History::new(keys, streams);
    history.hash_in(config);
    if config.api == Api::Fenced {
        history.fenced = Some(fenced_params(config));
    }
    history.dedup_window_us = Some(
        (config.ttl_ms + atmostonce_verify::oracle::expiry::CLOCK_SKEW_GRACE_MS)
            .saturating_sub(config.max_skew_ms)
            * 1000,
    );
    Ok(history)
}
