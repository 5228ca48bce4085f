//! Live mode's surroundings ([`Live`], the [`Env`] of a live run): tokio's
//! clock, sleep and tasks, and each caller's recording handle on the real
//! store ([`Recording`]), which attributes store calls to the history's
//! operations and keeps the [`Ledger`] that a store crash is judged by.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use atmostonce::{
    DurabilityError, DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead,
};
use atmostonce_verify::oracle::SpecAnswer;

use crate::config::{Draw, SplitMix};
use crate::history::{FaultEvent, OpId, Process};
use crate::world::{Env, World};

/// The world of a live run.
pub(crate) type LiveWorld = World<Live>;

/// A live run's surroundings.
pub(crate) struct Live {
    start: Instant,
    seed: u64,
    draws: AtomicU64,
    /// The store under test (with a planted mistake, if any).
    pub(crate) store: Arc<dyn DurableStore>,
    /// What the run knows the store acknowledged and served.
    pub(crate) ledger: Ledger,
    /// `latency`: per mille of store calls delayed, and the longest delay.
    latency: (u32, u64),
    /// Whether reads are recorded in the ledger (only a store that can
    /// crash needs them).
    track_reads: bool,
    /// Store calls delayed by the `latency` fault.
    pub(crate) delayed_calls: AtomicU64,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Live {
    pub(crate) fn new(
        seed: u64,
        store: Arc<dyn DurableStore>,
        latency: (u32, u64),
        track_reads: bool,
    ) -> Live {
        Live {
            start: Instant::now(),
            seed,
            draws: AtomicU64::new(0),
            store,
            ledger: Ledger::default(),
            latency,
            track_reads,
            delayed_calls: AtomicU64::new(0),
        }
    }
}

impl Env for Live {
    type Rng = SplitMix;

    fn rng(&self) -> SplitMix {
        // Each task draws from its own generator, derived from the run's
        // seed: a live run is not deterministic, but its draws are.
        let draw = self.draws.fetch_add(1, Ordering::Relaxed);
        SplitMix(self.seed ^ draw.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn wall_millis(&self) -> u64 {
        atmostonce::wall_clock_millis()
    }

    fn sleep_ms(&self, ms: u64) -> impl std::future::Future<Output = ()> + Send {
        tokio::time::sleep(Duration::from_millis(ms))
    }

    fn store_for(world: &Arc<LiveWorld>, process: Process) -> Arc<dyn DurableStore> {
        Arc::new(Recording {
            world: world.clone(),
            caller: process,
        })
    }
}

/// A payload's fingerprint in the ledger (64 bits: two different records
/// at one slot collide with odds of 2^-64).
pub(crate) fn fingerprint(payload: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

/// One caller's handle on the store under test.
///
/// Every append runs as its own task, so that a producer aborted in the
/// middle of one (the `producer-crash` fault) does not cancel it: as with a
/// real process, a request already sent is carried out or fails on its
/// own. The task notes what the store answered (an applied append in the
/// history and the ledger, an error as a fault event, the sweeper's
/// tombstones as `expire` operations) and when the call ended, which bounds
/// when an operation of a killed producer could have acted.
pub(crate) struct Recording {
    world: Arc<LiveWorld>,
    caller: Process,
}

impl Recording {
    /// The `latency` fault: sometimes an extra delay before or after a call.
    async fn delay(&self) {
        let (per_mille, max_ms) = self.world.env.latency;
        if per_mille == 0 || !self.world.faults_on() {
            return;
        }
        let mut rng = self.world.env.rng();
        if rng.chance(per_mille) {
            self.world.env.delayed_calls.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(rng.range(1, max_ms.max(1)))).await;
        }
    }

    fn failed(&self, op: Option<OpId>, call: &'static str, error: &DurabilityError) {
        record_failure(&self.world, op, call, error);
    }
}

pub(crate) fn record_failure(
    world: &LiveWorld,
    op: Option<OpId>,
    call: &'static str,
    error: &DurabilityError,
) {
    if matches!(error, DurabilityError::SequenceConflict { .. }) {
        return;
    }
    let event = world.fault(FaultEvent::StoreCallFailed {
        op,
        call,
        error: error.to_string(),
    });
    world.history().event(event);
}

impl DurableStore for Recording {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let expire = self.world.expire_invocation(self.caller, stream, payload);
            let op = expire.or_else(|| self.world.current_op(self.caller));
            self.delay().await;
            let world = self.world.clone();
            let (stream, payload) = (stream.to_owned(), payload.to_vec());
            world.env.ledger.call_started(op);
            let task = tokio::spawn(async move {
                let result = world
                    .env
                    .store
                    .append(&stream, &payload, expected_seq)
                    .await;
                let now_us = world.now_us();
                match &result {
                    Ok(sequence) => {
                        world.env.ledger.acknowledged(
                            &stream,
                            *sequence,
                            fingerprint(&payload),
                            op,
                        );
                        if let Some(op) = op {
                            world.history().applied(op, (stream.clone(), *sequence));
                        }
                    }
                    Err(error) => record_failure(&world, op, "append", error),
                }
                if let Some(expire) = expire {
                    let answer = result
                        .as_ref()
                        .map(|_| SpecAnswer::Done)
                        .map_err(Clone::clone);
                    world.history().respond(expire, answer, now_us);
                }
                world.env.ledger.call_ended(op, now_us);
                result
            });
            let result = task.await.unwrap_or_else(|error| {
                Err(DurabilityError::StoreError(format!(
                    "live mode: the append's task failed: {error}"
                )))
            });
            self.delay().await;
            result
        })
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        Box::pin(async move {
            let op = self.world.current_op(self.caller);
            self.delay().await;
            let result = self.world.env.store.read_from(stream, offset, limit).await;
            match &result {
                Ok(entries) => {
                    if let (true, Some(op)) = (self.world.env.track_reads, op) {
                        self.world.env.ledger.read(stream, entries, op);
                    }
                }
                Err(error) => self.failed(op, "read", error),
            }
            self.delay().await;
            result
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        Box::pin(async move {
            self.delay().await;
            let result = self.world.env.store.scan(prefix).await;
            if let Err(error) = &result {
                self.failed(None, "scan", error);
            }
            self.delay().await;
            result
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let op = self.world.current_op(self.caller);
            let result = self.world.env.store.flush().await;
            if let Err(error) = &result {
                self.failed(op, "flush", error);
            }
            result
        })
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.world.env.store.acknowledged_appends_are_durable()
    }

    // The head calls go to the store under test too (its own `read_head`,
    // `scan_heads` and `compact`, not the defaults over the four calls
    // above), so live mode runs the calls the engine makes in production.

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        Box::pin(async move {
            let op = self.world.current_op(self.caller);
            self.delay().await;
            let result = self.world.env.store.read_head(stream).await;
            match &result {
                Ok(head) => {
                    if let (true, Some(op), Some(last)) =
                        (self.world.env.track_reads, op, &head.last)
                    {
                        self.world
                            .env
                            .ledger
                            .read(stream, std::slice::from_ref(last), op);
                    }
                }
                Err(error) => self.failed(op, "read-head", error),
            }
            self.delay().await;
            result
        })
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        Box::pin(async move {
            self.delay().await;
            let result = self.world.env.store.scan_heads(prefix, after, limit).await;
            if let Err(error) = &result {
                self.failed(None, "scan-heads", error);
            }
            self.delay().await;
            result
        })
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            // Before the call: a failed compaction may have removed its
            // entries all the same.
            self.world.env.ledger.compacting(stream, below_seq);
            self.delay().await;
            let result = self.world.env.store.compact(stream, below_seq).await;
            if let Err(error) = &result {
                self.failed(None, "compact", error);
            }
            self.delay().await;
            result
        })
    }
}

/// An acknowledged append: its payload's fingerprint, the order in which
/// it was acknowledged, and the operation that made it.
#[derive(Debug, Clone, Copy)]
struct Acked {
    fingerprint: u64,
    order: u64,
    op: Option<OpId>,
}

#[derive(Debug, Default)]
struct LedgerState {
    /// Every acknowledged append, by stream and sequence.
    acked: HashMap<String, Vec<Option<Acked>>>,
    /// Acknowledgements so far (orders `Acked`).
    acks: u64,
    /// Reads of entries not known to be acknowledged when they were read:
    /// `(stream, sequence, fingerprint, reader)`. A store crash may drop
    /// such an entry (an append in flight when the server died), which
    /// makes its readers' answers dirty.
    unconfirmed: Vec<(String, u64, u64, OpId)>,
    /// Per operation: store calls in flight and the end of the last one.
    calls: HashMap<OpId, (u32, u64)>,
    /// Per stream, the sequence below which a compaction may have removed
    /// entries (`DurableStore::compact`): those are gone by right, not lost.
    compacted_below: HashMap<String, u64>,
}

/// What live mode knows of the store's side of the run: every acknowledged
/// append and every read of an entry not yet known durable. After a store
/// crash, the restarted store is read back and compared with it.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    state: Mutex<LedgerState>,
}

/// What a crash of the store lost, as found by reading it back.
#[derive(Debug, Clone, Default)]
pub(crate) struct Losses {
    /// Acknowledged appends missing or changed: `(stream, sequence, op)`.
    pub(crate) acknowledged: Vec<(String, u64, Option<OpId>)>,
    /// Every slot found lost (acknowledged or not), sorted.
    pub(crate) slots: Vec<(String, u64)>,
    /// Operations that had read an entry that was then lost.
    pub(crate) dirty_readers: Vec<OpId>,
}

/// A point in the ledger: what had been acknowledged and read before it.
#[derive(Debug)]
pub(crate) struct Mark {
    acks: u64,
    unconfirmed: Vec<(String, u64, u64, OpId)>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        self.state.lock()
    }

    fn call_started(&self, op: Option<OpId>) {
        if let Some(op) = op {
            self.lock().calls.entry(op).or_default().0 += 1;
        }
    }

    fn call_ended(&self, op: Option<OpId>, now_us: u64) {
        if let Some(op) = op {
            let mut state = self.lock();
            let calls = state.calls.entry(op).or_default();
            calls.0 = calls.0.saturating_sub(1);
            calls.1 = calls.1.max(now_us);
        }
    }

    /// When operation `op`'s last store call ended, if none is in flight
    /// (`Some(0)` if it made none).
    pub(crate) fn calls_done(&self, op: OpId) -> Option<u64> {
        match self.lock().calls.get(&op) {
            None => Some(0),
            Some((0, last_end_us)) => Some(*last_end_us),
            Some(_) => None,
        }
    }

    fn acknowledged(&self, stream: &str, sequence: u64, fingerprint: u64, op: Option<OpId>) {
        let Ok(index) = usize::try_from(sequence) else {
            return;
        };
        let mut state = self.lock();
        state.acks += 1;
        let order = state.acks;
        let slots = state.acked.entry(stream.to_owned()).or_default();
        if slots.len() <= index {
            slots.resize(index + 1, None);
        }
        slots[index] = Some(Acked {
            fingerprint,
            order,
            op,
        });
    }

    fn read(&self, stream: &str, entries: &[StoredEntry], reader: OpId) {
        let mut state = self.lock();
        let LedgerState {
            acked, unconfirmed, ..
        } = &mut *state;
        let slots = acked.get(stream);
        for entry in entries {
            let fingerprint = fingerprint(&entry.payload);
            let known = slots
                .and_then(|slots| slots.get(usize::try_from(entry.sequence).ok()?))
                .and_then(|slot| slot.as_ref())
                .is_some_and(|acked| acked.fingerprint == fingerprint);
            if !known {
                unconfirmed.push((stream.to_owned(), entry.sequence, fingerprint, reader));
            }
        }
    }

    /// A compaction of `stream` below `below_seq` is about to be asked for.
    pub(crate) fn compacting(&self, stream: &str, below_seq: u64) {
        let mut state = self.lock();
        let below = state.compacted_below.entry(stream.to_owned()).or_default();
        *below = (*below).max(below_seq);
    }

    /// Marks the ledger before the store is read back: what was
    /// acknowledged or read before now must be judged by that read.
    pub(crate) fn mark(&self) -> Mark {
        let mut state = self.lock();
        Mark {
            acks: state.acks,
            unconfirmed: std::mem::take(&mut state.unconfirmed),
        }
    }

    /// Compares the store read back after a crash (`present`: each stream's
    /// payload fingerprints by sequence, read after `mark`) with what had
    /// been acknowledged and read before `mark`.
    pub(crate) fn losses(&self, mark: Mark, present: &HashMap<String, Vec<u64>>) -> Losses {
        let there = |stream: &str, sequence: u64, fingerprint: u64| {
            present
                .get(stream)
                .and_then(|payloads| payloads.get(usize::try_from(sequence).ok()?))
                .is_some_and(|found| *found == fingerprint)
        };
        let mut losses = Losses::default();
        let mut state = self.lock();
        let LedgerState {
            acked,
            compacted_below,
            ..
        } = &mut *state;
        let compacted = |stream: &str, sequence: u64| {
            compacted_below
                .get(stream)
                .is_some_and(|below| sequence < *below)
        };
        for (stream, slots) in acked.iter_mut() {
            for (sequence, slot) in slots.iter_mut().enumerate() {
                let Some(acked) = *slot else { continue };
                let sequence = sequence as u64;
                if acked.order <= mark.acks
                    && !compacted(stream, sequence)
                    && !there(stream, sequence, acked.fingerprint)
                {
                    losses
                        .acknowledged
                        .push((stream.clone(), sequence, acked.op));
                    losses.slots.push((stream.clone(), sequence));
                    // Reported once: later crashes judge what is left.
                    *slot = None;
                }
            }
        }
        let compacted_below = state.compacted_below.clone();
        drop(state);
        for (stream, sequence, fingerprint, reader) in mark.unconfirmed {
            let compacted = compacted_below
                .get(&stream)
                .is_some_and(|below| sequence < *below);
            if !compacted && !there(&stream, sequence, fingerprint) {
                losses.slots.push((stream, sequence));
                losses.dirty_readers.push(reader);
            }
        }
        losses.acknowledged.sort();
        losses.slots.sort();
        losses.slots.dedup();
        losses.dirty_readers.sort_unstable();
        losses.dirty_readers.dedup();
        losses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledged_entry_a_compaction_removed_is_no_loss_and_one_above_it_is() {
        let ledger = Ledger::default();
        for op in 0..4u32 {
            let sequence = u64::from(op);
            ledger.acknowledged("sim:a", sequence, 10 + sequence, Some(op));
        }
        ledger.compacting("sim:a", 2);
        let mark = ledger.mark();
        // Read back: 0 and 1 compacted away, 2 kept, 3 lost.
        let present = HashMap::from([("sim:a".to_owned(), vec![0, 0, 12])]);
        let losses = ledger.losses(mark, &present);
        assert_eq!(losses.acknowledged, [("sim:a".to_owned(), 3, Some(3))]);
        assert_eq!(losses.slots, [("sim:a".to_owned(), 3)]);
    }
}
