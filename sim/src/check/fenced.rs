//! The rules for a history of the fenced API (`docs/spec.md`, "Fenced API"
//! and "Invariants"), over the same index as the seed rules.
//!
//! - **S1** by fences: a grant's fence is the sequence its claim landed
//!   at, so two grants with one fence are two winners of one append, and a
//!   grant invoked after another answered must carry a greater fence.
//! - **S2, S4** for completions as for the seed API, except that a receipt
//!   also ends when its TTL (plus the grace) has passed at the reader's
//!   clock, or when a claim took the key over; **S4** for claims and
//!   releases: an acknowledged write that a store crash dropped (the store
//!   knows which of an operation's appends were applied and dropped).
//! - **S5**: a call refused with `StaleClaim` appended nothing, and a
//!   call the search cannot place that answered `Ok` for a token is a stale
//!   token that succeeded.
//! - **S7** by the oracle's linearizability search with the fenced
//!   sequential specification (`atmostonce_verify::oracle::fenced`).
//! - **A1** on the deliveries the fenced downstream applied (the sink in
//!   `world/sink.rs` refuses stale fences): a second applied delivery needs
//!   the first claim to have ended first, by a release, an expiry, or a
//!   takeover after its lease (renewals included), and a receipt the first
//!   holder stored to have expired. A holder whose lease ran out before it
//!   completed (a pause, a crash) lets the key be delivered again: that is
//!   what a lease is; fencing guarantees that such a holder's late delivery
//!   is refused once the next holder's was applied.
//!
//! S3, S6 and A2 are the seed rules, which read every operation's seed view.

use std::collections::BTreeMap;

use atmostonce_verify::oracle::expiry::is_expired;
use atmostonce_verify::oracle::fenced::{
    Current, FencedAnswer, FencedError, FencedHistoryOp, FencedOp, FencedParams, FencedState, Token,
};
use atmostonce_verify::oracle::linear::{Linearization, linearize_checked, search_step_budget};

mod a1;

use super::index::{Checker, Effect};
use super::show::show_answer;
use super::verdict::Verdict;
use crate::history::{FencedCall, KeyId, OpId, OpRecord, WriteTruth};
use atmostonce_verify::catalogue::Invariant;

fn call(op: &OpRecord) -> Option<&FencedCall> {
    op.fenced.as_ref()
}

/// The token a fenced operation answered with (a grant or a renewal).
fn answered_token(op: &OpRecord) -> Option<Token> {
    match call(op)?.answer.as_ref()? {
        Ok(FencedAnswer::Granted(token) | FencedAnswer::Renewed(token)) => Some(*token),
        _ => None,
    }
}

fn granted(op: &OpRecord) -> Option<Token> {
    match call(op)?.answer.as_ref()? {
        Ok(FencedAnswer::Granted(token)) => Some(*token),
        _ => None,
    }
}

fn answered(op: &OpRecord) -> Option<&Result<FencedAnswer, FencedError>> {
    call(op)?.answer.as_ref()
}

fn clock_of(op: &FencedOp) -> u64 {
    match op {
        FencedOp::Claim { now_millis, .. }
        | FencedOp::Complete { now_millis, .. }
        | FencedOp::Release { now_millis, .. }
        | FencedOp::Renew { now_millis, .. }
        | FencedOp::Lookup { now_millis }
        | FencedOp::Expire { now_millis } => *now_millis,
    }
}

impl Checker<'_> {
    pub(super) fn fenced_key(&self, key: KeyId, params: FencedParams, verdict: &mut Verdict) {
        let ops = &self.by_key[usize::from(key)];
        for op in ops {
            if op.fenced.is_none() {
                self.unexplained_op(
                    verdict,
                    op,
                    "is in a fenced history but has no fenced operation",
                );
            }
            if self.unreliable_read(op) {
                verdict.notes.stale_answers += 1;
            }
        }
        self.fences(key, ops, verdict);
        self.receipts(key, ops, verdict);
        self.fenced_acknowledged(key, ops, params, verdict);
        self.stale_tokens(key, ops, verdict);
        self.fenced_linearizable(key, ops, params, verdict);
        self.fenced_at_most_once(key, verdict);
    }

    /// Reports what the checker cannot explain about `op` (never a pass).
    fn unexplained_op(&self, verdict: &mut Verdict, op: &OpRecord, what: &str) {
        Self::push(
            verdict,
            Invariant::Internal,
            op.key,
            vec![op.id],
            format!("{} {what}", self.describe(op)),
        );
    }

    /// S1 by fences.
    fn fences(&self, key: KeyId, ops: &[&OpRecord], verdict: &mut Verdict) {
        let mut grants: Vec<(&OpRecord, Token)> = ops
            .iter()
            .filter_map(|op| Some((*op, granted(op)?)))
            .collect();
        let mut by_fence: BTreeMap<u64, &OpRecord> = BTreeMap::new();
        for (op, token) in &grants {
            if let Some(other) = by_fence.insert(token.fence, op) {
                Self::push(
                    verdict,
                    Invariant::S1,
                    key,
                    vec![other.id, op.id],
                    format!(
                        "{} and {} were both granted the claim with fence {}: two winners of one \
                         append",
                        self.describe(other),
                        self.describe(op),
                        token.fence
                    ),
                );
                return;
            }
        }
        // In answer order: the highest fence answered so far must stay below
        // every grant invoked after it.
        grants.sort_by_key(|(op, _)| op.ret_or_max());
        let rets: Vec<u64> = grants.iter().map(|(op, _)| op.ret_or_max()).collect();
        let mut highest: Vec<(u64, &OpRecord)> = Vec::with_capacity(grants.len());
        for (op, token) in &grants {
            let best = match highest.last() {
                Some((fence, holder)) if *fence >= token.fence => (*fence, *holder),
                _ => (token.fence, *op),
            };
            highest.push(best);
        }
        for (op, token) in &grants {
            let before = rets.partition_point(|ret_us| *ret_us < op.call_us);
            let Some(Some((fence, earlier))) = before.checked_sub(1).map(|at| highest.get(at))
            else {
                continue;
            };
            if *fence >= token.fence {
                Self::push(
                    verdict,
                    Invariant::S1,
                    key,
                    vec![earlier.id, op.id],
                    format!(
                        "{} was granted fence {} after {} had been granted fence {fence}: a later \
                         grant must carry a greater fence",
                        self.describe(op),
                        token.fence,
                        self.describe(earlier)
                    ),
                );
                return;
            }
        }
    }

    /// S2 and S4 for completions (a receipt ends at its TTL or a takeover,
    /// too), and S4 for acknowledged claims, renewals and releases.
    fn fenced_acknowledged(
        &self,
        key: KeyId,
        ops: &[&OpRecord],
        params: FencedParams,
        verdict: &mut Verdict,
    ) {
        for op in ops {
            let acknowledged =
                matches!(
                    answered(op),
                    Some(Ok(FencedAnswer::Granted(_)
                        | FencedAnswer::Renewed(_)
                        | FencedAnswer::Done))
                ) && !matches!(call(op).map(|call| &call.op), Some(FencedOp::Expire { .. }));
            if acknowledged && op.write == WriteTruth::Dropped {
                Self::push(
                    verdict,
                    Invariant::S4,
                    key,
                    vec![op.id],
                    format!(
                        "{} was acknowledged ({}), then a store crash dropped its append: the \
                         engine acknowledged a write that was not durable",
                        self.describe(op),
                        show_answer(op)
                    ),
                );
            }
        }
        for acked in ops.iter().filter(|op| !self.exempt(op)) {
            let (
                Some(FencedCall {
                    op: FencedOp::Complete { receipt, .. },
                    answer: Some(Ok(_)),
                }),
                Some(acked_ret),
            ) = (call(acked), acked.ret_us)
            else {
                continue;
            };
            // The receipt's TTL runs from the earliest attempt that may have
            // stored it (a retried completion finds an earlier one's record).
            let stored_at_millis = acked
                .claim
                .and_then(|claim| self.completions.get(&claim))
                .into_iter()
                .flatten()
                .filter_map(|other| match call(other) {
                    Some(FencedCall {
                        op:
                            FencedOp::Complete {
                                receipt: other_receipt,
                                now_millis,
                                ..
                            },
                        ..
                    }) if other_receipt == receipt => Some(*now_millis),
                    _ => None,
                })
                .min();
            let Some(stored_at_millis) = stored_at_millis else {
                self.unexplained_op(
                    verdict,
                    acked,
                    "is an acknowledged completion missing from its claim's completions",
                );
                continue;
            };
            for later in ops
                .iter()
                .filter(|op| op.call_us > acked_ret && !self.exempt(op))
            {
                let Some(FencedCall {
                    op: later_op,
                    answer: Some(Ok(answer)),
                }) = call(later)
                else {
                    continue;
                };
                let invariant = match (later_op, answer) {
                    (_, FencedAnswer::Completed(other)) if other == receipt => continue,
                    (_, FencedAnswer::Completed(_)) => Invariant::S2,
                    (
                        FencedOp::Claim { .. } | FencedOp::Lookup { .. },
                        FencedAnswer::Granted(_)
                        | FencedAnswer::InFlight { .. }
                        | FencedAnswer::Absent,
                    ) => Invariant::S4,
                    _ => continue,
                };
                if is_expired(stored_at_millis, params.receipt_ttl_ms, clock_of(later_op))
                    || self.terminal_between(key, acked.call_us, later.ret_or_max(), true)
                {
                    continue;
                }
                Self::push(
                    verdict,
                    invariant,
                    key,
                    vec![acked.id, later.id],
                    format!(
                        "{} acknowledged a receipt, then {} answered {} before the receipt's TTL \
                         with no expiry or takeover between",
                        self.describe(acked),
                        self.describe(later),
                        show_answer(later)
                    ),
                );
            }
        }
    }

    /// S5, directly: a refused call of a token appended nothing.
    fn stale_tokens(&self, key: KeyId, ops: &[&OpRecord], verdict: &mut Verdict) {
        for op in ops {
            if matches!(answered(op), Some(Err(FencedError::StaleClaim)))
                && op.write != WriteTruth::None
            {
                Self::push(
                    verdict,
                    Invariant::S5,
                    key,
                    vec![op.id],
                    format!(
                        "{} was refused with StaleClaim, yet the store applied an append of it",
                        self.describe(op)
                    ),
                );
            }
        }
    }

    /// S7 for one key by the fenced specification; a stale token's call
    /// that succeeded where no order admits it is S5 as well.
    fn fenced_linearizable(
        &self,
        key: KeyId,
        ops: &[&OpRecord],
        params: FencedParams,
        verdict: &mut Verdict,
    ) {
        let judged: Vec<&OpRecord> = ops
            .iter()
            .filter(|op| !self.exempt(op))
            .filter(|op| {
                !matches!(op.op, atmostonce_verify::oracle::SpecOp::Expire)
                    || Self::expiry_effect(op) != Effect::None
            })
            .copied()
            .collect();
        let stream_shared = self.shared(key);
        let history: Vec<FencedHistoryOp<'_>> = judged
            .iter()
            .filter_map(|op| {
                let call = call(op)?;
                Some(FencedHistoryOp {
                    op: &call.op,
                    invoked_at: op.call_us,
                    answered_at: op.ret_us,
                    answer: call.answer.as_ref(),
                    stream_shared,
                    params,
                })
            })
            .collect();
        if history.len() != judged.len() {
            // Reported by `fenced_key` already.
            return;
        }
        match linearize_checked(&history, FencedState::default()) {
            Ok(Linearization::Linearizable) => {}
            Ok(Linearization::NotLinearizable {
                blocked,
                concurrent,
                state,
            }) => {
                let blocked_op = judged[blocked];
                let mut involved: Vec<OpId> =
                    concurrent.iter().map(|index| judged[*index].id).collect();
                involved.push(blocked_op.id);
                let stale_success = matches!(
                    call(blocked_op),
                    Some(FencedCall {
                        op: FencedOp::Complete { .. }
                            | FencedOp::Release { .. }
                            | FencedOp::Renew { .. },
                        answer: Some(Ok(_)),
                    })
                );
                if stale_success {
                    Self::push(
                        verdict,
                        Invariant::S5,
                        key,
                        involved.clone(),
                        format!(
                            "{} succeeded although no order of the key's operations leaves its \
                             token's claim current (the furthest order leaves {})",
                            self.describe(blocked_op),
                            show_fenced_state(&state)
                        ),
                    );
                }
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
                        show_fenced_state(&state)
                    ),
                );
            }
            Ok(Linearization::GaveUp) => Self::push(
                verdict,
                Invariant::Internal,
                key,
                Vec::new(),
                format!(
                    "the linearizability search gave up after {} steps",
                    search_step_budget(history.len())
                ),
            ),
            Err(unexplained) => Self::push(
                verdict,
                Invariant::Internal,
                key,
                unexplained
                    .op
                    .and_then(|index| judged.get(index))
                    .map(|op| op.id)
                    .into_iter()
                    .collect(),
                format!(
                    "the fenced search cannot explain the history: {}",
                    unexplained.reason
                ),
            ),
        }
    }
}

fn show_fenced_state(state: &FencedState) -> String {
    let current = match &state.current {
        Current::Absent => "absent".to_owned(),
        Current::Claim {
            fence,
            lease_expires_millis,
            holder,
            ..
        } => format!(
            "held (fence {fence}, lease to {lease_expires_millis} ms{})",
            if holder.is_some() {
                ""
            } else {
                ", by an unknown holder"
            }
        ),
        Current::Completion { receipt, fence, .. } => format!(
            "completed under fence {fence} with {}",
            String::from_utf8_lossy(receipt.as_bytes())
        ),
        Current::Release { reason, .. } => format!("released ({reason:?})"),
    };
    format!("{current}, next record at sequence {}", state.next_sequence)
}
