//! A1 for the fenced API: on the deliveries the fenced downstream applied
//! (see the parent module's rules), and on deliveries no grant authorised.

use atmostonce_verify::catalogue::{Invariant, KnownCause};
use atmostonce_verify::oracle::expiry::is_expired;
use atmostonce_verify::oracle::fenced::FencedOp;

use super::{answered, answered_token, call, granted};
use crate::check::index::Checker;
use crate::check::verdict::Verdict;
use crate::history::{KeyId, OpId, OpRecord};

impl Checker<'_> {
    /// A1 on the deliveries the fenced downstream applied.
    pub(super) fn fenced_at_most_once(&self, key: KeyId, verdict: &mut Verdict) {
        let mut deliveries: Vec<&OpRecord> = Vec::new();
        for claim in &self.deliveries[usize::from(key)] {
            match self.history.ops.get(*claim as usize) {
                Some(op) if op.key == key && granted(op).is_some() => deliveries.push(op),
                found => self.ungranted_delivery(key, *claim, found, verdict),
            }
        }
        deliveries.sort_by_key(|claim| (claim.ret_or_max(), claim.id));
        for pair in deliveries.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if first.id == second.id {
                Self::push(
                    verdict,
                    Invariant::A1,
                    key,
                    vec![first.id],
                    format!(
                        "{} was granted once and its holder delivered twice",
                        self.describe(first)
                    ),
                );
                continue;
            }
            let Some(FencedOp::Claim {
                now_millis: second_now,
                ..
            }) = call(second).map(|call| &call.op)
            else {
                self.unexplained_op(verdict, second, "delivered, but is not a fenced claim");
                continue;
            };
            let attempts: &[&OpRecord] = self.completions.get(&first.id).map_or(&[], Vec::as_slice);
            let granted_us = second.ret_or_max();
            // A receipt the first holder stored before the second grant
            // keeps the key completed for the dedup window (the receipt TTL
            // plus the grace, less the largest skew, in true time), from the
            // first attempt that may have stored it.
            let acknowledged = attempts
                .iter()
                .any(|op| matches!(answered(op), Some(Ok(_))) && op.ret_or_max() <= granted_us);
            if acknowledged {
                let stored_from_us = attempts.iter().map(|op| op.call_us).min().unwrap_or(0);
                let window_us = self.history.dedup_window_us.unwrap_or(0);
                if granted_us < stored_from_us.saturating_add(window_us) {
                    Self::push(
                        verdict,
                        Invariant::A1,
                        key,
                        vec![first.id, second.id],
                        format!(
                            "{} delivered and stored its receipt; {} was granted {} ms after the \
                             first attempt to store it, inside the dedup window (receipt TTL + \
                             grace - skew = {} ms), and delivered again",
                            self.describe(first),
                            self.describe(second),
                            (granted_us - stored_from_us) / 1000,
                            window_us / 1000
                        ),
                    );
                }
                continue;
            }
            // The first claim's lease, as far as its holder was told
            // (renewals answered before the second grant).
            let lease_end = self
                .history
                .ops
                .iter()
                .filter(|op| op.id == first.id || op.claim == Some(first.id))
                .filter(|op| op.ret_or_max() <= granted_us)
                .filter_map(answered_token)
                .map(|token| token.lease_expires_millis)
                .max();
            let Some(lease_end) = lease_end else {
                self.unexplained_op(verdict, first, "delivered without a token");
                continue;
            };
            let ended = is_expired(lease_end, 0, *second_now)
                || self.terminal_between(key, first.ret_or_max(), granted_us, false);
            if !ended {
                Self::push(
                    verdict,
                    Invariant::A1,
                    key,
                    vec![first.id, second.id],
                    format!(
                        "{} and {} both had deliveries applied downstream: the second claim was \
                         granted at {second_now} ms while the first one's lease (to {lease_end} \
                         ms) still held and nothing had ended it",
                        self.describe(first),
                        self.describe(second)
                    ),
                );
            } else {
                Self::excuse(
                    verdict,
                    KnownCause::LeaseEndedBeforeCompletion,
                    Invariant::A1,
                    key,
                    vec![first.id, second.id],
                    format!(
                        "{} delivered and its claim ended (lease to {lease_end} ms) before any \
                         completion; {} was granted at {second_now} ms and delivered again",
                        self.describe(first),
                        self.describe(second)
                    ),
                );
            }
        }
    }
}

impl Checker<'_> {
    /// A1 for a delivery that no grant of `key` authorised (a user's
    /// handler, `atmostonce_sim::harness`, reported a side effect after a
    /// claim that answered `InFlight`, `Completed` or an error, or with no
    /// claim at all): nothing bounds it, so it is a violation by itself.
    fn ungranted_delivery(
        &self,
        key: KeyId,
        claim: OpId,
        found: Option<&OpRecord>,
        verdict: &mut Verdict,
    ) {
        let name = &self.history.keys[usize::from(key)];
        let (ops, message) = match found {
            Some(op) => {
                let answer = match call(op).and_then(|call| call.answer.as_ref()) {
                    Some(Ok(answer)) => format!("{answer:?}"),
                    Some(Err(error)) => format!("the error {error:?}"),
                    None => "nothing (its caller crashed)".to_owned(),
                };
                (
                    vec![op.id],
                    format!(
                        "key {name:?} was delivered under {}, which answered {answer} and \
                         granted nothing: a delivery needs a granted claim",
                        self.describe(op)
                    ),
                )
            }
            None if claim == crate::history::NO_CLAIM => (
                Vec::new(),
                format!(
                    "key {name:?} was delivered by a producer that never claimed it: a \
                     delivery needs a granted claim"
                ),
            ),
            None => (
                Vec::new(),
                format!(
                    "key {name:?} was delivered under op {claim}, which is no claim of this \
                     key: a delivery needs a granted claim"
                ),
            ),
        };
        Self::push(verdict, Invariant::A1, key, ops, message);
    }
}
