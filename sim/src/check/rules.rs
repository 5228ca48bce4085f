//! The rules: S1-S4, S6 and A1 as direct checks over the indexed
//! operations and terminal events, S7 by the oracle's linearizability
//! search, A2 over the probe's answers.

use std::collections::BTreeMap;

use atmostonce::{DedupDecision, ProcessingReceipt};
use atmostonce_verify::oracle::linear::{HistoryOp, Linearization, linearize, search_step_budget};
use atmostonce_verify::oracle::{ErrorClass, SpecAnswer, SpecOp};

use super::index::{Checker, Effect};
use super::show::{show_answer, show_state};
use super::verdict::{Verdict, Violation};
use crate::history::receipt_key;
use crate::history::{Event, KeyId, OpId, OpRecord, Process};
use atmostonce_verify::catalogue::{Invariant, KnownCause};

impl Checker<'_> {
    pub(super) fn key(&self, key: KeyId, verdict: &mut Verdict) {
        if let Some(params) = self.history.fenced {
            self.fenced_key(key, params, verdict);
            return;
        }
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
    pub(super) fn receipts(&self, key: KeyId, ops: &[&OpRecord], verdict: &mut Verdict) {
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
                format!(
                    "the linearizability search gave up after {} steps",
                    search_step_budget(judged.len())
                ),
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
                    Self::excuse(
                        verdict,
                        KnownCause::HolderCrashedAfterDelivery,
                        Invariant::A1,
                        key,
                        vec![first.id, second.id],
                        format!(
                            "{} delivered, then its holder crashed or could not store its \
                             receipt; {} was granted after the claim expired and delivered again",
                            self.describe(first),
                            self.describe(second)
                        ),
                    );
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
                Some(Err(error)) => ErrorClass::of(error) == ErrorClass::Indeterminate,
                Some(Ok(_)) => false,
            });
        crashed || all_failed
    }

    /// A2: after the quiet phase the probe finds every key completed or
    /// claimable; keys whose stream is shared or corrupted are exempt.
    pub(super) fn progress(&self, verdict: &mut Verdict) {
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
