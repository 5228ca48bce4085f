//! The `cache_ops` differential target: a short program of operations on a
//! few keys, run on the engine's pure state machines against a store that
//! injects faults, with the fuzzer choosing how concurrent operations
//! interleave. The run's history is judged by [`crate::history::verify`].
//!
//! A program has up to [`SLOTS`] operations in flight at once. `Start`
//! invokes an operation in a free slot; `Step` serves the pending store
//! request of the operation in a slot, with a [`Fault`]; `Advance` moves the
//! clock. After the last action every operation still in flight is stepped
//! to its end without faults (the engine bounds its own retries, so this
//! terminates; [`MAX_DRAIN_STEPS`] catches it if it did not).

use atmostonce::DurabilityError;
use atmostonce::core::{
    ClaimOp, CompleteOp, DedupDecision, LookupOp, Operation, Protocol, ReleaseOp, Step, StoreReply,
    StoreRequest, SweepOp,
};
use atmostonce_verify::oracle::naming::stream_name_with_hash_bits;
use atmostonce_verify::oracle::record::{Record, decode};
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};
use atmostonce_verify::table::{Call, CallFault, FaultTable};

use crate::history::{
    Event, Exemption, History, Verdict, Violation, stream_holds_other_key, verify,
};

/// Operations a program may have in flight at once.
pub const SLOTS: usize = 4;
/// Actions of a program that are run; the rest are ignored. It keeps one
/// execution fast and one key's history within
/// [`MAX_EVENTS_PER_KEY`](crate::history::MAX_EVENTS_PER_KEY).
pub const MAX_ACTIONS: usize = 64;
/// Keys a program works on.
pub const KEY_SLOTS: usize = 3;
/// Steps the final drain may take: far above what the engine's bounded
/// retries need for [`MAX_ACTIONS`] operations (each op re-reads at most
/// `MAX_CONFLICT_ROUNDS + MAX_RESOLVE_READS` times a stream of at most
/// `MAX_ACTIONS` records), so hitting it means an operation does not end.
pub const MAX_DRAIN_STEPS: usize = 100_000;
/// The clock a program starts at, in milliseconds since the Unix epoch.
pub const START_MILLIS: u64 = 1_700_000_000_000;
/// Largest single clock advance, in milliseconds: a few advances cross the
/// TTL plus the sweeper's 1000 ms grace.
pub const MAX_ADVANCE_MS: u64 = 2_048;
/// Largest TTL a program's sweeper uses, in milliseconds.
pub const MAX_TTL_MS: u64 = 4_096;
/// How many of a stream's newest records a stale read may miss, at most.
pub const MAX_STALE_LAG: u64 = 3;
/// Keys a program can name without spelling them out: ASCII, Cyrillic, an
/// emoji, and the empty key (which the engine refuses).
pub const KEY_PRESETS: [&str; 5] = ["a", "order-17", "ключ", "🔑", ""];

pub use input::{
    Action, Config, Fault, HashWidth, KeyChoice, NAMESPACE, OpKind, Program, receipt_for,
};

mod input;

/// The `cache_ops` check on a corpus file: runs the program the bytes
/// describe and judges it. Returns `None` when they describe no program.
///
/// # Panics
/// When the run breaks an invariant that no documented weakness explains.
#[must_use]
pub fn check_bytes(data: &[u8]) -> Option<Verdict> {
    Program::from_bytes(data).map(|program| check_program(&program))
}

/// Runs `program` and judges it.
///
/// # Panics
/// When the run breaks an invariant that no documented weakness explains,
/// or an operation does not end.
#[must_use]
pub fn check_program(program: &Program) -> Verdict {
    match run(program) {
        Ok(verdict) => verdict,
        Err(violation) => panic!("{violation}\nprogram: {program:#?}"),
    }
}

/// Runs `program` and judges it, returning the violation instead of
/// panicking.
///
/// # Panics
/// When an operation does not end within [`MAX_DRAIN_STEPS`].
pub fn run(program: &Program) -> Result<Verdict, Violation> {
    let mut run = Run::new(program);
    for action in program.actions.iter().take(MAX_ACTIONS) {
        run.tick += 1;
        match action {
            Action::Start { slot, key, op } => {
                let key = program.keys[usize::from(*key) % KEY_SLOTS].text();
                run.start(usize::from(*slot) % SLOTS, &key, *op);
            }
            Action::Step { slot, fault } => run.step(usize::from(*slot) % SLOTS, *fault),
            Action::Advance { millis } => {
                run.now_millis += u64::from(*millis) % MAX_ADVANCE_MS;
            }
        }
    }
    drain(
        &mut run,
        |run| run.slots.each_ref().map(Option::is_some),
        |run, slot| {
            run.tick += 1;
            run.step(slot, Fault::None);
        },
    );
    let history = History {
        protocol: run.protocol,
        ttl_ms: program.ttl_ms(),
        events: run.events,
    };
    verify(&history, &run.table)
}

/// Steps every operation still in flight without faults, slot by slot,
/// until none is: `busy(run)` lists the busy slots, `step(run, slot)` takes
/// one step (and moves the run's logical time).
///
/// # Panics
/// After [`MAX_DRAIN_STEPS`] steps with operations still running.
pub(crate) fn drain<R>(run: &mut R, busy: fn(&R) -> [bool; SLOTS], step: fn(&mut R, usize)) {
    let mut drained = 0;
    loop {
        let slots = busy(run);
        if !slots.contains(&true) {
            return;
        }
        for (slot, _) in slots.iter().enumerate().filter(|(_, busy)| **busy) {
            step(run, slot);
            drained += 1;
        }
        assert!(
            drained <= MAX_DRAIN_STEPS,
            "operations in slots {slots:?} still running after {MAX_DRAIN_STEPS} fault-free steps"
        );
    }
}

/// A state machine of any kind.
#[derive(Debug, Clone)]
enum Machine {
    Claim(ClaimOp),
    Lookup(LookupOp),
    Complete(CompleteOp),
    Release(ReleaseOp),
    Sweep(SweepOp),
}

fn answer_with<T>(step: Step<T>, f: impl FnOnce(T) -> SpecAnswer) -> Step<SpecAnswer> {
    match step {
        Step::Request(request) => Step::Request(request),
        Step::Done(result) => Step::Done(result.map(f)),
    }
}

impl Machine {
    /// The next step; a sweep's answer is reported as `Done` (its report is
    /// judged through the tombstones it appends).
    fn poll(&self) -> Step<SpecAnswer> {
        match self {
            Machine::Claim(op) => answer_with(op.poll(), SpecAnswer::Decision),
            Machine::Lookup(op) => answer_with(op.poll(), SpecAnswer::Lookup),
            Machine::Complete(op) => answer_with(op.poll(), |()| SpecAnswer::Done),
            Machine::Release(op) => answer_with(op.poll(), |()| SpecAnswer::Done),
            Machine::Sweep(op) => answer_with(op.poll(), |_| SpecAnswer::Done),
        }
    }

    fn feed(&mut self, reply: StoreReply) {
        match self {
            Machine::Claim(op) => op.feed(reply),
            Machine::Lookup(op) => op.feed(reply),
            Machine::Complete(op) => op.feed(reply),
            Machine::Release(op) => op.feed(reply),
            Machine::Sweep(op) => op.feed(reply),
        }
    }
}

/// An operation in flight and what the store did to it so far.
#[derive(Debug, Clone)]
struct Running {
    machine: Machine,
    /// `(key, stream, operation)`; `None` for a sweep.
    target: Option<(String, String, SpecOp)>,
    invoked_tick: u64,
    sweep_now_millis: u64,
    served_stale: bool,
    append_applied: bool,
    last_append: Option<LastAppend>,
}

#[derive(Debug, Clone)]
struct LastAppend {
    stream: String,
    payload: Vec<u8>,
    expected_seq: u64,
    answered_error_unapplied: bool,
}

/// What the store did with an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppendFate {
    Applied,
    AppliedAnsweredError,
    NotAppliedAnsweredError,
    Conflict,
}

struct Run {
    protocol: Protocol,
    /// The key-hash width the program's protocol uses: the history names
    /// each operation's stream by the oracle, not by the engine.
    hash_bits: u8,
    ttl_ms: u64,
    table: FaultTable,
    slots: [Option<Running>; SLOTS],
    events: Vec<Event>,
    tick: u64,
    now_millis: u64,
}

impl Run {
    fn new(program: &Program) -> Run {
        Run {
            protocol: program.protocol(),
            hash_bits: program.hash_bits(),
            ttl_ms: program.ttl_ms(),
            table: FaultTable::new(),
            slots: Default::default(),
            events: Vec::new(),
            tick: 0,
            now_millis: START_MILLIS,
        }
    }

    fn start(&mut self, slot: usize, key: &str, kind: OpKind) {
        if self.slots[slot].is_some() {
            return;
        }
        let now = self.now_millis;
        let machine = match kind {
            OpKind::Claim => self.protocol.claim(key, now).map(Machine::Claim),
            OpKind::Lookup => self.protocol.lookup(key).map(Machine::Lookup),
            OpKind::Complete { receipt } => self
                .protocol
                .complete(key, &receipt_for(receipt), now)
                .map(Machine::Complete),
            OpKind::Release => self.protocol.release(key, now).map(Machine::Release),
            OpKind::Sweep => Ok(Machine::Sweep(self.protocol.sweep(now, self.ttl_ms))),
        };
        let target = kind.spec_op(now).map(|op| {
            let stream = stream_name_with_hash_bits(NAMESPACE, key, self.hash_bits);
            (key.to_owned(), stream, op)
        });
        match machine {
            Ok(machine) => {
                self.slots[slot] = Some(Running {
                    machine,
                    target,
                    invoked_tick: self.tick,
                    sweep_now_millis: now,
                    served_stale: false,
                    append_applied: false,
                    last_append: None,
                });
            }
            // Refused before any I/O (an empty or over-long key): judged
            // like any other answer.
            Err(error) => {
                if let Some(target) = target {
                    self.record_answer(target, self.tick, Err(error), None, None);
                }
            }
        }
    }

    fn step(&mut self, slot: usize, fault: Fault) {
        let Some(mut running) = self.slots[slot].take() else {
            return;
        };
        if let Step::Request(request) = running.machine.poll() {
            let (reply, stale, fate) = self.serve(&request, fault);
            running.served_stale |= stale;
            if let (
                Some(fate),
                StoreRequest::Append {
                    stream,
                    payload,
                    expected_seq,
                },
            ) = (fate, &request)
            {
                running.append_applied |=
                    matches!(fate, AppendFate::Applied | AppendFate::AppliedAnsweredError);
                running.last_append = Some(LastAppend {
                    stream: stream.clone(),
                    payload: payload.clone(),
                    expected_seq: *expected_seq,
                    answered_error_unapplied: fate == AppendFate::NotAppliedAnsweredError,
                });
                if running.target.is_none() {
                    self.record_expiry(&running, stream, payload, fate, &reply);
                }
            }
            running.machine.feed(reply);
        }
        match running.machine.poll() {
            Step::Request(_) => self.slots[slot] = Some(running),
            Step::Done(result) => self.finish(running, result),
        }
    }

    /// A sweep's tombstone append: one `Expire` of the tombstone's key,
    /// unless the append lost its race (then it took no effect).
    fn record_expiry(
        &mut self,
        sweep: &Running,
        stream: &str,
        payload: &[u8],
        fate: AppendFate,
        reply: &StoreReply,
    ) {
        let observed = match (fate, reply) {
            (AppendFate::Conflict, _) => return,
            (_, StoreReply::Append(Ok(_))) => Ok(SpecAnswer::Done),
            (_, StoreReply::Append(Err(error))) => Err(error.clone()),
            (_, other) => unreachable!("an append is answered by an append reply, not {other:?}"),
        };
        let key = match decode(payload) {
            Ok(record @ (Record::V1Tombstone { .. } | Record::Release { .. })) => {
                record.key().to_owned()
            }
            other => panic!("a sweep appended something other than a tombstone: {other:?}"),
        };
        self.events.push(Event {
            stream_shared: stream_holds_other_key(&self.table, stream, &key),
            key,
            stream: stream.to_owned(),
            op: SpecOp::Expire,
            sweep_now_millis: Some(sweep.sweep_now_millis),
            invoked_tick: sweep.invoked_tick,
            responded_tick: self.tick,
            observed,
            claim_seq: None,
            exemption: None,
        });
    }

    fn finish(&mut self, running: Running, result: Result<SpecAnswer, DurabilityError>) {
        let Some((key, stream, op)) = running.target else {
            return;
        };
        let claim_seq = match (&result, &running.last_append) {
            (Ok(SpecAnswer::Decision(DedupDecision::Claimed)), Some(last)) => {
                Some(last.expected_seq)
            }
            _ => None,
        };
        let exemption = if running.append_applied {
            None
        } else if result.is_ok()
            && running.last_append.as_ref().is_some_and(|last| {
                last.answered_error_unapplied
                    && self
                        .table
                        .read_from(&last.stream, last.expected_seq, 1)
                        .first()
                        .is_some_and(|entry| entry.payload == last.payload)
            })
        {
            Some(Exemption::MisresolvedAppend)
        } else if running.served_stale {
            Some(Exemption::StaleRead)
        } else {
            None
        };
        self.record_answer(
            (key, stream, op),
            running.invoked_tick,
            result,
            claim_seq,
            exemption,
        );
    }

    /// Records the answer of a single-key operation, given now.
    fn record_answer(
        &mut self,
        (key, stream, op): (String, String, SpecOp),
        invoked_tick: u64,
        observed: Result<SpecAnswer, DurabilityError>,
        claim_seq: Option<u64>,
        exemption: Option<Exemption>,
    ) {
        self.events.push(Event {
            stream_shared: stream_holds_other_key(&self.table, &stream, &key),
            key,
            stream,
            op,
            sweep_now_millis: None,
            invoked_tick,
            responded_tick: self.tick,
            observed,
            claim_seq,
            exemption,
        });
    }

    /// Serves one request with `fault`: the reply, whether it was stale, and
    /// for an append what happened to it.
    fn serve(
        &mut self,
        request: &StoreRequest,
        fault: Fault,
    ) -> (StoreReply, bool, Option<AppendFate>) {
        let call_fault = fault.call_fault();
        let stale = match request {
            StoreRequest::Read {
                stream,
                offset,
                limit,
            } => {
                matches!(call_fault, CallFault::StaleBy(_))
                    && self.table.read_view(stream, *offset, *limit, call_fault)
                        != self.table.read_from(stream, *offset, *limit)
            }
            StoreRequest::Scan { prefix } => {
                matches!(call_fault, CallFault::StaleBy(_))
                    && self.table.scan_view(prefix, call_fault)
                        != self.table.scan_view(prefix, CallFault::None)
            }
            StoreRequest::ReadHead { stream } => {
                matches!(call_fault, CallFault::StaleBy(_))
                    && self.table.head_view(stream, call_fault)
                        != self.table.head_view(stream, CallFault::None)
            }
            StoreRequest::ScanHeads {
                prefix,
                after,
                limit,
            } => {
                let view = |fault| {
                    self.table
                        .heads_view(prefix, after.as_deref(), *limit, fault)
                };
                matches!(call_fault, CallFault::StaleBy(_))
                    && view(call_fault) != view(CallFault::None)
            }
            StoreRequest::Append { .. } | StoreRequest::Flush | StoreRequest::Compact { .. } => {
                false
            }
        };
        self.table.set_now_millis(self.tick);
        let calls_before = self.table.calls().len();
        let reply = self
            .table
            .serve_with(Call::new(0, None), request, call_fault);
        let landed = self
            .table
            .calls()
            .get(calls_before)
            .and_then(|call| call.landed_at)
            .is_some();
        let fate = match (request, &reply) {
            (StoreRequest::Append { .. }, StoreReply::Append(Ok(_))) => Some(AppendFate::Applied),
            (
                StoreRequest::Append { .. },
                StoreReply::Append(Err(DurabilityError::SequenceConflict { .. })),
            ) => Some(AppendFate::Conflict),
            (StoreRequest::Append { .. }, _) if landed => Some(AppendFate::AppliedAnsweredError),
            (StoreRequest::Append { .. }, _) => Some(AppendFate::NotAppliedAnsweredError),
            _ => None,
        };
        (reply, stale, fate)
    }
}
