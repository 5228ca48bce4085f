//! The simulated world (madsim build only): producer nodes that crash and
//! restart, a sweeper node, fault controllers, and the fault-injecting store,
//! all driven by the seed through madsim's RNG, clock and scheduler.

mod store;
mod tasks;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use madsim::time::Instant;

use crate::config::{Config, Draw};
use crate::history::{Event, FaultEvent, History, KeyId, OpId, Process};

pub(crate) use tasks::simulate;

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
}

/// What every task of the simulation shares.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) config: Config,
    pub(crate) keys: Vec<String>,
    streams: Vec<String>,
    key_ids: BTreeMap<String, KeyId>,
    start: Instant,
    state: Mutex<WorldState>,
    history: Mutex<History>,
}

impl World {
    fn new(config: Config, keys: Vec<String>, history: History, offsets_ms: Vec<i64>) -> World {
        let producers = usize::from(config.shape.producers);
        let streams = history.streams.clone();
        let key_ids = keys
            .iter()
            .enumerate()
            .filter_map(|(index, key)| Some((key.clone(), KeyId::try_from(index).ok()?)))
            .collect();
        World {
            key_ids,
            start: Instant::now(),
            state: Mutex::new(WorldState {
                faults_on: true,
                stopped: false,
                offsets_ms,
                current: vec![None; producers + 2],
                incarnations: vec![0; producers],
                budgets: crate::workload::budgets(&config),
                finished: vec![false; producers],
                holding: vec![false; producers],
            }),
            history: Mutex::new(history),
            keys,
            streams,
            config,
        }
    }

    fn state(&self) -> MutexGuard<'_, WorldState> {
        // Single-threaded simulation; no code panics while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Simulated microseconds since the run started.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A fault event stamped now.
    pub(crate) fn fault(&self, fault: FaultEvent) -> Event {
        Event::Fault {
            at_us: self.now_us(),
            fault,
        }
    }

    /// True simulated wall-clock time in milliseconds (the store's clock).
    pub(crate) fn true_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
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

    /// The producers holding a granted claim right now.
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

    fn unfinished(&self) -> Vec<u16> {
        self.state()
            .finished
            .iter()
            .enumerate()
            .filter(|(_, done)| !**done)
            .filter_map(|(index, _)| u16::try_from(index).ok())
            .collect()
    }

    fn quiet(&self) {
        self.state().faults_on = false;
    }

    fn stop(&self) {
        self.state().stopped = true;
    }
}
