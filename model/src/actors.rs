//! What the actors do in one step: a producer claims, delivers, completes
//! or releases its key's message; the sweeper runs its passes.

use atmostonce::DurabilityError;
use atmostonce::core::fenced::SkipReason;
use atmostonce::core::{ClaimOp, DedupDecision};
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};

use crate::action::{Call, ProducerAction};
use crate::calls::Machine;
use crate::checks::Made;
use crate::config::{Api, Config, Fault, TICK_MS, TTL_MS};
use crate::fresh::MAX_RECEIPT_NUMBER;
use crate::hashed::Hashed;
use crate::model::{Actor, DedupModel};
use crate::narration::{Narration, show_result};
use atmostonce_verify::catalogue::Invariant;

use crate::state::{Event, Grant, Outcome, Phase, State, SweepPass};
use crate::store::{ModelStore, RecordKind, Session};

impl DedupModel {
    pub(crate) fn producer_step(
        &self,
        s: &mut State,
        p: usize,
        action: ProducerAction,
        words: &mut Narration,
    ) -> Option<()> {
        let key = s.producers[p].key;
        let key_name = self.key_name(key);
        let now = Self::now_ms(s);
        match (action, s.producers[p].phase) {
            (ProducerAction::Crash, phase) => {
                if !phase.is_busy() {
                    return None;
                }
                s.budget.spend(Fault::Crash)?;
                s.producers[p].phase = Phase::Idle;
                s.producers[p].session = Session::default();
                words.say(|| format!("producer {p} crashes and restarts with no memory; it will handle {key_name} again"));
            }
            (action, _) if self.config.api == Api::Fenced => {
                return self.fenced_producer_step(s, p, action, words);
            }
            (ProducerAction::Deliver, Phase::Delivering { grant }) => {
                let ghost = &mut s.keys[usize::from(key)];
                ghost.deliveries = ghost.deliveries.saturating_add(1);
                let receipt = ghost.deliveries.min(MAX_RECEIPT_NUMBER);
                ghost.window_deliveries = (ghost.window_deliveries + 1).min(2);
                ghost.attempted |= 1 << receipt;
                if ghost.window_deliveries > 1 && self.config.timing_assumption() {
                    s.flag(Invariant::A1);
                }
                let op = self.fresh.complete(key, receipt, s.tick)?;
                s.producers[p].phase = Phase::Completing { grant, receipt, op };
                words.say(|| format!("producer {p} delivers the message of {key_name} (delivery #{receipt}; its receipt will be {key_name}#{receipt})"));
            }
            (ProducerAction::FailDelivery, Phase::Delivering { grant }) => {
                s.budget.spend(Fault::DeliveryFailure)?;
                let op = self.fresh.release(key, s.tick)?;
                s.producers[p].phase = Phase::Releasing { grant, op };
                words.say(|| {
                    format!(
                        "producer {p}'s delivery of {key_name} fails; it will release its claim"
                    )
                });
            }
            (ProducerAction::Call(call), Phase::Idle | Phase::Deferred) => {
                let op = self.fresh.claim(key, s.tick)?;
                words.say(|| format!("producer {p} calls claim_or_get({key_name}, {now} ms)"));
                self.claim_call(s, p, op, (0, false), call, words)?;
            }
            (
                ProducerAction::Call(call),
                Phase::Claiming {
                    op,
                    append_seq,
                    landed,
                },
            ) => {
                self.claim_call(s, p, op, (append_seq, landed), call, words)?;
            }
            (ProducerAction::Call(call), Phase::Completing { grant, receipt, op }) => {
                let (op, result, made) = self.call(s, Actor::Producer(p), &op, call, words)?;
                match result {
                    None => s.producers[p].phase = Phase::Completing { grant, receipt, op },
                    Some(result) => {
                        let rule = op.rule();
                        let spec_op = SpecOp::Complete {
                            receipt: rule.receipt.clone(),
                            timestamp_millis: rule.timestamp_millis,
                        };
                        // Acknowledged after a flush: its own receipt (they
                        // are unique) must have landed.
                        let landed = self.stream_records(s, key).iter().any(|r| {
                            r.kind == RecordKind::Complete && r.key == key && r.receipt == receipt
                        });
                        let observed = result.clone().map(|()| SpecAnswer::Done);
                        self.check_linearizable(s, key, &spec_op, &observed, made, landed);
                        self.completed(s, p, grant, receipt, result, words)?;
                    }
                }
            }
            (ProducerAction::Call(call), Phase::Releasing { grant, op }) => {
                let (op, result, made) = self.call(s, Actor::Producer(p), &op, call, words)?;
                match result {
                    None => s.producers[p].phase = Phase::Releasing { grant, op },
                    Some(result) => {
                        // Releases are not unique records: an acknowledged
                        // release is not checked for having landed.
                        let observed = result.clone().map(|()| SpecAnswer::Done);
                        self.check_linearizable(s, key, &SpecOp::Release, &observed, made, true);
                        words.say(|| format!("release_claim({key_name}) returns {result:?}"));
                        match result {
                            Err(DurabilityError::DedupCollision { .. }) => {
                                self.finish_key(s, p, Outcome::GaveUp);
                            }
                            _ => s.producers[p].phase = Phase::Idle,
                        }
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }

    pub(crate) fn claim_call(
        &self,
        s: &mut State,
        p: usize,
        op: Hashed<ClaimOp>,
        (mut append_seq, mut landed): (u64, bool),
        call: Call,
        words: &mut Narration,
    ) -> Option<()> {
        let (op, result, made) = self.call(s, Actor::Producer(p), &op, call, words)?;
        if let Made::Append { seq, applied } = made {
            append_seq = seq;
            landed |= applied;
        }
        let Some(result) = result else {
            s.producers[p].phase = Phase::Claiming {
                op,
                append_seq,
                landed,
            };
            return Some(());
        };
        let key = s.producers[p].key;
        let spec_op = SpecOp::Claim {
            now_millis: op.rule().now_millis,
        };
        let observed = result.clone().map(SpecAnswer::Decision);
        self.check_linearizable(s, key, &spec_op, &observed, made, landed);
        let key_name = self.key_name(key);
        words.say(|| format!("claim_or_get({key_name}) returns {}", show_result(&result)));
        match result {
            Ok(DedupDecision::Claimed) => {
                self.check_answer_from_own_key(s, key);
                // The window of the grant's record: tombstones of the key
                // before it. Windows are bounded far below 32 by the clock
                // and the fault bounds.
                let records = &s.store.streams[self.stream_of(key)].records;
                let before = usize::try_from(append_seq)
                    .unwrap_or(usize::MAX)
                    .min(records.len());
                let window = records[..before]
                    .iter()
                    .filter(|r| {
                        r.key == key && matches!(r.kind, RecordKind::Release | RecordKind::Expire)
                    })
                    .count()
                    .min(31);
                let ghost = &mut s.keys[usize::from(key)];
                let again = ghost.granted_windows & (1 << window) != 0;
                ghost.granted_windows |= 1 << window;
                if again {
                    s.flag(Invariant::S1);
                }
                s.producers[p].phase = Phase::Delivering {
                    grant: Grant {
                        stamp_ms: op.rule().now_millis,
                        seq: append_seq,
                    },
                };
            }
            Ok(DedupDecision::InFlight) => {
                self.check_answer_from_own_key(s, key);
                s.producers[p].phase = Phase::Deferred;
            }
            Ok(DedupDecision::Completed(receipt)) => {
                self.check_receipt_answer(s, key, &receipt);
                self.finish_key(s, p, Outcome::Duplicate);
            }
            Err(DurabilityError::DedupCollision { .. }) => self.finish_key(s, p, Outcome::GaveUp),
            Err(_) => s.producers[p].phase = Phase::Idle,
        }
        Some(())
    }

    pub(crate) fn completed(
        &self,
        s: &mut State,
        p: usize,
        grant: Grant,
        receipt: u8,
        result: Result<(), DurabilityError>,
        words: &mut Narration,
    ) -> Option<()> {
        let key = s.producers[p].key;
        let key_name = self.key_name(key);
        words.say(|| {
            format!("complete_receipt({key_name}, {key_name}#{receipt}) returns {result:?}")
        });
        match result {
            Ok(()) => {
                self.acknowledge(s, key, receipt);
                self.finish_key(s, p, Outcome::Completed);
            }
            Err(DurabilityError::DedupCollision { .. }) => self.finish_key(s, p, Outcome::GaveUp),
            Err(_) => {
                // The outcome is unknown or the race was lost: try again
                // with the same receipt (completing twice is a no-op).
                let op = self.fresh.complete(key, receipt, s.tick)?;
                s.producers[p].phase = Phase::Completing { grant, receipt, op };
            }
        }
        Some(())
    }

    pub(crate) fn finish_key(&self, s: &mut State, p: usize, outcome: Outcome) {
        let producer = &mut s.producers[p];
        producer.outcomes |= 1 << (outcome as u8);
        if usize::from(producer.key) + 1 < self.config.keys {
            producer.key += 1;
            producer.phase = Phase::Idle;
        } else {
            producer.phase = Phase::Done(outcome);
        }
    }

    pub(crate) fn sweeper_step(
        &self,
        s: &mut State,
        call: Call,
        words: &mut Narration,
    ) -> Option<()> {
        self.sweeper_step_from(s, None, call, words)
    }

    /// The sweeper's step; an idle sweeper starts `start` when given (a
    /// pass on a skewed clock), else a pass on the true clock.
    pub(crate) fn sweeper_step_from(
        &self,
        s: &mut State,
        start: Option<SweepPass>,
        call: Call,
        words: &mut Narration,
    ) -> Option<()> {
        let pass = match (&s.sweeper.op, start) {
            (Some(pass), None) => *pass,
            (Some(_), Some(_)) => return None,
            (None, Some(pass)) => {
                let (now, true_now) = (pass.now_millis(), Self::now_ms(s));
                words.say(|| {
                    format!(
                        "the sweeper starts a pass on a skewed clock: it reads {now} ms at \
                         {true_now} ms (ttl {TTL_MS} ms + 1000 ms grace)"
                    )
                });
                pass
            }
            (None, None) => {
                let now = Self::now_ms(s);
                words.say(|| {
                    format!(
                        "the sweeper starts a pass at {now} ms (ttl {TTL_MS} ms + 1000 ms grace)"
                    )
                });
                match self.fresh_fenced() {
                    None => SweepPass::Seed(self.fresh.sweep(s.tick)?),
                    Some(fresh) => SweepPass::Fenced(fresh.sweep(s.tick)?),
                }
            }
        };
        let before = s.store;
        s.sweeper.op = match pass {
            SweepPass::Seed(op) => {
                let (op, ended) = self.sweep_call(s, op, call, words)?;
                if let Some(Err(error)) = ended {
                    self.check_sweep_went_on(s, &error);
                }
                op.map(SweepPass::Seed)
            }
            SweepPass::Fenced(op) => {
                let (op, ended) = self.sweep_call(s, op, call, words)?;
                match ended {
                    Some(Err(error)) => self.check_sweep_went_on(s, &error),
                    Some(Ok(report)) => {
                        let skipped_damaged = report.skipped.iter().any(|skipped| {
                            matches!(skipped.reason, SkipReason::Corrupt { sequence, .. }
                            if self.stream_index(&skipped.stream).is_some_and(|index| {
                                s.store.streams[index].is_damaged(sequence)
                            }))
                        });
                        if skipped_damaged {
                            s.note(Event::CorruptSkipped);
                        }
                    }
                    None => {}
                }
                op.map(SweepPass::Fenced)
            }
        };
        self.note_expiry(s, &before, pass.now_millis());
        Some(())
    }

    /// A2 in the model's safety form: a sweep pass never ends on a damaged
    /// record (the seed sweep's F5: one such record stops every expiry);
    /// it names the key and goes on. Other errors (a failed flush, an
    /// indeterminate append) may end a pass: the next one goes on.
    fn check_sweep_went_on(&self, s: &mut State, error: &DurabilityError) {
        if matches!(error, DurabilityError::EnvelopeError { .. }) {
            s.flag(Invariant::A2);
        }
    }

    /// The events of an expiry the step appended: on a skewed clock
    /// ([`Event::SkewedExpiry`]), and of a claim whose lease plus the grace
    /// had not passed by the true clock ([`Event::LeaseCutShort`]).
    fn note_expiry(&self, s: &mut State, before: &ModelStore, pass_now_ms: u64) {
        // Events are the fenced API's (the seed API's states stay as they
        // were: its figures are comparable).
        if self.config.api != Api::Fenced {
            return;
        }
        let tick = s.tick;
        let mut events = Vec::new();
        for (was, is) in before.streams.iter().zip(&s.store.streams) {
            let [.., expired, last] = is.records.as_slice() else {
                continue;
            };
            if is.records.len() != was.records.len() + 1 || last.kind != RecordKind::Expire {
                continue;
            }
            // A pass on the true clock reads a whole tick (it may have
            // started a tick before this one); a skewed one never does, as
            // the skew is below one tick (`MAX_SKEW_MS`).
            if !pass_now_ms.is_multiple_of(TICK_MS) {
                events.push(Event::SkewedExpiry);
            }
            let stamp_ms = u64::from(expired.tick) * TICK_MS;
            if expired.kind == RecordKind::Claim && !Config::expired_at(stamp_ms, tick) {
                events.push(Event::LeaseCutShort);
            }
        }
        for event in events {
            s.note(event);
        }
    }

    /// One store call of a sweep pass: the pass, unless it ended, and its
    /// result if it did.
    #[allow(clippy::type_complexity)]
    fn sweep_call<O: Machine>(
        &self,
        s: &mut State,
        op: Hashed<O>,
        call: Call,
        words: &mut Narration,
    ) -> Option<(
        Option<Hashed<O>>,
        Option<Result<O::Output, DurabilityError>>,
    )> {
        let (op, result, _) = self.call(s, Actor::Sweeper, &op, call, words)?;
        Some(match result {
            None => (Some(op), None),
            Some(result) => {
                words.say(|| format!("the sweep ends: {result:?}"));
                (None, Some(result))
            }
        })
    }
}
