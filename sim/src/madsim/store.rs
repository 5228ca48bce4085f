//! The simulated store: the verification layer's [`FaultTable`] behind a
//! [`DurableStore`] that delays every call, draws from the seed which fault
//! the table applies to it (an indeterminate error applied or lost, a stale
//! view), and crashes and corrupts the table when the run says so.
//!
//! The table holds the streams, their durable prefixes, the meaning of each
//! fault and who appended each unflushed entry; this file holds only what is
//! the simulation's: delays, the draws, awaiting, the store being down, and
//! the words the caller hears.
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

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use atmostonce::DurabilityError;
use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce_verify::oracle::{SpecAnswer, record};
use atmostonce_verify::table::{Call, CallFault, Corruption, FaultTable};

use super::rng::sim_rng;
use crate::config::{Draw, SplitMix};
use crate::history::{FaultEvent, OpId, Process};
use crate::world::janitor::janitor_below;
use crate::world::{Env, World};
use atmostonce_verify::served::ServeRequest;

/// Most entries a stale read hides: a replica a few appends behind.
const MAX_STALE_ENTRIES: u64 = 3;

/// The base delay of every store call (madsim sleeps at least 1 ms): long
/// enough that concurrent operations interleave between their calls.
const BASE_DELAY_MS: u64 = 1;

#[derive(Debug)]
struct State {
    /// The streams, their durable prefixes, the fault semantics and who
    /// appended each unflushed entry.
    table: FaultTable,
    /// Crashes so far: a call that began in an earlier epoch was cut off.
    epoch: u64,
    down: bool,
    /// Reads of unflushed slots since the last flush: `(stream, sequence,
    /// reader)`; a crash that drops the slot makes the reader's answer dirty.
    dirty: Vec<(String, u64, OpId)>,
    /// The janitor, when `compaction` is on.
    janitor: Option<Janitor>,
}

impl Default for State {
    fn default() -> Self {
        let mut table = FaultTable::new();
        // Calls are attributed here, from each reply: the table's log of
        // every call would only grow.
        table.record_calls(false);
        State {
            table,
            epoch: 0,
            down: false,
            dirty: Vec::new(),
            janitor: None,
        }
    }
}

/// The store shared by every handle.
#[derive(Debug, Default)]
pub(crate) struct StoreCore {
    state: Mutex<State>,
}

impl StoreCore {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The simulation is single-threaded and no code panics while holding
        // the lock (which does not poison).
        self.state.lock()
    }

    /// A store crash: every stream loses its unflushed tail, readers of that
    /// tail are flagged dirty, appenders whose entry vanished are told, and
    /// the store stays down until [`restart`](StoreCore::restart). Every
    /// connection is reset, so the loss is heard only by the calls in flight.
    pub(crate) fn crash<E: Env>(&self, world: &World<E>) {
        let mut state = self.lock();
        let dropped = state.table.crash_reconnecting();
        let mut history = world.history();
        for entry in &dropped {
            if let Some(op) = entry.appended_by.op.and_then(|op| OpId::try_from(op).ok()) {
                history.dropped(op);
            }
        }
        for (stream, sequence, reader) in &state.dirty {
            if dropped
                .iter()
                .any(|entry| entry.stream == *stream && entry.sequence == *sequence)
            {
                history.flag_dirty(*reader);
            }
        }
        state.dirty.clear();
        state.epoch += 1;
        state.down = true;
        let dropped = dropped
            .into_iter()
            .map(|entry| (entry.stream, entry.sequence))
            .collect();
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
        // Only the records the store still holds: a compacted stream's
        // entries start above sequence 0.
        let total: u64 = state
            .table
            .stream_names()
            .map(|stream| state.table.entries(stream).len() as u64)
            .sum();
        if total == 0 {
            return;
        }
        let mut pick = rng.range(0, total - 1);
        let Some((stream, entry)) = state.table.stream_names().find_map(|stream| {
            let entries = state.table.entries(stream);
            match usize::try_from(pick).ok().and_then(|at| entries.get(at)) {
                Some(entry) => Some((stream.to_owned(), entry.clone())),
                None => {
                    pick -= entries.len() as u64;
                    None
                }
            }
        }) else {
            return;
        };
        let sequence = entry.sequence;
        // Read by the oracle's reference decoder (`docs/record-format.md`),
        // not the engine's codec: the bookkeeping of what was corrupted must
        // not share a codec bug with the engine it judges.
        let Ok(record) = record::decode(&entry.payload) else {
            return; // already corrupt
        };
        let Some(key) = world.key_id(record.key()) else {
            return;
        };
        let len = entry.payload.len() as u64;
        let (corruption, how) = if rng.chance(500) && len > 0 {
            let kept = usize::try_from(rng.range(0, len - 1)).unwrap_or(0);
            (
                Corruption::Truncate { len: kept },
                format!("truncated to {kept} bytes"),
            )
        } else {
            let bit = rng.range(0, len * 8 - 1);
            let byte = usize::try_from(bit / 8).unwrap_or(0);
            let corruption = Corruption::BitFlip {
                byte,
                bit: u8::try_from(bit % 8).unwrap_or(0),
            };
            (corruption, format!("bit {bit} flipped"))
        };
        state.table.corrupt(&stream, sequence, &corruption);
        world.history().event(world.fault(FaultEvent::Corruption {
            key,
            stream,
            sequence,
            how,
        }));
    }

    /// Starts the janitor (`compaction`): from now on, the first store call
    /// served after each of its due times (about every `every_ms`) is
    /// preceded by a compaction of a random stream.
    ///
    /// It runs inside the store, between calls, and draws from a stream of
    /// its own seeded by the run's seed, never from madsim's: a task of its
    /// own or draws from the shared generator would change every later
    /// draw of the run, and with them the schedule of every seed recorded
    /// before the fault existed (`sim/regressions.toml`). So a seed that
    /// draws `compaction` runs as it did without it until a compaction
    /// changes an answer.
    pub(crate) fn start_janitor(&self, every_ms: u64, seed: u64) {
        let mut rng = SplitMix(seed ^ JANITOR_SALT);
        let next_at_ms = rng.around(every_ms);
        self.lock().janitor = Some(Janitor {
            rng,
            every_ms,
            next_at_ms,
        });
    }

    /// The quiet phase: the store is up and stays up.
    pub(crate) fn heal(&self) {
        self.lock().down = false;
    }
}

/// The janitor's side stream and its next due time (simulated ms).
#[derive(Debug)]
struct Janitor {
    rng: SplitMix,
    every_ms: u64,
    next_at_ms: u64,
}

/// Sets the janitor's stream apart from the seed's other uses.
const JANITOR_SALT: u64 = 0x6a61_6e69_746f_7221;

impl State {
    /// If the janitor is due at `now_ms`, compacts one random stream below a
    /// sequence drawn by [`janitor_below`], through the table's own
    /// compaction (the engine's path, so the table's
    /// [`history`](FaultTable::history) keeps what went), and returns the
    /// event to record.
    fn janitor_step(&mut self, now_ms: u64, true_millis: u64) -> Option<FaultEvent> {
        let janitor = self.janitor.as_mut()?;
        if now_ms < janitor.next_at_ms {
            return None;
        }
        janitor.next_at_ms = now_ms + janitor.rng.around(janitor.every_ms);
        let count = self.table.stream_names().count() as u64;
        let pick = usize::try_from(janitor.rng.range(0, count.checked_sub(1)?)).ok()?;
        let (stream, len) = self
            .table
            .stream_lengths()
            .nth(pick)
            .map(|(stream, len)| (stream.to_owned(), len as u64))?;
        let below_seq = janitor_below(len, &mut janitor.rng)?;
        let request = StoreRequest::Compact {
            stream: stream.clone(),
            below_seq,
        };
        self.table.set_now_millis(true_millis);
        let reply =
            self.table
                .serve_with(Call::new(JANITOR_SESSION, None), &request, CallFault::None);
        let removed = match reply {
            StoreReply::Compact(Ok(removed)) => removed,
            _ => 0,
        };
        Some(FaultEvent::Compaction {
            stream,
            below_seq,
            removed,
        })
    }
}

/// The table's session of the janitor (`compaction`), apart from every
/// caller's (see [`session_of`]).
const JANITOR_SESSION: u32 = u16::MAX as u32 + 3;

/// One caller's handle on the simulated store.
pub(crate) struct FaultStore<E: Env> {
    core: Arc<StoreCore>,
    world: Arc<World<E>>,
    caller: Process,
}

/// The name of a request's kind, for the history's fault events.
fn call_name(request: &StoreRequest) -> &'static str {
    match request {
        StoreRequest::Append { .. } => "append",
        StoreRequest::Read { .. } => "read",
        StoreRequest::Scan { .. } => "scan",
        StoreRequest::Flush => "flush",
        StoreRequest::ReadHead { .. } => "read-head",
        StoreRequest::ScanHeads { .. } => "scan-heads",
        StoreRequest::Compact { .. } => "compact",
    }
}

/// The table's session of a caller (every producer incarnation of one node
/// shares it: a crash resets connections, see [`StoreCore::crash`]).
fn session_of(caller: Process) -> u32 {
    match caller {
        Process::Producer(index) => u32::from(index),
        Process::Sweeper => u32::from(u16::MAX) + 1,
        Process::Probe => u32::from(u16::MAX) + 2,
    }
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
    fn expire_op(&self, request: &StoreRequest) -> Option<OpId> {
        let StoreRequest::Append {
            stream, payload, ..
        } = request
        else {
            return None;
        };
        self.world.expire_invocation(self.caller, stream, payload)
    }

    async fn call(&self, request: StoreRequest) -> Result<StoreReply, DurabilityError> {
        let expire = self.expire_op(&request);
        let op = expire.or_else(|| self.world.current_op(self.caller));
        let epoch = self.core.lock().epoch;
        let delay_ms = BASE_DELAY_MS + self.extra_delay_ms();
        madsim::time::sleep(Duration::from_millis(delay_ms)).await;
        let mut result = self.act(&request, op, epoch);
        if result.is_ok() {
            let extra_ms = self.extra_delay_ms();
            if extra_ms > 0 {
                madsim::time::sleep(Duration::from_millis(extra_ms)).await;
                if self.core.lock().epoch != epoch {
                    self.record_error(op, &request, true);
                    result = Err(DurabilityError::StoreError(
                        "connection reset: the store crashed before it answered".into(),
                    ));
                }
            }
        }
        if let Some(expire) = expire {
            let answer = match &result {
                Ok(StoreReply::Append(Err(error))) | Err(error) => Err(error.clone()),
                Ok(_) => Ok(SpecAnswer::Done),
            };
            let now_us = self.world.now_us();
            self.world.history().respond(expire, answer, now_us);
        }
        result
    }

    fn record_error(&self, op: Option<OpId>, request: &StoreRequest, applied: bool) {
        let event = self.world.fault(FaultEvent::StoreCallError {
            op,
            call: call_name(request),
            applied,
        });
        self.world.history().event(event);
    }

    /// The call takes effect (or fails) at one instant: this draws the
    /// fault from the seed and the table serves the call with it.
    fn act(
        &self,
        request: &StoreRequest,
        op: Option<OpId>,
        epoch: u64,
    ) -> Result<StoreReply, DurabilityError> {
        let config = &self.world.config;
        let faults_on = self.world.faults_on();
        let mut state = self.core.lock();
        if state.down || state.epoch != epoch {
            drop(state);
            self.record_error(op, request, false);
            return Err(injected("connection reset: the store crashed"));
        }
        if faults_on
            && let Some(event) =
                state.janitor_step(self.world.now_us() / 1000, self.world.true_millis())
        {
            self.world.history().event(self.world.fault(event));
        }
        let mut rng = sim_rng();
        let call = Call::new(session_of(self.caller), op.map(u64::from));
        if faults_on && config.error_lost_pm > 0 && rng.chance(config.error_lost_pm) {
            state.table.serve_with(call, request, CallFault::ErrorLost);
            drop(state);
            self.record_error(op, request, false);
            return Err(injected("timeout: the request was lost"));
        }
        // Stale reads hide the newest 1-3 entries; the draw happens for
        // reads and scans only, before the call is served.
        let mut stale = || {
            if faults_on && config.stale_pm > 0 && rng.chance(config.stale_pm) {
                rng.range(1, MAX_STALE_ENTRIES)
            } else {
                0
            }
        };
        let hidden = match request {
            StoreRequest::Read { stream, .. } | StoreRequest::ReadHead { stream } => {
                stale().min(state.table.len(stream) as u64)
            }
            StoreRequest::Scan { .. } | StoreRequest::ScanHeads { .. } => stale(),
            StoreRequest::Append { .. } | StoreRequest::Flush | StoreRequest::Compact { .. } => 0,
        };
        // An error-applied fault is drawn only for a call that takes effect:
        // a flush, or an append that lands.
        let takes_effect = match request {
            StoreRequest::Append {
                stream,
                expected_seq,
                ..
            } => state.table.append_would_land(stream, *expected_seq),
            StoreRequest::Flush | StoreRequest::Compact { .. } => true,
            StoreRequest::Read { .. }
            | StoreRequest::Scan { .. }
            | StoreRequest::ReadHead { .. }
            | StoreRequest::ScanHeads { .. } => false,
        };
        let error_applied = faults_on
            && takes_effect
            && config.error_applied_pm > 0
            && rng.chance(config.error_applied_pm);
        let fault = if error_applied {
            CallFault::ErrorApplied
        } else if hidden > 0 {
            CallFault::StaleBy(usize::try_from(hidden).unwrap_or(usize::MAX))
        } else {
            CallFault::None
        };
        state.table.set_now_millis(self.world.true_millis());
        // A stale scan is flagged only if it hid something: if it shows
        // fewer entries than the streams it covers hold.
        let scan_len_unhidden = match request {
            StoreRequest::Scan { prefix } if hidden > 0 => Some(
                state
                    .table
                    .stream_lengths()
                    .filter(|(name, _)| name.starts_with(prefix.as_str()))
                    .map(|(_, len)| len)
                    .sum::<usize>(),
            ),
            _ => None,
        };
        // A stale head or page of heads is flagged when it differs from the
        // current one.
        let heads_unhidden = match request {
            StoreRequest::ReadHead { stream } if hidden > 0 => {
                Some(vec![state.table.head_view(stream, CallFault::None).last])
            }
            StoreRequest::ScanHeads {
                prefix,
                after,
                limit,
            } if hidden > 0 => Some(
                state
                    .table
                    .heads_view(prefix, after.as_deref(), *limit, CallFault::None)
                    .into_iter()
                    .map(|head| Some(head.last))
                    .collect(),
            ),
            _ => None,
        };
        let (reply, landed_at) = state.table.serve_landed(call, request, fault);
        match (request, &reply) {
            (StoreRequest::Append { stream, .. }, _) => {
                if let (Some(op), Some(sequence)) = (op, landed_at) {
                    self.world.history().applied(op, (stream.clone(), sequence));
                }
            }
            (
                StoreRequest::Read {
                    stream,
                    offset,
                    limit,
                },
                StoreReply::Read(Ok(entries)),
            ) => {
                let len = state.table.len(stream) as u64;
                let visible = len - hidden;
                let window_end = offset.saturating_add(*limit as u64);
                if hidden > 0 && *offset < len && window_end > visible {
                    self.flag_stale(op, hidden);
                }
                if let Some(op) = op {
                    let durable = state.table.durable_len(stream) as u64;
                    for entry in entries.iter().filter(|entry| entry.sequence >= durable) {
                        state.dirty.push((stream.clone(), entry.sequence, op));
                    }
                }
            }
            (StoreRequest::Scan { .. }, StoreReply::Scan(Ok(entries)))
                if scan_len_unhidden.is_some_and(|all| entries.len() < all) =>
            {
                self.flag_stale(op, hidden);
            }
            (StoreRequest::ReadHead { stream }, StoreReply::Head(Ok(head))) => {
                if heads_unhidden.is_some_and(|now| now != [head.last.clone()]) {
                    self.flag_stale(op, hidden);
                }
                if let (Some(op), Some(last)) = (op, &head.last) {
                    let durable = state.table.durable_len(stream) as u64;
                    if last.sequence >= durable {
                        state.dirty.push((stream.clone(), last.sequence, op));
                    }
                }
            }
            (StoreRequest::ScanHeads { .. }, StoreReply::Heads(Ok(heads)))
                if heads_unhidden.as_ref().is_some_and(|now| {
                    *now != heads
                        .iter()
                        .map(|head| Some(head.last.clone()))
                        .collect::<Vec<_>>()
                }) =>
            {
                self.flag_stale(op, hidden);
            }
            (StoreRequest::Flush, _) => state.dirty.clear(),
            _ => {}
        }
        drop(state);
        if error_applied {
            self.record_error(op, request, true);
            return Err(injected("timeout: no answer (the request was applied)"));
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
}

/// An injected indeterminate failure, in the words the caller hears.
fn injected(message: &str) -> DurabilityError {
    DurabilityError::StoreError(message.into())
}

impl<E: Env> ServeRequest for FaultStore<E> {
    fn serve(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreReply, DurabilityError>> + Send + '_ {
        self.call(request)
    }

    /// Acknowledged appends are volatile until a flush: the engine must
    /// flush before it acknowledges, and the crash fault tests that it does.
    fn acknowledged_appends_are_durable(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "the simulated store"
    }
}
