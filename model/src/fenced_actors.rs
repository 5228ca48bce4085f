//! What a producer of the fenced API does in one step: claim with a claim
//! id the model draws, deliver to the fenced downstream with the token's
//! fence, complete with the token, or release it when the delivery fails
//! or the downstream refuses it.
//!
//! The answers' admissibility (S5, S7) and the records' (S2 aside) are
//! judged by the oracle while the store call is computed
//! ([`crate::fenced_judge`]); what depends on the history of the run (S1's
//! windows, S3's attempted receipts, S4's acknowledged writes, A1's
//! downstream) is checked here.

use atmostonce::DurabilityError;
use atmostonce::core::fenced::{Claim, FencedClaimOp};

use crate::action::{Call, ProducerAction};
use crate::checks::Made;
use crate::config::Fault;
use crate::fresh::{MAX_CLAIM_ID, MAX_RECEIPT_NUMBER, claim_number};
use crate::hashed::Hashed;
use crate::model::{Actor, DedupModel};
use crate::narration::Narration;
use crate::state::{Event, FencedGrant, Outcome, Phase, State};
use crate::store::{RecordKind, RecordSummary};
use atmostonce_verify::catalogue::Invariant;

impl DedupModel {
    /// A fenced producer's step (its crash is the seed producer's, see
    /// [`DedupModel::producer_step`]).
    pub(crate) fn fenced_producer_step(
        &self,
        s: &mut State,
        p: usize,
        action: ProducerAction,
        words: &mut Narration,
    ) -> Option<()> {
        let key = s.producers[p].key;
        let key_name = self.key_name(key);
        match (action, s.producers[p].phase) {
            (ProducerAction::Deliver, Phase::FencedDelivering { grant }) => {
                self.fenced_deliver(s, p, grant, words)?;
            }
            (ProducerAction::FailDelivery, Phase::FencedDelivering { grant }) => {
                s.budget.spend(Fault::DeliveryFailure)?;
                let op = Hashed::new(self.fenced()?.release(&grant.token, Self::now_ms(s)).ok()?);
                s.producers[p].phase = Phase::FencedReleasing { grant, op };
                words.say(|| {
                    format!(
                        "producer {p}'s delivery of {key_name} fails; it will release its claim"
                    )
                });
            }
            (ProducerAction::Call(call), Phase::Idle | Phase::Deferred) => {
                let number = self.fresh_claim_id(s, key)?;
                let op = self.fresh_fenced()?.claim(key, number, s.tick)?;
                let now = Self::now_ms(s);
                words.say(|| {
                    format!(
                        "producer {p} calls claim({key_name}, {now} ms) with claim id #{number}"
                    )
                });
                self.fenced_claim_call(s, p, op, false, call, words)?;
            }
            (ProducerAction::Call(call), Phase::FencedClaiming { op, resolving }) => {
                self.fenced_claim_call(s, p, op, resolving, call, words)?;
            }
            (ProducerAction::Call(call), Phase::FencedCompleting { grant, receipt, op }) => {
                let (op, result, _) = self.call(s, Actor::Producer(p), &op, call, words)?;
                let Some(result) = result else {
                    s.producers[p].phase = Phase::FencedCompleting { grant, receipt, op };
                    return Some(());
                };
                words.say(|| {
                    format!(
                        "complete({key_name}#{receipt}, fence {}) returns {result:?}",
                        grant.token.fence()
                    )
                });
                match result {
                    Ok(()) => {
                        self.acknowledge(s, key, receipt);
                        let claim = token_number(&grant);
                        self.keep_durable(s, key, |kind, number| {
                            kind == RecordKind::Complete && number == claim
                        });
                        self.finish_key(s, p, Outcome::Completed);
                    }
                    Err(DurabilityError::StaleClaim { .. }) => {
                        // A zombie: its claim was ended and taken over. It
                        // claims again to learn what became of the key.
                        s.note(Event::StaleCompletionRefused);
                        s.producers[p].phase = Phase::Idle;
                    }
                    Err(DurabilityError::DedupCollision { .. }) => {
                        self.finish_key(s, p, Outcome::GaveUp);
                    }
                    Err(_) => {
                        // Unknown outcome: complete again with the same
                        // token and receipt (a retried completion is Ok).
                        let receipt_bytes = self.receipt(key, receipt);
                        let op = self
                            .fenced()?
                            .complete(&grant.token, &receipt_bytes, Self::now_ms(s))
                            .ok()?;
                        s.producers[p].phase = Phase::FencedCompleting {
                            grant,
                            receipt,
                            op: Hashed::new(op),
                        };
                    }
                }
            }
            (ProducerAction::Call(call), Phase::FencedReleasing { grant, op }) => {
                let (op, result, _) = self.call(s, Actor::Producer(p), &op, call, words)?;
                let Some(result) = result else {
                    s.producers[p].phase = Phase::FencedReleasing { grant, op };
                    return Some(());
                };
                words.say(|| {
                    format!(
                        "release({key_name}, fence {}) returns {result:?}",
                        grant.token.fence()
                    )
                });
                match result {
                    Ok(()) => {
                        let claim = token_number(&grant);
                        self.keep_durable(s, key, |kind, number| {
                            matches!(kind, RecordKind::Release | RecordKind::Expire)
                                && number == claim
                        });
                        s.producers[p].phase = Phase::Idle;
                    }
                    Err(DurabilityError::StaleClaim { .. }) => {
                        s.note(Event::StaleReleaseRefused);
                        s.producers[p].phase = Phase::Idle;
                    }
                    Err(DurabilityError::DedupCollision { .. }) => {
                        self.finish_key(s, p, Outcome::GaveUp);
                    }
                    Err(_) => s.producers[p].phase = Phase::Idle,
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// The claim id a new claim of `key` draws: the smallest number never
    /// appended to the key's stream and held by no producer of the key, so
    /// that it is fresh as a random one is (no record, reader or holder
    /// knows it), and the same in every state that knows the same ids. An
    /// id that was drawn but never landed, by a claim that ended (deferred,
    /// crashed), is known to nobody and is drawn again: taking one above
    /// every id seen instead made producers deferred in turn draw ever
    /// higher ids, states that differ in nothing but a name. `None` when
    /// all [`MAX_CLAIM_ID`] are known (the claim is not enabled).
    pub(crate) fn fresh_claim_id(&self, s: &State, key: u8) -> Option<u8> {
        let mut known = u32::from(s.keys[usize::from(key)].claim_ids);
        for producer in s.producers.iter().filter(|producer| producer.key == key) {
            let number = match &producer.phase {
                Phase::FencedClaiming { op, .. } => claim_number(op.rule().claim_id.as_bytes()),
                Phase::FencedDelivering { grant }
                | Phase::FencedCompleting { grant, .. }
                | Phase::FencedReleasing { grant, .. } => Some(token_number(grant)),
                _ => None,
            };
            if let Some(number) = number {
                known |= 1 << number;
            }
        }
        (1..=MAX_CLAIM_ID).find(|number| known & (1 << number) == 0)
    }

    fn fenced_claim_call(
        &self,
        s: &mut State,
        p: usize,
        op: Hashed<FencedClaimOp>,
        mut resolving: bool,
        call: Call,
        words: &mut Narration,
    ) -> Option<()> {
        let (op, result, made) = self.call(s, Actor::Producer(p), &op, call, words)?;
        if let Made::Append { applied, .. } = made {
            resolving |= applied && call == Call::AppendFailsApplied;
            if !applied && call == Call::Normal {
                s.note(Event::LostRace);
            }
        }
        let Some(result) = result else {
            s.producers[p].phase = Phase::FencedClaiming { op, resolving };
            return Some(());
        };
        let key = s.producers[p].key;
        let key_name = self.key_name(key);
        words.say(|| format!("claim({key_name}) returns {result:?}"));
        match result {
            Ok(Claim::Granted(token)) => {
                self.check_answer_from_own_key(s, key);
                let window = self.window_before(s, key, token.sequence());
                let ghost = &mut s.keys[usize::from(key)];
                let again = ghost.granted_windows & (1 << window) != 0;
                ghost.granted_windows |= 1 << window;
                if again {
                    s.flag(Invariant::S1);
                }
                if resolving {
                    s.note(Event::ResolvedById);
                }
                let at = token.sequence();
                self.keep_durable_length(s, key, at.saturating_add(1));
                s.producers[p].phase = Phase::FencedDelivering {
                    grant: FencedGrant {
                        token: Hashed::new(token),
                        window,
                    },
                };
            }
            Ok(Claim::InFlight { .. }) => {
                self.check_answer_from_own_key(s, key);
                s.producers[p].phase = Phase::Deferred;
            }
            Ok(Claim::Completed(receipt)) => {
                self.check_receipt_answer(s, key, &receipt);
                self.finish_key(s, p, Outcome::Duplicate);
            }
            // `Claim` may grow; an answer the model does not know is its
            // own failure, never a pass.
            Ok(_) => s.flag(Invariant::Internal),
            Err(DurabilityError::DedupCollision { .. }) => self.finish_key(s, p, Outcome::GaveUp),
            Err(_) => s.producers[p].phase = Phase::Idle,
        }
        Some(())
    }

    /// Delivery to the fenced downstream, which refuses a fence lower than
    /// the highest it accepted for the key; a refused producer releases.
    fn fenced_deliver(
        &self,
        s: &mut State,
        p: usize,
        grant: FencedGrant,
        words: &mut Narration,
    ) -> Option<()> {
        let key = s.producers[p].key;
        let key_name = self.key_name(key);
        let fence = u8::try_from(grant.token.fence()).unwrap_or(u8::MAX);
        let accepted = s.keys[usize::from(key)].sink_fence;
        if accepted.is_some_and(|highest| fence < highest) {
            s.note(Event::StaleDeliveryRefused);
            let op = Hashed::new(self.fenced()?.release(&grant.token, Self::now_ms(s)).ok()?);
            s.producers[p].phase = Phase::FencedReleasing { grant, op };
            words.say(|| format!("the downstream refuses producer {p}'s delivery of {key_name} with fence {fence} (it accepted {accepted:?}); the producer will release its claim"));
            return Some(());
        }
        // A1: a delivery the downstream accepts belongs to a newer claim
        // window than every one it accepted before.
        if let Some(highest) = accepted
            && self.window_before(s, key, u64::from(highest)) >= grant.window
        {
            s.flag(Invariant::A1);
        }
        let ghost = &mut s.keys[usize::from(key)];
        ghost.sink_fence = Some(fence);
        ghost.deliveries = ghost.deliveries.saturating_add(1);
        let receipt = ghost.deliveries.min(MAX_RECEIPT_NUMBER);
        ghost.attempted |= 1 << receipt;
        let receipt_bytes = self.receipt(key, receipt);
        let op = self
            .fenced()?
            .complete(&grant.token, &receipt_bytes, Self::now_ms(s))
            .ok()?;
        s.producers[p].phase = Phase::FencedCompleting {
            grant,
            receipt,
            op: Hashed::new(op),
        };
        words.say(|| format!("producer {p} delivers the message of {key_name} with fence {fence} (delivery #{receipt}; its receipt will be {key_name}#{receipt})"));
        Some(())
    }

    /// The window of the claim at sequence `at` of `key`'s stream: how many
    /// of the key's claims ended before it (bounded far below 32 by the clock and
    /// the fault bounds). A fenced claim ends by a release, an expiry, or a
    /// takeover: a claim appended over an expired claim or receipt (whose
    /// admissibility the oracle judged when it landed).
    fn window_before(&self, s: &State, key: u8, at: u64) -> u8 {
        let records = self.stream_records(s, key);
        // Through `at` itself: a takeover claim opens its own window.
        let through = usize::try_from(at)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(records.len());
        let ends = (1..=through)
            .filter(|end| ends_a_window(&records[..*end], key))
            .count();
        u8::try_from(ends.min(31)).unwrap_or(31)
    }

    /// S4 from now on: `key`'s stream keeps at least its first `length`
    /// records across store crashes (an acknowledged write is durable).
    fn keep_durable_length(&self, s: &mut State, key: u8, length: u64) {
        let length = u8::try_from(length).unwrap_or(u8::MAX);
        let ghost = &mut s.keys[usize::from(key)];
        ghost.durable = ghost.durable.max(length);
    }

    /// S4 for the acknowledged record of `key` that `is_it` recognises (by
    /// kind and claim id number): it must be in the stream, and stays.
    fn keep_durable(&self, s: &mut State, key: u8, is_it: impl Fn(RecordKind, u8) -> bool) {
        let found = self
            .stream_records(s, key)
            .iter()
            .rposition(|r| r.key == key && is_it(r.kind, r.claim));
        match found {
            Some(at) => self.keep_durable_length(s, key, at as u64 + 1),
            // An expiry of a completion may have followed it; the record
            // itself must still be there.
            None => s.flag(Invariant::S4),
        }
    }

    /// S4 after a store crash: every fenced key's stream kept its
    /// acknowledged records.
    pub(crate) fn check_durable(&self, s: &mut State) {
        for key in 0..self.config.keys {
            let Ok(key) = u8::try_from(key) else { continue };
            let length = self.stream_records(s, key).len();
            if length < usize::from(s.keys[usize::from(key)].durable) {
                s.flag(Invariant::S4);
            }
        }
    }
}

/// True when the last of `records` ends a window of `key` (see
/// [`DedupModel::window_before`]): a release or expiry, or a claim taking
/// over another claim's record.
pub(crate) fn ends_a_window(records: &[RecordSummary], key: u8) -> bool {
    match records {
        [.., previous, last] if last.key == key && last.kind == RecordKind::Claim => {
            matches!(previous.kind, RecordKind::Claim | RecordKind::Complete)
                && previous.claim != last.claim
        }
        [.., last] => {
            last.key == key && matches!(last.kind, RecordKind::Release | RecordKind::Expire)
        }
        [] => false,
    }
}

/// The model's number of the claim id a grant's token carries (0 for an
/// id the model never draws, which the judge of the grant flagged).
fn token_number(grant: &FencedGrant) -> u8 {
    claim_number(grant.token.claim_id().as_bytes()).unwrap_or(0)
}
