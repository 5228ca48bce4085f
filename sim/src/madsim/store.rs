//! The simulated store: a [`StreamTable`] behind a fault-injecting
//! [`DurableStore`] that delays, fails, serves stale snapshots, crashes
//! (dropping unflushed appends) and corrupts, as the seed decides.
//!
//! Each caller (producer, sweeper, probe) gets its own handle, so the store
//! can attribute every append and read to the operation that made it: the
//! sweeper's tombstones become per-key `expire` operations of the history,
//! and reads of stale or later-dropped data flag the reading operation.
//!
//! Durability model: an applied append is volatile until a `flush` applies;
//! a flush makes every applied append durable (as an fsync of a log does). A
//! crash truncates every stream to its durable length and resets every
//! connection: a call started before the crash fails with `StoreError`
//! (not applied if it had not acted yet, applied if it had).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use atmostonce::{
    DurabilityError, DurableStore, ScannedEntry, StoreFuture, StoredEntry, StreamTable,
};
use atmostonce_verify::oracle::{SpecAnswer, record};

use super::rng::sim_rng;
use crate::config::Draw;
use crate::history::{FaultEvent, OpId, Process};
use crate::world::{Env, World};

/// Most entries a stale read hides: a replica a few appends behind.
const MAX_STALE_ENTRIES: u64 = 3;

/// The base delay of every store call (madsim sleeps at least 1 ms): long
/// enough that concurrent operations interleave between their calls.
const BASE_DELAY_MS: u64 = 1;

#[derive(Debug, Default)]
struct State {
    table: StreamTable,
    durable: BTreeMap<String, u64>,
    epoch: u64,
    down: bool,
    /// Unflushed slots and the operation whose append put them there.
    owners: BTreeMap<(String, u64), OpId>,
    /// Reads of unflushed slots: `(stream, sequence, reader)`.
    dirty: Vec<(String, u64, OpId)>,
}

/// The store shared by every handle.
#[derive(Debug, Default)]
pub(crate) struct StoreCore {
    state: Mutex<State>,
}

impl StoreCore {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The simulation is single-threaded and no code panics while holding
        // the lock, so a poisoned lock still holds a consistent table.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A store crash: every stream loses its unflushed tail, readers of that
    /// tail are flagged dirty, appenders whose entry vanished are told, and
    /// the store stays down until [`restart`](StoreCore::restart).
    pub(crate) fn crash<E: Env>(&self, world: &World<E>) {
        let mut state = self.lock();
        let mut dropped = Vec::new();
        let lengths: Vec<(String, u64)> = state
            .table
            .stream_lengths()
            .map(|(name, len)| (name.to_owned(), len))
            .collect();
        for (stream, len) in lengths {
            let durable = state.durable.get(&stream).copied().unwrap_or(0);
            if len > durable {
                state.table.truncate(&stream, durable);
                dropped.extend((durable..len).map(|sequence| (stream.clone(), sequence)));
            }
        }
        let mut history = world.history();
        for slot in &dropped {
            if let Some(op) = state.owners.get(slot) {
                history.dropped(*op);
            }
        }
        for (stream, sequence, reader) in &state.dirty {
            if dropped.iter().any(|(s, q)| s == stream && q == sequence) {
                history.flag_dirty(*reader);
            }
        }
        state.owners.clear();
        state.dirty.clear();
        state.epoch += 1;
        state.down = true;
        history.event(world.fault(FaultEvent::StoreCrash { dropped }));
    }

    /// The store is back (with whatever was durable).
    pub(crate) fn restart<E: Env>(&self, world: &World<E>) {
        self.lock().down = false;
        world.history().event(world.fault(FaultEvent::StoreRestart));
    }

    /// Corrupts one random record (bit flip or truncation).
    pub(crate) fn corrupt<E: Env>(&self, world: &World<E>, rng: &mut impl Draw) {
        let mut state = self.lock();
        let slots: Vec<(String, u64)> = state
            .table
            .stream_lengths()
            .map(|(name, len)| (name.to_owned(), len))
            .collect();
        let total: u64 = slots.iter().map(|(_, len)| len).sum();
        if total == 0 {
            return;
        }
        let mut pick = rng.range(0, total - 1);
        let Some((stream, sequence)) = slots.iter().find_map(|(stream, len)| {
            if pick < *len {
                Some((stream.clone(), pick))
            } else {
                pick -= len;
                None
            }
        }) else {
            return;
        };
        let Some(entry) = state.table.read_from(&stream, sequence, 1).pop() else {
            return;
        };
        // Read by the oracle's reference decoder (`docs/record-format.md`),
        // not the engine's codec: the bookkeeping of what was corrupted must
        // not share a codec bug with the engine it judges.
        let Ok(record) = record::decode(&entry.payload) else {
            return; // already corrupt
        };
        let Some(key) = world.key_id(record.key()) else {
            return;
        };
        let mut payload = entry.payload;
        let how = if rng.chance(500) && !payload.is_empty() {
            let len = usize::try_from(rng.range(0, payload.len() as u64 - 1)).unwrap_or(0);
            payload.truncate(len);
            format!("truncated to {len} bytes")
        } else {
            let bit = rng.range(0, payload.len() as u64 * 8 - 1);
            let byte = usize::try_from(bit / 8).unwrap_or(0);
            payload[byte] ^= 1 << (bit % 8);
            format!("bit {bit} flipped")
        };
        state.table.overwrite(&stream, sequence, payload);
        world.history().event(world.fault(FaultEvent::Corruption {
            key,
            stream,
            sequence,
            how,
        }));
    }

    /// The quiet phase: the store is up and stays up.
    pub(crate) fn heal(&self) {
        self.lock().down = false;
    }
}

/// One caller's handle on the simulated store.
pub(crate) struct FaultStore<E: Env> {
    core: Arc<StoreCore>,
    world: Arc<World<E>>,
    caller: Process,
}

enum Call<'a> {
    Append {
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    },
    Read {
        stream: &'a str,
        offset: u64,
        limit: usize,
    },
    Scan {
        prefix: &'a str,
    },
    Flush,
}

impl Call<'_> {
    fn name(&self) -> &'static str {
        match self {
            Call::Append { .. } => "append",
            Call::Read { .. } => "read",
            Call::Scan { .. } => "scan",
            Call::Flush => "flush",
        }
    }
}

enum Reply {
    Append(Result<u64, DurabilityError>),
    Read(Vec<StoredEntry>),
    Scan(Vec<ScannedEntry>),
    Flush,
}

impl<E: Env> FaultStore<E> {
    pub(crate) fn new(core: Arc<StoreCore>, world: Arc<World<E>>, caller: Process) -> Self {
        FaultStore {
            core,
            world,
            caller,
        }
    }

    /// The extra delay of one leg of a call (`latency` fault).
    fn extra_delay_ms(&self) -> u64 {
        let config = &self.world.config;
        if self.world.faults_on() && config.latency_pm > 0 {
            let mut rng = sim_rng();
            if rng.chance(config.latency_pm) {
                return rng.range(1, config.latency_max_ms.max(1));
            }
        }
        0
    }

    /// The sweeper's tombstone appends are the `expire` operations of the
    /// history: one per key, from invocation to answer.
    fn expire_op(&self, call: &Call<'_>) -> Option<OpId> {
        let Call::Append {
            stream, payload, ..
        } = call
        else {
            return None;
        };
        self.world.expire_invocation(self.caller, stream, payload)
    }

    async fn call(&self, call: Call<'_>) -> Result<Reply, DurabilityError> {
        let expire = self.expire_op(&call);
        let op = expire.or_else(|| self.world.current_op(self.caller));
        let epoch = self.core.lock().epoch;
        let delay_ms = BASE_DELAY_MS + self.extra_delay_ms();
        madsim::time::sleep(Duration::from_millis(delay_ms)).await;
        let result = self.act(&call, op, epoch);
        let result = match result {
            Ok(reply) => {
                let extra_ms = self.extra_delay_ms();
                if extra_ms > 0 {
                    madsim::time::sleep(Duration::from_millis(extra_ms)).await;
                    if self.core.lock().epoch != epoch {
                        self.record_error(op, &call, true);
                        Err(DurabilityError::StoreError(
                            "connection reset: the store crashed before it answered".into(),
                        ))
                    } else {
                        Ok(reply)
                    }
                } else {
                    Ok(reply)
                }
            }
            Err(error) => Err(error),
        };
        if let Some(expire) = expire {
            let answer = match &result {
                Ok(Reply::Append(Ok(_))) => Ok(SpecAnswer::Done),
                Ok(Reply::Append(Err(error))) | Err(error) => Err(error.clone()),
                Ok(_) => Ok(SpecAnswer::Done),
            };
            let now_us = self.world.now_us();
            self.world.history().respond(expire, answer, now_us);
        }
        result
    }

    fn record_error(&self, op: Option<OpId>, call: &Call<'_>, applied: bool) {
        let event = self.world.fault(FaultEvent::StoreCallError {
            op,
            call: call.name(),
            applied,
        });
        self.world.history().event(event);
    }

    /// The call takes effect (or fails) at one instant.
    fn act(&self, call: &Call<'_>, op: Option<OpId>, epoch: u64) -> Result<Reply, DurabilityError> {
        let config = &self.world.config;
        let faults_on = self.world.faults_on();
        let mut state = self.core.lock();
        if state.down || state.epoch != epoch {
            drop(state);
            self.record_error(op, call, false);
            return Err(DurabilityError::StoreError(
                "connection reset: the store crashed".into(),
            ));
        }
        let mut rng = sim_rng();
        if faults_on && config.error_lost_pm > 0 && rng.chance(config.error_lost_pm) {
            drop(state);
            self.record_error(op, call, false);
            return Err(DurabilityError::StoreError(
                "timeout: the request was lost".into(),
            ));
        }
        let now_ms = self.world.true_millis();
        let stale = |rng: &mut madsim::rand::GlobalRng| {
            if faults_on && config.stale_pm > 0 && rng.chance(config.stale_pm) {
                rng.range(1, MAX_STALE_ENTRIES)
            } else {
                0
            }
        };
        let reply = match *call {
            Call::Append {
                stream,
                payload,
                expected_seq,
            } => {
                let result = state.table.append(stream, payload, expected_seq, now_ms);
                if let (Ok(sequence), Some(op)) = (&result, op) {
                    state.owners.insert((stream.to_owned(), *sequence), op);
                    self.world
                        .history()
                        .applied(op, (stream.to_owned(), *sequence));
                }
                Reply::Append(result)
            }
            Call::Read {
                stream,
                offset,
                limit,
            } => {
                let len = state.table.len(stream);
                let hidden = stale(&mut rng).min(len);
                let visible = len - hidden;
                let mut entries = state.table.read_from(stream, offset, limit);
                entries.retain(|entry| entry.sequence < visible);
                let window_end = offset.saturating_add(limit as u64);
                if hidden > 0 && offset < len && window_end > visible {
                    self.flag_stale(op, hidden);
                }
                self.note_dirty_reads(&mut state, stream, &entries, op);
                Reply::Read(entries)
            }
            Call::Scan { prefix } => {
                let hidden = stale(&mut rng);
                let mut entries = state.table.scan(prefix);
                if hidden > 0 {
                    let lengths: BTreeMap<String, u64> = state
                        .table
                        .stream_lengths()
                        .map(|(name, len)| (name.to_owned(), len))
                        .collect();
                    let before = entries.len();
                    entries.retain(|scanned| {
                        let len = lengths.get(&scanned.stream).copied().unwrap_or(0);
                        scanned.entry.sequence + hidden < len
                    });
                    if entries.len() < before {
                        self.flag_stale(op, hidden);
                    }
                }
                Reply::Scan(entries)
            }
            Call::Flush => {
                let lengths: Vec<(String, u64)> = state
                    .table
                    .stream_lengths()
                    .map(|(name, len)| (name.to_owned(), len))
                    .collect();
                state.durable = lengths.into_iter().collect();
                state.owners.clear();
                state.dirty.clear();
                Reply::Flush
            }
        };
        drop(state);
        let takes_effect = matches!(call, Call::Flush) || matches!(reply, Reply::Append(Ok(_)));
        if faults_on
            && takes_effect
            && config.error_applied_pm > 0
            && rng.chance(config.error_applied_pm)
        {
            self.record_error(op, call, true);
            return Err(DurabilityError::StoreError(
                "timeout: no answer (the request was applied)".into(),
            ));
        }
        Ok(reply)
    }

    fn flag_stale(&self, op: Option<OpId>, hidden: u64) {
        let mut history = self.world.history();
        if let Some(op) = op {
            history.flag_stale(op);
        }
        history.event(self.world.fault(FaultEvent::StaleRead { op, hidden }));
    }

    fn note_dirty_reads(
        &self,
        state: &mut State,
        stream: &str,
        entries: &[StoredEntry],
        op: Option<OpId>,
    ) {
        let Some(op) = op else { return };
        let durable = state.durable.get(stream).copied().unwrap_or(0);
        for entry in entries.iter().filter(|entry| entry.sequence >= durable) {
            state.dirty.push((stream.to_owned(), entry.sequence, op));
        }
    }
}

impl<E: Env> DurableStore for FaultStore<E> {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            match self
                .call(Call::Append {
                    stream,
                    payload,
                    expected_seq,
                })
                .await?
            {
                Reply::Append(result) => result,
                _ => Err(mismatch()),
            }
        })
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        Box::pin(async move {
            match self
                .call(Call::Read {
                    stream,
                    offset,
                    limit,
                })
                .await?
            {
                Reply::Read(entries) => Ok(entries),
                _ => Err(mismatch()),
            }
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        Box::pin(async move {
            match self.call(Call::Scan { prefix }).await? {
                Reply::Scan(entries) => Ok(entries),
                _ => Err(mismatch()),
            }
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.call(Call::Flush).await? {
                Reply::Flush => Ok(()),
                _ => Err(mismatch()),
            }
        })
    }

    /// Acknowledged appends are volatile until a flush: the engine must
    /// flush before it acknowledges, and the crash fault tests that it does.
    fn acknowledged_appends_are_durable(&self) -> bool {
        false
    }
}

/// A reply of the wrong kind: a bug of this file, surfaced as an error.
fn mismatch() -> DurabilityError {
    DurabilityError::StoreError("simulated store bug: reply of the wrong kind".into())
}
