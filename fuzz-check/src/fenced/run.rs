//! Running a [`FencedProgram`]: the engine's fenced state machines served by
//! the fault table, each operation its own caller session, and the history
//! of answers in the oracle's terms.

use std::collections::{BTreeMap, BTreeSet};

use atmostonce::DurabilityError;
use atmostonce::codec::ClaimId as EngineClaimId;
use atmostonce::core::fenced::{
    Claim, ClaimToken, FencedClaimOp, FencedCompleteOp, FencedLookupOp, FencedProtocol,
    FencedReleaseOp, FencedRenewOp, FencedSweepOp, KeyStatus,
};
use atmostonce::core::{Operation, Step, StoreReply, StoreRequest};
use atmostonce_verify::oracle::fenced::{FencedAnswer, FencedError, FencedOp, FencedResponse};
use atmostonce_verify::oracle::naming::stream_name_with_hash_bits;
use atmostonce_verify::oracle::record::{Record, ReleaseReason, decode};
use atmostonce_verify::table::{Call, CallFault, FaultTable};

use super::input::{
    ClaimIdChoice, Damage, FencedAction, FencedOpKind, FencedProgram, fingerprint_for,
};
use super::judge::{Damaged, FencedEvent, FencedHistory, verify_fenced};
use super::terms::{classify, token_of};
use crate::history::{Violation, stream_holds_other_key};
use crate::program::{
    Fault, KEY_SLOTS, MAX_ACTIONS, MAX_ADVANCE_MS, NAMESPACE, SLOTS, START_MILLIS, drain,
    receipt_for,
};

/// What a passing run exercised, for the corpus replay to show that the
/// committed inputs reach every kind of answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FencedSummary {
    /// Claims granted.
    pub grants: usize,
    /// Renewals granted.
    pub renewals: usize,
    /// Answers `StaleClaim` (a stale token refused).
    pub stale_refusals: usize,
    /// Answers `FingerprintMismatch`.
    pub fingerprint_mismatches: usize,
    /// Answers `Completed` to a claim (a duplicate told the receipt).
    pub duplicates_answered: usize,
    /// Answers naming a record that does not decode.
    pub corrupt_refusals: usize,
    /// Expiries the sweeper wrote.
    pub expiries: usize,
    /// Records the sweeps' compactions removed.
    pub compacted_records: u64,
    /// Store crashes injected.
    pub crashes: usize,
    /// Runs passing only with stale read-only answers left out (0 or 1;
    /// see [`FencedEvent::stale_read_only`]).
    pub stale_reads_excused: usize,
}

/// Runs `program` and judges it, returning the violation instead of
/// panicking.
///
/// # Panics
/// When an operation does not end within
/// [`MAX_DRAIN_STEPS`](crate::program::MAX_DRAIN_STEPS).
pub fn run_fenced(program: &FencedProgram) -> Result<FencedSummary, Violation> {
    let mut run = Run::new(program);
    for action in program.actions.iter().take(MAX_ACTIONS) {
        run.tick += 1;
        match action {
            FencedAction::Start { slot, key, op } => {
                let key = program.keys[usize::from(*key) % KEY_SLOTS].text();
                run.start(usize::from(*slot) % SLOTS, &key, *op);
            }
            FencedAction::Step { slot, fault } => run.step(usize::from(*slot) % SLOTS, *fault),
            FencedAction::Advance { millis } => {
                run.now_millis += u64::from(*millis) % MAX_ADVANCE_MS;
            }
            FencedAction::Crash => run.crash(),
            FencedAction::Corrupt {
                key,
                sequence,
                damage,
            } => {
                let key = program.keys[usize::from(*key) % KEY_SLOTS].text();
                run.corrupt(&key, *sequence, *damage);
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
    let history = FencedHistory {
        namespace: NAMESPACE.to_owned(),
        hash_bits: run.hash_bits,
        params: program.params(),
        events: run.events,
        damaged: run.damaged,
    };
    let verdict = verify_fenced(&history, &run.table)?;
    run.summary.stale_reads_excused = verdict.excused.len();
    Ok(run.summary)
}

/// A fenced state machine of any kind.
#[derive(Debug, Clone)]
enum Machine {
    Claim(FencedClaimOp),
    Complete(FencedCompleteOp),
    Release(FencedReleaseOp),
    Renew(FencedRenewOp),
    Lookup(FencedLookupOp),
    Sweep(FencedSweepOp),
}

/// A finished machine's answer, before it is put in the oracle's terms.
#[derive(Debug, Clone)]
enum Outcome {
    Claim(Claim),
    Done,
    Renewed(ClaimToken),
    Status(Option<KeyStatus>),
}

fn outcome<T>(step: Step<T>, f: impl FnOnce(T) -> Outcome) -> Step<Outcome> {
    match step {
        Step::Request(request) => Step::Request(request),
        Step::Done(result) => Step::Done(result.map(f)),
    }
}

impl Machine {
    fn poll(&self) -> Step<Outcome> {
        match self {
            Machine::Claim(op) => outcome(op.poll(), Outcome::Claim),
            Machine::Complete(op) => outcome(op.poll(), |()| Outcome::Done),
            Machine::Release(op) => outcome(op.poll(), |()| Outcome::Done),
            Machine::Renew(op) => outcome(op.poll(), Outcome::Renewed),
            Machine::Lookup(op) => outcome(op.poll(), Outcome::Status),
            // The report is judged through the releases the sweep appends.
            Machine::Sweep(op) => outcome(op.poll(), |_| Outcome::Done),
        }
    }

    fn feed(&mut self, reply: StoreReply) {
        match self {
            Machine::Claim(op) => op.feed(reply),
            Machine::Complete(op) => op.feed(reply),
            Machine::Release(op) => op.feed(reply),
            Machine::Renew(op) => op.feed(reply),
            Machine::Lookup(op) => op.feed(reply),
            Machine::Sweep(op) => op.feed(reply),
        }
    }
}

/// An expiry a sweep appended, and whether the store acknowledged it.
#[derive(Debug, Clone)]
struct Expiry {
    key: String,
    stream: String,
    acknowledged: bool,
}

/// An operation in flight.
#[derive(Debug, Clone)]
struct Running {
    machine: Machine,
    /// Its caller session in the table (one per operation).
    caller: u32,
    /// `(key, stream, operation)`; `None` for a sweep.
    target: Option<(String, String, FencedOp)>,
    invoked_tick: u64,
    /// A read was served from an older snapshot than the latest.
    served_stale: bool,
    /// An append of its own landed.
    append_landed: bool,
    /// For a sweep: its clock and the expiries it appended.
    sweep_now_millis: u64,
    expiries: Vec<Expiry>,
}

struct Run {
    protocol: FencedProtocol,
    hash_bits: u8,
    flush_appends: bool,
    table: FaultTable,
    slots: [Option<Running>; SLOTS],
    events: Vec<FencedEvent>,
    tick: u64,
    now_millis: u64,
    callers: u32,
    /// Every token handed out, oldest first.
    tokens: Vec<ClaimToken>,
    /// Every claim id drawn, oldest first, with its key.
    claim_ids: Vec<(String, [u8; 16])>,
    /// The ids drawn per key: two claims of one key never share one.
    ids_of_key: BTreeMap<String, BTreeSet<[u8; 16]>>,
    fresh_ids: u32,
    damaged: BTreeMap<(String, u64), Damaged>,
    summary: FencedSummary,
}

/// A finished operation's answer in the oracle's terms; an answer of a
/// kind this checker does not know is unclassified, which the judge
/// reports as an internal error.
fn response(result: &Result<Outcome, DurabilityError>) -> FencedResponse {
    match result {
        Err(error) => Err(classify(error)),
        Ok(Outcome::Claim(Claim::Granted(token))) => Ok(FencedAnswer::Granted(token_of(token))),
        Ok(Outcome::Claim(Claim::InFlight {
            lease_expires_millis,
            ..
        })) => Ok(FencedAnswer::InFlight {
            lease_expires_millis: *lease_expires_millis,
        }),
        Ok(Outcome::Claim(Claim::Completed(receipt))) => {
            Ok(FencedAnswer::Completed(receipt.clone()))
        }
        Ok(Outcome::Done) => Ok(FencedAnswer::Done),
        Ok(Outcome::Renewed(token)) => Ok(FencedAnswer::Renewed(token_of(token))),
        Ok(Outcome::Status(None)) => Ok(FencedAnswer::Absent),
        Ok(Outcome::Status(Some(KeyStatus::InFlight {
            lease_expires_millis,
            ..
        }))) => Ok(FencedAnswer::InFlight {
            lease_expires_millis: *lease_expires_millis,
        }),
        Ok(Outcome::Status(Some(KeyStatus::Completed(receipt)))) => {
            Ok(FencedAnswer::Completed(receipt.clone()))
        }
        Ok(_) => Err(FencedError::Unclassified),
    }
}

impl Run {
    fn new(program: &FencedProgram) -> Run {
        Run {
            protocol: program.protocol(),
            hash_bits: program.hash_bits(),
            flush_appends: program.config.flush_appends,
            table: FaultTable::new().with_appends_durable(!program.config.flush_appends),
            slots: Default::default(),
            events: Vec::new(),
            tick: 0,
            now_millis: START_MILLIS,
            callers: 0,
            tokens: Vec::new(),
            claim_ids: Vec::new(),
            ids_of_key: BTreeMap::new(),
            fresh_ids: 0,
            damaged: BTreeMap::new(),
            summary: FencedSummary::default(),
        }
    }

    fn stream_of(&self, key: &str) -> String {
        stream_name_with_hash_bits(NAMESPACE, key, self.hash_bits)
    }

    /// The claim id `choice` names for a claim of `key`: never zero, never
    /// one drawn for the key before.
    fn draw_id(&mut self, key: &str, choice: ClaimIdChoice) -> EngineClaimId {
        let taken = self.ids_of_key.entry(key.to_owned()).or_default();
        let earlier = |n: u8| {
            let count = self.claim_ids.len();
            (count > 0).then(|| &self.claim_ids[count - 1 - usize::from(n) % count])
        };
        let wanted = match choice {
            ClaimIdChoice::Fresh => None,
            ClaimIdChoice::CopyOf(n) => {
                earlier(n).and_then(|(other, id)| (other != key).then_some(*id))
            }
            ClaimIdChoice::NearCopyOf { claim, byte } => earlier(claim).map(|(_, id)| {
                let mut near = *id;
                near[usize::from(byte) % near.len()] ^= 0x01;
                near
            }),
        };
        let id = match wanted.filter(|id| !taken.contains(id) && id.iter().any(|b| *b != 0)) {
            Some(id) => id,
            None => loop {
                self.fresh_ids += 1;
                let mut id = [0x5a; 16];
                id[..4].copy_from_slice(&self.fresh_ids.to_be_bytes());
                if !taken.contains(&id) {
                    break id;
                }
            },
        };
        taken.insert(id);
        self.claim_ids.push((key.to_owned(), id));
        match EngineClaimId::new(id) {
            Some(id) => id,
            // Every id above has a non-zero byte.
            None => unreachable!("a drawn claim id is never all zero"),
        }
    }

    /// The token a token operation names: index 0 is the newest.
    fn token(&self, index: u8) -> Option<ClaimToken> {
        let count = self.tokens.len();
        (count > 0).then(|| self.tokens[count - 1 - usize::from(index) % count].clone())
    }

    fn start(&mut self, slot: usize, key: &str, kind: FencedOpKind) {
        if self.slots[slot].is_some() {
            return;
        }
        let now = self.now_millis;
        let token = match kind {
            FencedOpKind::Complete { token, .. }
            | FencedOpKind::Release { token }
            | FencedOpKind::Renew { token } => match self.token(token) {
                Some(token) => Some(token),
                None => return,
            },
            _ => None,
        };
        let key = token.as_ref().map_or(key, ClaimToken::key).to_owned();
        let (machine, op) = match (kind, &token) {
            (FencedOpKind::Claim { id, fingerprint }, _) => {
                let claim_id = self.draw_id(&key, id);
                let fingerprint = fingerprint_for(fingerprint);
                let op = FencedOp::Claim {
                    now_millis: now,
                    fingerprint: fingerprint.map(<[u8]>::to_vec),
                };
                let machine = self.protocol.claim(&key, claim_id, fingerprint, now);
                (machine.map(Machine::Claim), Some(op))
            }
            (FencedOpKind::Complete { receipt, .. }, Some(token)) => {
                let receipt = receipt_for(receipt);
                let machine = self.protocol.complete(token, &receipt, now);
                let op = FencedOp::Complete {
                    token: token_of(token),
                    receipt,
                    now_millis: now,
                };
                (machine.map(Machine::Complete), Some(op))
            }
            (FencedOpKind::Release { .. }, Some(token)) => {
                let op = FencedOp::Release {
                    token: token_of(token),
                    now_millis: now,
                };
                let machine = self.protocol.release(token, now);
                (machine.map(Machine::Release), Some(op))
            }
            (FencedOpKind::Renew { .. }, Some(token)) => {
                let op = FencedOp::Renew {
                    token: token_of(token),
                    now_millis: now,
                };
                (
                    self.protocol.renew(token, now).map(Machine::Renew),
                    Some(op),
                )
            }
            (FencedOpKind::Lookup, _) => {
                let machine = self.protocol.lookup(&key, now);
                (
                    machine.map(Machine::Lookup),
                    Some(FencedOp::Lookup { now_millis: now }),
                )
            }
            (FencedOpKind::Sweep, _) => (Ok(Machine::Sweep(self.protocol.sweep(now))), None),
            // A token operation without a token returned above.
            (_, None) => return,
        };
        let target = op.map(|op| (key.clone(), self.stream_of(&key), op));
        match machine {
            Ok(machine) => {
                self.callers += 1;
                self.slots[slot] = Some(Running {
                    machine,
                    caller: self.callers,
                    target,
                    invoked_tick: self.tick,
                    served_stale: false,
                    append_landed: false,
                    sweep_now_millis: now,
                    expiries: Vec::new(),
                });
            }
            // Refused before any I/O (an empty or over-long key): judged
            // like any other answer.
            Err(error) => {
                if let Some(target) = target {
                    self.record(target, self.tick, Err(classify(&error)), false);
                }
            }
        }
    }

    fn step(&mut self, slot: usize, fault: Fault) {
        let Some(mut running) = self.slots[slot].take() else {
            return;
        };
        if let Step::Request(request) = running.machine.poll() {
            self.table.set_now_millis(self.tick);
            let call = Call::new(running.caller, Some(u64::from(running.caller)));
            let fault = fault.call_fault();
            if let StoreRequest::Read {
                stream,
                offset,
                limit,
            } = &request
            {
                running.served_stale |= self.table.read_view(stream, *offset, *limit, fault)
                    != self.table.read_from(stream, *offset, *limit);
            }
            if let StoreRequest::ReadHead { stream } = &request {
                running.served_stale |= self.table.head_view(stream, fault)
                    != self.table.head_view(stream, CallFault::None);
            }
            let reply = self.table.serve_with(call, &request, fault);
            running.append_landed |= self
                .table
                .calls()
                .last()
                .is_some_and(|call| call.landed_at.is_some());
            if running.target.is_none()
                && let StoreRequest::Append {
                    stream, payload, ..
                } = &request
            {
                note_expiry(&mut running, stream, payload, &reply);
            }
            if let StoreReply::Compact(Ok(removed)) = &reply {
                self.summary.compacted_records += removed;
            }
            running.machine.feed(reply);
        }
        match running.machine.poll() {
            Step::Request(_) => self.slots[slot] = Some(running),
            Step::Done(result) => self.finish(running, result),
        }
    }

    fn finish(&mut self, running: Running, result: Result<Outcome, DurabilityError>) {
        let Some(target) = running.target else {
            // A sweep: each expiry it appended is acknowledged only if the
            // sweep then ended well (its last flush made them durable).
            for expiry in running.expiries {
                let observed = if expiry.acknowledged && result.is_ok() {
                    self.summary.expiries += 1;
                    Ok(FencedAnswer::Done)
                } else {
                    Err(FencedError::Indeterminate)
                };
                let op = FencedOp::Expire {
                    now_millis: running.sweep_now_millis,
                };
                self.record(
                    (expiry.key, expiry.stream, op),
                    running.invoked_tick,
                    observed,
                    false,
                );
            }
            return;
        };
        match &result {
            Ok(Outcome::Claim(Claim::Granted(token))) => {
                self.summary.grants += 1;
                self.tokens.push(token.clone());
            }
            Ok(Outcome::Claim(Claim::Completed(_))) => self.summary.duplicates_answered += 1,
            Ok(Outcome::Renewed(token)) => {
                self.summary.renewals += 1;
                self.tokens.push(token.clone());
            }
            Err(DurabilityError::StaleClaim { .. }) => self.summary.stale_refusals += 1,
            Err(DurabilityError::FingerprintMismatch { .. }) => {
                self.summary.fingerprint_mismatches += 1;
            }
            Err(DurabilityError::EnvelopeError { .. }) => self.summary.corrupt_refusals += 1,
            _ => {}
        }
        let stale_read_only = running.served_stale
            && !running.append_landed
            && matches!(target.2, FencedOp::Claim { .. } | FencedOp::Lookup { .. });
        self.record(
            target,
            running.invoked_tick,
            response(&result),
            stale_read_only,
        );
    }

    /// Records an answer given now.
    fn record(
        &mut self,
        (key, stream, op): (String, String, FencedOp),
        invoked_tick: u64,
        observed: FencedResponse,
        stale_read_only: bool,
    ) {
        self.events.push(FencedEvent {
            stream_shared: stream_holds_other_key(&self.table, &stream, &key),
            key,
            stream,
            op,
            invoked_tick,
            responded_tick: self.tick,
            observed,
            stale_read_only,
        });
    }

    /// A store crash, where the engine's contract has one: only a store
    /// whose acknowledged appends are not durable until flushed (the
    /// engine then flushes; a crash must not undo what it acknowledged).
    fn crash(&mut self) {
        if !self.flush_appends {
            return;
        }
        self.summary.crashes += 1;
        self.table.crash();
        // A damaged record the crash dropped is no longer there to judge.
        let table = &self.table;
        self.damaged
            .retain(|(stream, sequence), _| *sequence < table.len(stream) as u64);
    }

    fn corrupt(&mut self, key: &str, sequence: u8, damage: Damage) {
        let stream = self.stream_of(key);
        // Only a record the store still holds can be damaged: a compacted
        // stream's entries start above sequence 0.
        let entries = self.table.entries(&stream);
        if entries.is_empty() {
            return;
        }
        let entry = &entries[usize::from(sequence) % entries.len()];
        let (payload, sequence) = (entry.payload.clone(), entry.sequence);
        if !self
            .table
            .corrupt(&stream, sequence, &damage.corruption(payload.len()))
        {
            return;
        }
        let one_bit_flip = matches!(damage, Damage::BitFlip { .. });
        self.damaged
            .entry((stream, sequence))
            .and_modify(|damaged| damaged.one_bit_flip = false)
            .or_insert(Damaged {
                original: payload,
                one_bit_flip,
            });
    }
}

/// A sweep's append: one expiry of the released key, unless it lost its
/// race (then it took no effect and is not an operation on the key).
fn note_expiry(sweep: &mut Running, stream: &str, payload: &[u8], reply: &StoreReply) {
    let acknowledged = match reply {
        StoreReply::Append(Ok(_)) => true,
        StoreReply::Append(Err(DurabilityError::SequenceConflict { .. })) => return,
        _ => false,
    };
    let key = match decode(payload) {
        Ok(Record::Release {
            key,
            reason: ReleaseReason::Expired,
            ..
        }) => key,
        other => panic!("a sweep appended something other than an expiry: {other:?}"),
    };
    sweep.expiries.push(Expiry {
        key,
        stream: stream.to_owned(),
        acknowledged,
    });
}
