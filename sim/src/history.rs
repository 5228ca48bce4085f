//! The history of one run: every operation from invocation to response,
//! every delivery, every fault, and the trace hash over all of it.
//!
//! These types are runtime-agnostic (no madsim): the simulator fills a
//! [`History`] from inside a simulation, and a live mode against real stores
//! can fill one from real tasks and hand it to the same checker.

mod events;
mod fenced;

use std::hash::{Hash, Hasher};

use atmostonce::DurabilityError;
use atmostonce_verify::oracle::fenced::{FencedOp, FencedParams, FencedResponse};
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};

pub use events::{Event, FaultEvent};
pub use fenced::{
    FencedCall, claim_answer, classify, lookup_answer, seed_answer, seed_view, token_of,
};

/// An operation's index in [`History::ops`].
pub type OpId = u32;
/// A key's index in [`History::keys`].
pub type KeyId = u16;

/// The claim of a delivery no claim authorised: a user's handler
/// (`atmostonce_sim::harness`) reported a side effect for a message it never
/// claimed. No operation has this id; A1 reports such a delivery.
pub const NO_CLAIM: OpId = OpId::MAX;

/// Who invoked an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    /// Producer number n (a simulated node that can crash and restart).
    Producer(u16),
    /// The sweeper (its expiries are operations too).
    Sweeper,
    /// The final probe that reads every key after the quiet phase (A2).
    Probe,
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Process::Producer(n) => write!(f, "p{n}"),
            Process::Sweeper => write!(f, "sweeper"),
            Process::Probe => write!(f, "probe"),
        }
    }
}

/// Whether an append the store performed for an operation is still in the
/// store: the store knows, the engine's caller does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WriteTruth {
    /// No append of this operation was applied (as far as the store knows).
    #[default]
    None,
    /// At least one append of this operation was applied and is still there.
    Applied,
    /// Its append was applied, then dropped by a store crash before a flush.
    Dropped,
}

/// One operation: invocation, response (if any) and what the store saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// Its index in [`History::ops`].
    pub id: OpId,
    /// Who invoked it.
    pub process: Process,
    /// Which incarnation of the process (a producer restarts with no memory).
    pub incarnation: u32,
    /// The key.
    pub key: KeyId,
    /// The operation and its parameters, as the seed specification sees
    /// it (for a fenced operation, its seed view: [`seed_view`]).
    pub op: SpecOp,
    /// Invocation time, microseconds since the run started.
    pub call_us: u64,
    /// Response time; `None` when the process crashed before the answer.
    /// (Live mode may bound a crashed operation's effects by a time with no
    /// answer: see [`History::cut_off`].)
    pub ret_us: Option<u64>,
    /// The answer; `None` when there was none.
    pub result: Option<Result<SpecAnswer, DurabilityError>>,
    /// For a completion or release: the claim it finishes.
    pub claim: Option<OpId>,
    /// A read of this operation was served from an older snapshot.
    pub stale_read: bool,
    /// A read of this operation returned a record that a store crash later
    /// dropped (it was never flushed).
    pub dirty_read: bool,
    /// What became of this operation's appends.
    pub write: WriteTruth,
    /// For an expiry: the stream slot its tombstone went to.
    pub slot: Option<(String, u64)>,
    /// For an operation of the fenced API: the operation and its answer in
    /// the fenced specification's words.
    pub fenced: Option<FencedCall>,
}

impl OpRecord {
    /// True when the operation answered with `Claimed`.
    #[must_use]
    pub fn granted(&self) -> bool {
        matches!(
            self.result,
            Some(Ok(SpecAnswer::Decision(atmostonce::DedupDecision::Claimed)))
        )
    }

    /// A short name: `claim`, `lookup`, `complete`, `release`, `renew`,
    /// `expire`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match &self.fenced {
            Some(FencedCall {
                op: FencedOp::Renew { .. },
                ..
            }) => "renew",
            _ => op_name(&self.op),
        }
    }

    /// The response time, or `u64::MAX` when it never answered.
    #[must_use]
    pub fn ret_or_max(&self) -> u64 {
        self.ret_us.unwrap_or(u64::MAX)
    }
}

/// The short name of a specification operation.
#[must_use]
pub fn op_name(op: &SpecOp) -> &'static str {
    match op {
        SpecOp::Claim { .. } => "claim",
        SpecOp::Lookup => "lookup",
        SpecOp::Complete { .. } => "complete",
        SpecOp::Release => "release",
        SpecOp::Expire => "expire",
    }
}

/// Everything that happened in one run.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The keys, by [`KeyId`].
    pub keys: Vec<String>,
    /// For each key, whether its stream is shared with another key of the
    /// workload (forced hash collisions), which makes `DedupCollision` an
    /// admissible answer.
    pub shared_stream: Vec<bool>,
    /// The stream each key lives in.
    pub streams: Vec<String>,
    /// Every operation, in invocation order.
    pub ops: Vec<OpRecord>,
    /// Deliveries, faults and phase changes, in order.
    pub events: Vec<Event>,
    /// When the quiet phase (no more faults) began, if it did.
    pub quiet_from_us: Option<u64>,
    /// The shortest time a stored entry must live, in true time: TTL + the
    /// sweeper's grace − the largest clock skew. A1 holds deliveries to one
    /// per such window. `None`: the recorder does not know it.
    pub dedup_window_us: Option<u64>,
    /// The fenced cache's settings when the history is of the fenced API
    /// (its rules judge it then); `None` for the seed API.
    pub fenced: Option<FencedParams>,
    trace: TraceHash,
}

/// FNV-1a over a canonical encoding of every change to the history: two
/// runs with the same trace hash made the same calls with the same answers
/// at the same simulated times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    /// Anything hashable: the derived `Hash` of our types and the engine's
    /// is a fixed walk over their fields, so it is stable for one build.
    fn debug(&mut self, value: &impl Hash) {
        value.hash(self);
    }
}

impl Hasher for TraceHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }
}

impl History {
    /// An empty history over these keys and their streams.
    #[must_use]
    pub fn new(keys: Vec<String>, streams: Vec<String>) -> History {
        let shared_stream = streams
            .iter()
            .map(|stream| streams.iter().filter(|other| *other == stream).count() > 1)
            .collect();
        let mut history = History {
            keys,
            shared_stream,
            streams,
            ..History::default()
        };
        for (key, stream) in history.keys.iter().zip(&history.streams) {
            history.trace.bytes(key.as_bytes());
            history.trace.bytes(stream.as_bytes());
        }
        history
    }

    /// The trace hash so far.
    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.trace.0
    }

    /// The key id of `key`, if it is one of the workload's.
    #[must_use]
    pub fn key_id(&self, key: &str) -> Option<KeyId> {
        self.keys
            .iter()
            .position(|candidate| candidate == key)
            .and_then(|index| KeyId::try_from(index).ok())
    }

    /// The keys whose stream is `stream`.
    pub fn keys_of_stream<'a>(&'a self, stream: &'a str) -> impl Iterator<Item = KeyId> + 'a {
        self.streams
            .iter()
            .enumerate()
            .filter(move |(_, candidate)| *candidate == stream)
            .filter_map(|(index, _)| KeyId::try_from(index).ok())
    }

    /// Feeds anything that shaped the run (its configuration) into the
    /// trace hash.
    pub fn hash_in(&mut self, value: &impl Hash) {
        self.trace.debug(value);
    }

    /// Records an invocation and returns its id.
    pub fn invoke(
        &mut self,
        process: Process,
        incarnation: u32,
        key: KeyId,
        op: SpecOp,
        claim: Option<OpId>,
        call_us: u64,
    ) -> OpId {
        // A run is bounded to far fewer than 2^32 operations (see
        // limits in config.rs), so the index always fits.
        let id = OpId::try_from(self.ops.len()).unwrap_or(OpId::MAX);
        self.trace.u64(u64::from(id));
        self.trace
            .debug(&(process, incarnation, key, &op, claim, call_us));
        self.ops.push(OpRecord {
            id,
            process,
            incarnation,
            key,
            op,
            call_us,
            ret_us: None,
            result: None,
            claim,
            stale_read: false,
            dirty_read: false,
            write: WriteTruth::None,
            slot: None,
            fenced: None,
        });
        id
    }

    /// Records the invocation of a fenced operation (its seed view in
    /// [`OpRecord::op`]) and returns its id.
    pub fn invoke_fenced(
        &mut self,
        process: Process,
        incarnation: u32,
        key: KeyId,
        op: FencedOp,
        claim: Option<OpId>,
        call_us: u64,
    ) -> OpId {
        let id = self.invoke(process, incarnation, key, seed_view(&op), claim, call_us);
        self.trace.debug(&op);
        if let Some(record) = self.ops.get_mut(id as usize) {
            record.fenced = Some(FencedCall { op, answer: None });
        }
        id
    }

    /// Records the response of fenced operation `id`: the engine's error,
    /// or its answer in the fenced specification's words.
    pub fn respond_fenced(
        &mut self,
        id: OpId,
        answer: Result<FencedResponse, DurabilityError>,
        ret_us: u64,
    ) {
        let Some(FencedCall { op, .. }) =
            self.ops.get(id as usize).and_then(|op| op.fenced.as_ref())
        else {
            return;
        };
        let classified = match &answer {
            Ok(response) => response.clone(),
            Err(error) => Err(classify(error)),
        };
        let seed = match answer {
            Ok(Ok(answer)) => Ok(seed_answer(&answer, op)),
            // An answer the oracle has no word for: the seed view keeps a
            // plain `Done` and the fenced answer the unclassified error the
            // checker reports.
            Ok(Err(_)) => Ok(SpecAnswer::Done),
            Err(error) => Err(error),
        };
        self.respond(id, seed, ret_us);
        self.trace.debug(&classified);
        if let Some(FencedCall { answer, .. }) = self
            .ops
            .get_mut(id as usize)
            .and_then(|op| op.fenced.as_mut())
        {
            *answer = Some(classified);
        }
    }

    /// Records the response of operation `id`. A fenced expiry (the
    /// sweeper's release, answered by the store) gets its fenced answer
    /// from it too.
    pub fn respond(&mut self, id: OpId, result: Result<SpecAnswer, DurabilityError>, ret_us: u64) {
        self.trace.u64(u64::from(id));
        self.trace.debug(&(&result, ret_us));
        if let Some(op) = self.ops.get_mut(id as usize) {
            if let Some(FencedCall {
                op: FencedOp::Expire { .. },
                answer,
            }) = &mut op.fenced
            {
                *answer = Some(match &result {
                    Ok(_) => Ok(atmostonce_verify::oracle::fenced::FencedAnswer::Done),
                    Err(error) => Err(classify(error)),
                });
            }
            op.ret_us = Some(ret_us);
            op.result = Some(result);
        }
    }

    /// Notes that an append of operation `id` was applied at `slot`.
    pub fn applied(&mut self, id: OpId, slot: (String, u64)) {
        self.trace.u64(u64::from(id));
        self.trace.debug(&slot);
        if let Some(op) = self.ops.get_mut(id as usize) {
            op.write = WriteTruth::Applied;
            if matches!(op.op, SpecOp::Expire) {
                op.slot = Some(slot);
            }
        }
    }

    /// Live mode: operation `id` never answered because its process was
    /// killed, and neither the process nor any store call of the operation
    /// could act after `until_us` (the process was gone and its last call
    /// had ended): whatever it did, it did before then.
    pub fn cut_off(&mut self, id: OpId, until_us: u64) {
        self.trace.u64(u64::from(id));
        self.trace.u64(until_us);
        if let Some(op) = self.ops.get_mut(id as usize)
            && op.result.is_none()
        {
            op.ret_us = Some(until_us.max(op.call_us));
        }
    }

    /// Live mode: fills in what the store crash recorded as event number
    /// `event` dropped, once the restarted store has been read back.
    pub fn crash_losses(&mut self, event: usize, lost: Vec<(String, u64)>) {
        self.trace.debug(&(event, &lost));
        if let Some(Event::Fault {
            fault: FaultEvent::StoreCrash { dropped },
            ..
        }) = self.events.get_mut(event)
        {
            *dropped = lost;
        }
    }

    /// Notes that operation `id`'s applied append was dropped by a crash.
    pub fn dropped(&mut self, id: OpId) {
        if let Some(op) = self.ops.get_mut(id as usize) {
            op.write = WriteTruth::Dropped;
        }
    }

    /// Flags operation `id` as having read from an older snapshot.
    pub fn flag_stale(&mut self, id: OpId) {
        if let Some(op) = self.ops.get_mut(id as usize) {
            op.stale_read = true;
        }
    }

    /// Flags operation `id` as having read a record a crash later dropped.
    pub fn flag_dirty(&mut self, id: OpId) {
        if let Some(op) = self.ops.get_mut(id as usize) {
            op.dirty_read = true;
        }
    }

    /// Records a delivery, fault or phase change.
    pub fn event(&mut self, event: Event) {
        self.trace.debug(&event);
        if let Event::Fault {
            at_us,
            fault: FaultEvent::QuietPhase,
        } = &event
        {
            self.quiet_from_us = Some(*at_us);
        }
        self.events.push(event);
    }

    /// Every operation on `key`, in invocation order.
    pub fn ops_of(&self, key: KeyId) -> impl Iterator<Item = &OpRecord> + '_ {
        self.ops.iter().filter(move |op| op.key == key)
    }

    /// Keys with a corrupted record (their stream cannot be trusted).
    #[must_use]
    pub fn corrupted_keys(&self) -> Vec<KeyId> {
        let mut keys: Vec<KeyId> = self
            .events
            .iter()
            .filter_map(|event| match event {
                Event::Fault {
                    fault: FaultEvent::Corruption { key, .. },
                    ..
                } => Some(*key),
                _ => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The end of the run: the latest time anything happened.
    #[must_use]
    pub fn end_us(&self) -> u64 {
        let ops = self
            .ops
            .iter()
            .map(|op| op.ret_us.unwrap_or(op.call_us))
            .max()
            .unwrap_or(0);
        let events = self.events.iter().map(Event::at_us).max().unwrap_or(0);
        ops.max(events)
    }
}

/// How a delivery's claim reads in a report: `claim op N`, or `no claim`.
#[must_use]
pub fn claim_label(claim: OpId) -> String {
    if claim == NO_CLAIM {
        "no claim".to_owned()
    } else {
        format!("claim op {claim}")
    }
}

/// The receipt a producer stores for the claim `claim` of `key`: it names
/// the key and the operation, so the checker can tell whose it is (S3, S6).
#[must_use]
pub fn receipt_for(key: &str, process: Process, claim: OpId) -> Vec<u8> {
    format!("{key}|{process}|c{claim}").into_bytes()
}

/// The other receipt of a duplicate completion of `claim` (see the
/// workload's echo): same key, different bytes.
#[must_use]
pub fn echo_receipt_for(key: &str, process: Process, claim: OpId) -> Vec<u8> {
    format!("{key}|{process}|e{claim}").into_bytes()
}

/// The key a receipt made by [`receipt_for`] names.
#[must_use]
pub fn receipt_key(receipt: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(receipt).ok()?;
    text.split('|').next()
}

#[cfg(test)]
mod tests;
