//! The history checker: S1-S7 (always), A1 (the at-most-once delivery
//! assumption) and A2 (progress after the quiet phase), DESIGN.md section 5.
//!
//! # What the store model admits, and why the checker has no false positives
//!
//! The checker is black-box about the engine: it judges answers against the
//! sequential specification ([`atmostonce_verify::oracle`]). It uses three facts the
//! simulated store reports, none of which tells it whether an answer is
//! right, only which answers the engine had no way to get right:
//!
//! - **Stale reads.** A read served from an older snapshot makes the answer
//!   of an operation that wrote nothing (a lookup; a claim answering
//!   `InFlight`/`Completed`; a no-op release or completion) stale by
//!   construction: the seed engine has no read barrier, and no engine can
//!   defend a pure read against a store that serves old data. Such answers
//!   (flagged by the store, and only if the operation wrote nothing that
//!   stayed) are **exempt** from S2, S4 and S7 and counted in
//!   [`Notes::stale_answers`]; they are still held to S3 and S6 (a receipt
//!   must be a real receipt of that key). A stale read can never make a
//!   write land in the wrong place: appends are conditional on the stream's
//!   length, so a decision from a stale read ends in a `SequenceConflict`.
//! - **Dirty reads.** A store crash drops appends not yet flushed. An
//!   operation that read such a record (before the crash) and answered from
//!   it without writing, answered from a state that never became durable.
//!   The seed engine does not flush before it answers a read, so these
//!   answers are not linearizable; they are exempt like stale ones and
//!   counted in [`Notes::dirty_answers`]. `--strict-reads` removes both
//!   exemptions and reports them as S7 violations (a real, documented
//!   weakness of the seed API, see README "Known findings").
//!   An operation that answered `Claimed` is never exempt: a grant is a
//!   write, whatever it read.
//! - **Expiries.** The sweeper's tombstone appends are the `expire`
//!   operations of the specification, attributed per key by the store. A
//!   tombstone the sweeper appended but never flushed may be dropped by a
//!   crash; a dropped one is an expiry that did not happen.
//!
//! Everything else is judged strictly: an indeterminate error may or may not
//! have taken effect (never both), a process that crashed mid-call may have
//! taken effect at any later time or never, and a `DedupCollision` is
//! admissible only where the specification refuses or the key's stream is
//! shared with another key (forced hash collisions) or holds a corrupted
//! record (the engine surfacing corruption as an error is what it must do).

use std::collections::BTreeMap;
use std::fmt;

use atmostonce::{DedupDecision, DurabilityError, ProcessingReceipt};
use atmostonce_verify::oracle::linear::{HistoryOp, Linearization, MAX_SEARCH_STEPS, linearize};
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};

use crate::history::receipt_key;
use crate::history::{Event, FaultEvent, History, KeyId, OpId, OpRecord, Process, WriteTruth};

/// The invariants of DESIGN.md section 5 that the simulator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// One winner: at most one claim granted between two terminal events.
    S1,
    /// Receipt stability: a stored receipt is what every `Completed` answer
    /// returns until it expires.
    S2,
    /// No phantom receipt: a `Completed(R)` answer follows a completion with R.
    S3,
    /// Acknowledged writes survive, across store crashes, until expiry.
    S4,
    /// Collision safety: an answer for key k is based only on k's records.
    S6,
    /// Per-key linearizability against the sequential specification.
    S7,
    /// At-most-once delivery while processing + skew < TTL.
    A1,
    /// Progress: after the quiet phase every key is completed or claimable.
    A2,
    /// The checker could not decide (a bug of the harness, never a pass).
    Internal,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 9] = [
        Invariant::S1,
        Invariant::S2,
        Invariant::S3,
        Invariant::S4,
        Invariant::S6,
        Invariant::S7,
        Invariant::A1,
        Invariant::A2,
        Invariant::Internal,
    ];

    /// One line on what it means.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            Invariant::S1 => "one winner: two claims granted with no release or expiry between",
            Invariant::S2 => "receipt stability: a stored receipt changed before it expired",
            Invariant::S3 => "no phantom receipt: a receipt nobody tried to store was returned",
            Invariant::S4 => "acknowledged writes survive: an acknowledged completion vanished",
            Invariant::S6 => {
                "collision safety: an answer for one key came from another key's records"
            }
            Invariant::S7 => {
                "linearizability: no order of the key's operations explains the answers"
            }
            Invariant::A1 => "at-most-once delivery: a key was delivered twice in one dedup window",
            Invariant::A2 => "progress: a key stayed in flight after faults stopped",
            Invariant::Internal => "the checker could not decide (harness error)",
        }
    }

    /// Parses `S1`..`S7`, `A1`, `A2`, `internal`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Invariant> {
        Invariant::ALL
            .into_iter()
            .find(|invariant| invariant.to_string().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Invariant::S1 => "S1",
            Invariant::S2 => "S2",
            Invariant::S3 => "S3",
            Invariant::S4 => "S4",
            Invariant::S6 => "S6",
            Invariant::S7 => "S7",
            Invariant::A1 => "A1",
            Invariant::A2 => "A2",
            Invariant::Internal => "internal",
        };
        f.write_str(name)
    }
}

/// One violated invariant: which, for which key, which operations, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant.
    pub invariant: Invariant,
    /// The key, when the violation is about one.
    pub key: Option<KeyId>,
    /// The operations involved, in invocation order.
    pub ops: Vec<OpId>,
    /// What happened, in a sentence.
    pub message: String,
}

/// Observations that are not violations but must not go unreported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// Read-only answers exempted because their read was stale.
    pub stale_answers: u32,
    /// Read-only answers exempted because they read a record a crash dropped.
    pub dirty_answers: u32,
    /// Keys whose full history (exempt answers included) is not
    /// linearizable: what `--strict-reads` would report.
    pub strict_s7_keys: Vec<KeyId>,
    /// Double deliveries after the first holder crashed (or could not store
    /// its receipt) between delivery and completion: at-most-once without a
    /// fenced side effect cannot prevent those.
    pub a1_excused: u32,
}

/// How strictly to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Hold read-only answers to S2, S4 and S7 even when their read was
    /// stale or dirty.
    pub strict_reads: bool,
}

/// The checker's verdict on a history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every violation found (at most one per invariant and key).
    pub violations: Vec<Violation>,
    /// What was exempted or excused, counted.
    pub notes: Notes,
}

impl Verdict {
    /// True when no invariant is violated.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The first violation: the one a report leads with.
    #[must_use]
    pub fn first(&self) -> Option<&Violation> {
        self.violations.first()
    }

    /// `pass`, or the invariants violated, comma-separated (`S1,S7`).
    #[must_use]
    pub fn names(&self) -> String {
        if self.passed() {
            return "pass".to_owned();
        }
        let names: Vec<String> = self.invariants().iter().map(ToString::to_string).collect();
        names.join(",")
    }

    /// The distinct invariants violated.
    #[must_use]
    pub fn invariants(&self) -> Vec<Invariant> {
        let mut invariants: Vec<Invariant> = self.violations.iter().map(|v| v.invariant).collect();
        invariants.sort_unstable();
        invariants.dedup();
        invariants
    }
}

/// Checks a history.
#[must_use]
pub fn check(history: &History, options: CheckOptions) -> Verdict {
    let checker = Checker::new(history, options);
    let mut verdict = Verdict::default();
    for key in 0..history.keys.len() {
        let Ok(key) = KeyId::try_from(key) else { break };
        checker.key(key, &mut verdict);
    }
    checker.progress(&mut verdict);
    verdict
        .violations
        .sort_by_key(|violation| (violation.invariant, violation.key));
    verdict
}

struct Checker<'a> {
    history: &'a History,
    options: CheckOptions,
    corrupted: Vec<KeyId>,
    /// Each key's operations, in invocation order.
    by_key: Vec<Vec<&'a OpRecord>>,
    /// Each key's terminal events: `[releases and expiries, expiries only]`.
    terminals: Vec<[Terminals; 2]>,
    /// Each claim's completions (not releases), in invocation order.
    completions: BTreeMap<OpId, Vec<&'a OpRecord>>,
    /// Each key's successful deliveries: the claims that authorised them.
    deliveries: Vec<Vec<OpId>>,
    /// Each producer's last crash.
    last_crash_us: BTreeMap<Process, u64>,
}

/// The terminal events of one key (releases and expiries that may have
/// ended a claim or an entry), indexed so that "can one be ordered between
/// these two instants" is a binary search: a live history holds thousands
/// of operations per hot key, which a scan per question cannot afford.
#[derive(Debug, Default)]
struct Terminals {
    /// Response times, ascending (`u64::MAX`: never answered).
    rets: Vec<u64>,
    /// For each position, the earliest invocation among the terminals from
    /// that position on.
    suffix_min_call: Vec<u64>,
}

impl Terminals {
    fn new(mut spans: Vec<(u64, u64)>) -> Terminals {
        spans.sort_unstable_by_key(|(_, ret_us)| *ret_us);
        let mut suffix_min_call = vec![u64::MAX; spans.len()];
        let mut min = u64::MAX;
        for (index, (call_us, _)) in spans.iter().enumerate().rev() {
            min = min.min(*call_us);
            suffix_min_call[index] = min;
        }
        Terminals {
            rets: spans.into_iter().map(|(_, ret_us)| ret_us).collect(),
            suffix_min_call,
        }
    }

    /// True when some terminal answered after `after_us` and was invoked
    /// before `before_us`.
    fn between(&self, after_us: u64, before_us: u64) -> bool {
        let first = self.rets.partition_point(|ret_us| *ret_us <= after_us);
        self.suffix_min_call
            .get(first)
            .is_some_and(|call_us| *call_us < before_us)
    }
}

/// What an expiry did.
#[derive(PartialEq, Eq)]
enum Effect {
    Applied,
    Maybe,
    None,
}

impl<'a> Checker<'a> {
    fn new(history: &'a History, options: CheckOptions) -> Checker<'a> {
        let mut checker = Checker {
            history,
            options,
            corrupted: history.corrupted_keys(),
            by_key: vec![Vec::new(); history.keys.len()],
            terminals: Vec::new(),
            completions: BTreeMap::new(),
            deliveries: vec![Vec::new(); history.keys.len()],
            last_crash_us: BTreeMap::new(),
        };
        for op in &history.ops {
            if let Some(ops) = checker.by_key.get_mut(usize::from(op.key)) {
                ops.push(op);
            }
            if let (Some(claim), SpecOp::Complete { .. }) = (op.claim, &op.op) {
                checker.completions.entry(claim).or_default().push(op);
            }
        }
        for event in &history.events {
            match event {
                Event::Delivery {
                    key,
                    claim,
                    ok: true,
                    ..
                } => {
                    if let Some(claims) = checker.deliveries.get_mut(usize::from(*key)) {
                        claims.push(*claim);
                    }
                }
                Event::Fault {
                    at_us,
                    fault: FaultEvent::ProducerCrash(process),
                } => {
                    let last = checker.last_crash_us.entry(*process).or_insert(*at_us);
                    *last = (*last).max(*at_us);
                }
                _ => {}
            }
        }
        checker.terminals = checker
            .by_key
            .iter()
            .map(|ops| {
                [false, true].map(|expiries_only| {
                    Terminals::new(
                        ops.iter()
                            .filter(|op| checker.maybe_terminal(op, expiries_only))
                            .map(|op| (op.call_us, op.ret_or_max()))
                            .collect(),
                    )
                })
            })
            .collect();
        checker
    }

    /// True when `op`'s answer is exempt from S2, S4 and S7 (see the module
    /// docs): it read stale or dirty data and wrote nothing that stayed.
    fn exempt(&self, op: &OpRecord) -> bool {
        !self.options.strict_reads && self.unreliable_read(op)
    }

    fn unreliable_read(&self, op: &OpRecord) -> bool {
        (op.stale_read || op.dirty_read) && !op.granted() && op.write != WriteTruth::Applied
    }

    fn shared(&self, key: KeyId) -> bool {
        self.history.shared_stream[usize::from(key)] || self.corrupted.contains(&key)
    }

    fn expiry_effect(op: &OpRecord) -> Effect {
        match (&op.result, op.write) {
            (_, WriteTruth::Dropped) => Effect::None,
            (Some(Ok(_)), _) => Effect::Applied,
            (Some(Err(DurabilityError::SequenceConflict { .. })), _) => Effect::None,
            _ => Effect::Maybe,
        }
    }

    /// True when `op` may have ended a claim or a completed entry: a release
    /// that answered Ok or not at all or with an indeterminate error, or an
    /// expiry that took effect or may have.
    fn maybe_terminal(&self, op: &OpRecord, expiries_only: bool) -> bool {
        match op.op {
            SpecOp::Expire => Self::expiry_effect(op) != Effect::None,
            SpecOp::Release if !expiries_only && !self.exempt(op) => match &op.result {
                None | Some(Ok(_)) => true,
                Some(Err(error)) => error.is_indeterminate(),
            },
            _ => false,
        }
    }

    /// True when some terminal event of `key` can be ordered after `first`
    /// was invoked and before `second` answered.
    fn terminal_between(
        &self,
        key: KeyId,
        first_call_us: u64,
        second_ret_us: u64,
        expiries_only: bool,
    ) -> bool {
        self.terminals[usize::from(key)][usize::from(expiries_only)]
            .between(first_call_us, second_ret_us)
    }

    fn key(&self, key: KeyId, verdict: &mut Verdict) {
        let ops = &self.by_key[usize::from(key)];
        for op in ops {
            if op.stale_read && self.unreliable_read(op) {
                verdict.notes.stale_answers += 1;
            } else if op.dirty_read && self.unreliable_read(op) {
                verdict.notes.dirty_answers += 1;
            }
        }
        self.one_winner(key, ops, verdict);
        self.receipts(key, ops, verdict);
        self.acknowledged(key, ops, verdict);
        self.linearizable(key, ops, verdict);
        self.at_most_once(key, verdict);
    }

    /// True when `verdict` already holds a violation of `invariant` on
    /// `key` (only the first is kept).
    fn has(verdict: &Verdict, invariant: Invariant, key: KeyId) -> bool {
        verdict
            .violations
            .iter()
            .any(|v| v.invariant == invariant && v.key == Some(key))
    }

    fn push(
        verdict: &mut Verdict,
        invariant: Invariant,
        key: KeyId,
        mut ops: Vec<OpId>,
        message: String,
    ) {
        if Self::has(verdict, invariant, key) {
            return;
        }
        ops.sort_unstable();
        ops.dedup();
        verdict.violations.push(Violation {
            invariant,
            key: Some(key),
            ops,
            message,
        });
    }

    fn describe(&self, op: &OpRecord) -> String {
        format!("op {} ({} by {})", op.id, op.name(), op.process)
    }

    /// S1: any two grants need a terminal event that can be ordered between
    /// them, in one order or the other. (A grant may take effect long
    /// before it answers: a paused holder's claim can land, expire and be
    /// followed by another grant before its own answer arrives.)
    fn one_winner(&self, key: KeyId, ops: &[&OpRecord], verdict: &mut Verdict) {
        let grants: Vec<&OpRecord> = ops.iter().copied().filter(|op| op.granted()).collect();
        for (index, first) in grants.iter().enumerate() {
            for second in &grants[index + 1..] {
                let separable =
                    self.terminal_between(key, first.call_us, second.ret_or_max(), false)
                        || self.terminal_between(key, second.call_us, first.ret_or_max(), false);
                if separable {
                    continue;
                }
                Self::push(
                    verdict,
                    Invariant::S1,
                    key,
                    vec![first.id, second.id],
                    format!(
                        "{} and {} were both granted the claim with no release or expiry that \
                         could come between them",
                        self.describe(first),
                        self.describe(second)
                    ),
                );
                return;
            }
        }
    }

    /// S3 and S6: every receipt answered is one a completion of this key
    /// tried to store before the answer.
    fn receipts(&self, key: KeyId, ops: &[&OpRecord], verdict: &mut Verdict) {
        let name = &self.history.keys[usize::from(key)];
        // Each receipt a completion of this key tried to store, with the
        // earliest such attempt.
        let mut first_attempt_us: BTreeMap<&[u8], u64> = BTreeMap::new();
        for op in ops {
            if let SpecOp::Complete { receipt, .. } = &op.op {
                let first = first_attempt_us
                    .entry(receipt.as_bytes())
                    .or_insert(op.call_us);
                *first = (*first).min(op.call_us);
            }
        }
        for op in ops {
            let Some(receipt) = answered_receipt(op) else {
                continue;
            };
            if receipt_key(receipt.as_bytes()) != Some(name.as_str()) {
                if Self::has(verdict, Invariant::S6, key) {
                    continue;
                }
                let owner = self
                    .history
                    .ops
                    .iter()
                    .find(|other| completes_with(other, receipt));
                let mut involved = vec![op.id];
                involved.extend(owner.map(|other| other.id));
                Self::push(
                    verdict,
                    Invariant::S6,
                    key,
                    involved,
                    format!(
                        "{} answered a receipt of key {:?} for key {name:?}",
                        self.describe(op),
                        receipt_key(receipt.as_bytes()).unwrap_or("<not a receipt of this run>")
                    ),
                );
                continue;
            }
            let stored = first_attempt_us
                .get(receipt.as_bytes())
                .is_some_and(|call_us| *call_us < op.ret_or_max());
            if !stored {
                Self::push(
                    verdict,
                    Invariant::S3,
                    key,
                    vec![op.id],
                    format!(
                        "{} answered Completed with a receipt ({:?}) that no completion of key \
                         {name:?} had tried to store",
                        self.describe(op),
                        String::from_utf8_lossy(receipt.as_bytes())
                    ),
                );
            }
        }
    }

    /// S2 and S4: after an acknowledged completion, until an expiry, every
    /// answer shows that receipt.
    fn acknowledged(&self, key: KeyId, ops: &[&OpRecord], verdict: &mut Verdict) {
        for acked in ops.iter().filter(|op| {
            matches!(op.op, SpecOp::Complete { .. })
                && matches!(op.result, Some(Ok(_)))
                && !self.exempt(op)
        }) {
            if Self::has(verdict, Invariant::S2, key) && Self::has(verdict, Invariant::S4, key) {
                return;
            }
            let SpecOp::Complete { receipt, .. } = &acked.op else {
                continue;
            };
            let Some(acked_ret) = acked.ret_us else {
                continue;
            };
            for later in ops
                .iter()
                .filter(|op| op.call_us > acked_ret && !self.exempt(op))
            {
                let shows = match &later.result {
                    Some(Ok(SpecAnswer::Decision(decision))) => Some(Some(decision)),
                    Some(Ok(SpecAnswer::Lookup(answer))) => Some(answer.as_ref()),
                    _ => None,
                };
                let Some(shows) = shows else { continue };
                let invariant = match shows {
                    Some(DedupDecision::Completed(other)) if other == receipt => continue,
                    Some(DedupDecision::Completed(_)) => Invariant::S2,
                    _ => Invariant::S4,
                };
                if self.terminal_between(key, acked.call_us, later.ret_or_max(), true) {
                    continue;
                }
                Self::push(
                    verdict,
                    invariant,
                    key,
                    vec![acked.id, later.id],
                    format!(
                        "{} acknowledged a receipt, then {} answered {} with no expiry between",
                        self.describe(acked),
                        self.describe(later),
                        show_answer(later)
                    ),
                );
            }
        }
    }

    /// One key's operations as the S7 search takes them, without the
    /// exempt ones (unless `keep_exempt`) and the expiries that did not
    /// happen.
    fn lin_ops<'h>(&self, ops: &[&'h OpRecord], keep_exempt: bool) -> Vec<&'h OpRecord> {
        ops.iter()
            .filter(|op| keep_exempt || !self.exempt(op))
            .filter(|op| {
                !matches!(op.op, SpecOp::Expire) || Self::expiry_effect(op) != Effect::None
            })
            .copied()
            .collect()
    }

    /// The S7 search over `ops` ([`lin_ops`](Self::lin_ops)).
    fn linearize(ops: &[&OpRecord], shared: bool) -> Linearization {
        let history: Vec<HistoryOp<'_>> = ops
            .iter()
            .map(|op| HistoryOp {
                op: &op.op,
                invoked_at: op.call_us,
                answered_at: op.ret_us,
                answer: op.result.as_ref(),
                stream_shared: shared,
                expiry_clock: None,
            })
            .collect();
        linearize(&history)
    }

    /// S7 for one key; with exemptions in force also the strict variant,
    /// reported as a note.
    fn linearizable(&self, key: KeyId, ops: &[&OpRecord], verdict: &mut Verdict) {
        let shared = self.shared(key);
        let judged = self.lin_ops(ops, false);
        match Self::linearize(&judged, shared) {
            Linearization::Linearizable => {
                let exempted = ops.iter().any(|op| self.unreliable_read(op));
                if exempted
                    && !self.options.strict_reads
                    && Self::linearize(&self.lin_ops(ops, true), shared)
                        != Linearization::Linearizable
                {
                    verdict.notes.strict_s7_keys.push(key);
                }
            }
            Linearization::NotLinearizable {
                blocked,
                concurrent,
                state,
            } => {
                let blocked_op = judged[blocked];
                let mut involved: Vec<OpId> =
                    concurrent.iter().map(|index| judged[*index].id).collect();
                involved.push(blocked_op.id);
                Self::push(
                    verdict,
                    Invariant::S7,
                    key,
                    involved,
                    format!(
                        "{} answered {} but no order of the key's operations reaches a state \
                         that gives that answer (the furthest order found leaves the key {})",
                        self.describe(blocked_op),
                        show_answer(blocked_op),
                        show_state(&state)
                    ),
                );
            }
            Linearization::GaveUp => Self::push(
                verdict,
                Invariant::Internal,
                key,
                Vec::new(),
                format!("the linearizability search gave up after {MAX_SEARCH_STEPS} steps"),
            ),
        }
    }

    /// A1: a successful delivery's claim window, from grant until the
    /// holder's completion is acknowledged and then until an expiry, holds
    /// no other granted delivery.
    fn at_most_once(&self, key: KeyId, verdict: &mut Verdict) {
        let mut deliveries: Vec<&OpRecord> = self.deliveries[usize::from(key)]
            .iter()
            .filter_map(|claim| self.history.ops.get(*claim as usize))
            .collect();
        deliveries.sort_by_key(|claim| (claim.ret_or_max(), claim.id));
        for pair in deliveries.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            let second_grant = second.ret_or_max();
            let completions: &[&OpRecord] =
                self.completions.get(&first.id).map_or(&[], Vec::as_slice);
            let done = completions
                .iter()
                .filter(|op| matches!(op.result, Some(Ok(_))))
                .min_by_key(|op| op.ret_or_max());
            match done {
                Some(done) if done.ret_or_max() <= second_grant => {
                    // The receipt may have been stored by an earlier attempt
                    // that answered an error (the retry then found it): the
                    // window starts at the first attempt with that receipt.
                    let stored_from_us = completions
                        .iter()
                        .filter(|op| op.op == done.op || same_receipt(&op.op, &done.op))
                        .map(|op| op.call_us)
                        .min()
                        .unwrap_or(done.call_us);
                    let window_end = self
                        .history
                        .dedup_window_us
                        .map_or(0, |window| stored_from_us.saturating_add(window));
                    if second_grant < window_end {
                        Self::push(
                            verdict,
                            Invariant::A1,
                            key,
                            vec![first.id, done.id, second.id],
                            format!(
                                "{} delivered and {} stored its receipt; {} was granted and \
                                 delivered again {} ms later, inside the dedup window (TTL + \
                                 grace - skew = {} ms): the entry expired early",
                                self.describe(first),
                                self.describe(done),
                                self.describe(second),
                                (second_grant - stored_from_us) / 1000,
                                self.history.dedup_window_us.unwrap_or(0) / 1000
                            ),
                        );
                        continue;
                    }
                    if self.terminal_between(key, done.call_us, second_grant, true) {
                        continue;
                    }
                    Self::push(
                        verdict,
                        Invariant::A1,
                        key,
                        vec![first.id, done.id, second.id],
                        format!(
                            "{} delivered and {} stored its receipt, yet {} was granted and \
                             delivered again with no expiry between",
                            self.describe(first),
                            self.describe(done),
                            self.describe(second)
                        ),
                    );
                }
                None if self.holder_gave_out(first, completions) => {
                    verdict.notes.a1_excused += 1;
                }
                _ => {
                    let processing = done.map_or_else(
                        || "never completed".to_owned(),
                        |done| {
                            format!(
                                "completed {} ms after its grant",
                                done.ret_or_max().saturating_sub(first.ret_or_max()) / 1000
                            )
                        },
                    );
                    let mut involved = vec![first.id, second.id];
                    involved.extend(done.map(|done| done.id));
                    Self::push(
                        verdict,
                        Invariant::A1,
                        key,
                        involved,
                        format!(
                            "{} and {} both delivered: the second claim was granted while the \
                             first holder was still processing (it {processing})",
                            self.describe(first),
                            self.describe(second)
                        ),
                    );
                }
            }
        }
    }

    /// True when the holder of `claim` crashed before its completion was
    /// acknowledged, or the store failed every completion it tried: the
    /// timing assumption of A1 (processing finishes) does not hold for it.
    fn holder_gave_out(&self, claim: &OpRecord, completions: &[&OpRecord]) -> bool {
        let granted_us = claim.ret_or_max();
        let crashed = self
            .last_crash_us
            .get(&claim.process)
            .is_some_and(|at_us| *at_us >= granted_us);
        // Only failures of the store excuse it: a completion refused with
        // `DedupCollision` or `SequenceConflict` means the claim was taken
        // away, which is exactly the double delivery A1 is about.
        let all_failed = !completions.is_empty()
            && completions.iter().all(|op| match &op.result {
                None => true,
                Some(Err(error)) => error.is_indeterminate(),
                Some(Ok(_)) => false,
            });
        crashed || all_failed
    }

    /// A2: after the quiet phase the probe finds every key completed or
    /// claimable; keys whose stream is shared or corrupted are exempt.
    fn progress(&self, verdict: &mut Verdict) {
        for event in &self.history.events {
            if let Event::Stuck { producers, .. } = event {
                verdict.violations.push(Violation {
                    invariant: Invariant::A2,
                    key: None,
                    ops: Vec::new(),
                    message: format!(
                        "the workload did not finish: producers {producers:?} were still running \
                         at the time cap"
                    ),
                });
                return;
            }
        }
        if self.history.quiet_from_us.is_none() {
            return;
        }
        let corrupted: Vec<&str> = self
            .corrupted
            .iter()
            .map(|key| self.history.keys[usize::from(*key)].as_str())
            .collect();
        let context = if corrupted.is_empty() {
            String::new()
        } else {
            format!(
                "; the store holds corrupted records of key(s) {} (a sweep that cannot decode a \
                 stream's head may give up on every key)",
                corrupted.join(", ")
            )
        };
        for probe in self
            .history
            .ops
            .iter()
            .filter(|op| op.process == Process::Probe)
        {
            let key = probe.key;
            let fine = match &probe.result {
                Some(Ok(SpecAnswer::Lookup(None | Some(DedupDecision::Completed(_))))) => true,
                Some(Err(_)) => self.shared(key),
                _ => false,
            };
            if !fine {
                Self::push(
                    verdict,
                    Invariant::A2,
                    key,
                    vec![probe.id],
                    format!(
                        "after the quiet phase (TTL + sweep interval with no faults) the probe \
                         found the key {}{context}",
                        show_answer(probe)
                    ),
                );
            }
        }
    }
}

fn same_receipt(a: &SpecOp, b: &SpecOp) -> bool {
    matches!((a, b), (SpecOp::Complete { receipt: x, .. }, SpecOp::Complete { receipt: y, .. }) if x == y)
}

fn completes_with(op: &OpRecord, receipt: &ProcessingReceipt) -> bool {
    matches!(&op.op, SpecOp::Complete { receipt: stored, .. } if stored == receipt)
}

fn answered_receipt(op: &OpRecord) -> Option<&ProcessingReceipt> {
    match &op.result {
        Some(Ok(SpecAnswer::Decision(DedupDecision::Completed(receipt))))
        | Some(Ok(SpecAnswer::Lookup(Some(DedupDecision::Completed(receipt))))) => Some(receipt),
        _ => None,
    }
}

/// An operation's answer in words.
#[must_use]
pub fn show_answer(op: &OpRecord) -> String {
    match &op.result {
        None => "nothing (its process crashed)".to_owned(),
        Some(Ok(SpecAnswer::Decision(decision))) => show_decision(Some(decision)),
        Some(Ok(SpecAnswer::Lookup(decision))) => show_decision(decision.as_ref()),
        Some(Ok(SpecAnswer::Done)) => "Ok".to_owned(),
        Some(Err(error)) => show_error(error),
    }
}

fn show_decision(decision: Option<&DedupDecision>) -> String {
    match decision {
        None => "absent".to_owned(),
        Some(DedupDecision::Claimed) => "Claimed".to_owned(),
        Some(DedupDecision::InFlight) => "InFlight".to_owned(),
        Some(DedupDecision::Completed(receipt)) => {
            format!("Completed({})", String::from_utf8_lossy(receipt.as_bytes()))
        }
    }
}

/// An engine error in a few words.
#[must_use]
pub fn show_error(error: &DurabilityError) -> String {
    match error {
        DurabilityError::SequenceConflict { expected, actual } => {
            format!("SequenceConflict({expected}->{actual})")
        }
        DurabilityError::DedupCollision { .. } => "DedupCollision".to_owned(),
        DurabilityError::EnvelopeError { sequence, .. } => format!("EnvelopeError(seq {sequence})"),
        DurabilityError::StoreError(_) => "StoreError".to_owned(),
        other => format!("{other}"),
    }
}

fn show_state(state: &atmostonce_verify::oracle::SpecState) -> String {
    match state {
        atmostonce_verify::oracle::SpecState::Absent => "absent".to_owned(),
        atmostonce_verify::oracle::SpecState::InFlight { timestamp_millis } => {
            format!("in flight (ts {timestamp_millis})")
        }
        atmostonce_verify::oracle::SpecState::Completed { receipt, .. } => {
            format!(
                "completed with {}",
                String::from_utf8_lossy(receipt.as_bytes())
            )
        }
    }
}

#[cfg(test)]
mod tests;
