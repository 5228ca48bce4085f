//! The decisions of the single-key operations (the seed system's semantics).
//!
//! A [`Rule`] is what distinguishes claim, lookup, complete and release; the
//! shared machinery of reading a stream, appending at its head and resolving
//! lost races and indeterminate errors lives in [`KeyOp`](super::KeyOp).

use std::fmt::Debug;
use std::hash::Hash;

use super::{DedupDecision, KeyState, Target};
use crate::DurabilityError;
use crate::codec::{DedupEntry, DedupRecord, ProcessingReceipt, Tombstone};
use crate::limits::MAX_CONFLICT_ROUNDS;

/// What a rule decides from a key's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Plan<T> {
    /// End the operation with this result.
    Finish(Result<T, DurabilityError>),
    /// Append this record at the stream's head.
    Append(DedupRecord),
}

/// A lost append race: the stream was `actual` long, not `expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LostRace {
    /// The sequence the append was conditioned on.
    pub expected: u64,
    /// The stream's length as the store (or a re-read) reported it.
    pub actual: u64,
    /// How many races this operation has lost so far, this one included.
    pub round: u32,
}

impl LostRace {
    /// The error that reports this race to the caller.
    #[must_use]
    pub fn error(&self) -> DurabilityError {
        DurabilityError::SequenceConflict {
            expected: self.expected,
            actual: self.actual,
        }
    }
}

/// The decisions of one kind of single-key operation.
pub trait Rule: Clone + Eq + Hash + Debug {
    /// What the operation ends with.
    type Output: Clone + Eq + Hash + Debug;

    /// The first decision, from the state read.
    fn decide(&self, target: &Target, state: &KeyState) -> Plan<Self::Output>;

    /// The result once this rule's append has landed (and been flushed).
    fn landed(&self) -> Self::Output;

    /// The decision after another writer appended first; `state` is the
    /// state re-read after the race.
    fn after_lost_race(
        &self,
        target: &Target,
        state: &KeyState,
        race: LostRace,
    ) -> Plan<Self::Output>;
}

/// `claim_or_get`: claim an absent key, or report who has it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimRule {
    /// The claim's TTL anchor.
    pub now_millis: u64,
}

impl Rule for ClaimRule {
    type Output = DedupDecision;

    fn decide(&self, target: &Target, state: &KeyState) -> Plan<DedupDecision> {
        match state {
            KeyState::Absent => Plan::Append(DedupRecord::Active(DedupEntry::new(
                target.key.clone(),
                None,
                self.now_millis,
            ))),
            KeyState::InFlight { .. } => Plan::Finish(Ok(DedupDecision::InFlight)),
            KeyState::Completed { receipt, .. } => {
                Plan::Finish(Ok(DedupDecision::Completed(receipt.clone())))
            }
        }
    }

    fn landed(&self) -> DedupDecision {
        DedupDecision::Claimed
    }

    /// The seed returns the winner's decision; when the winner was a
    /// release or an expiry (the key is absent again) it reports the lost
    /// race as an error rather than trying again.
    fn after_lost_race(
        &self,
        _target: &Target,
        state: &KeyState,
        race: LostRace,
    ) -> Plan<DedupDecision> {
        match state {
            KeyState::Absent => Plan::Finish(Err(race.error())),
            KeyState::InFlight { .. } => Plan::Finish(Ok(DedupDecision::InFlight)),
            KeyState::Completed { receipt, .. } => {
                Plan::Finish(Ok(DedupDecision::Completed(receipt.clone())))
            }
        }
    }
}

/// `lookup`: report the key's state, never write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LookupRule;

impl Rule for LookupRule {
    type Output = Option<DedupDecision>;

    fn decide(&self, _target: &Target, state: &KeyState) -> Plan<Option<DedupDecision>> {
        Plan::Finish(Ok(state.decision()))
    }

    fn landed(&self) -> Option<DedupDecision> {
        None
    }

    fn after_lost_race(
        &self,
        _target: &Target,
        state: &KeyState,
        _race: LostRace,
    ) -> Plan<Option<DedupDecision>> {
        Plan::Finish(Ok(state.decision()))
    }
}

/// `complete_receipt_at`: store the receipt on an in-flight key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompleteRule {
    /// The receipt to store.
    pub receipt: ProcessingReceipt,
    /// The completion's TTL anchor.
    pub timestamp_millis: u64,
}

impl Rule for CompleteRule {
    type Output = ();

    fn decide(&self, target: &Target, state: &KeyState) -> Plan<()> {
        match state {
            KeyState::InFlight { .. } => Plan::Append(DedupRecord::Active(DedupEntry::new(
                target.key.clone(),
                Some(self.receipt.as_bytes().to_vec()),
                self.timestamp_millis,
            ))),
            // Completing twice with the same receipt is a no-op: a producer
            // may retry a completion whose answer it did not get.
            KeyState::Completed { receipt, .. } if *receipt == self.receipt => Plan::Finish(Ok(())),
            // Never replace a stored receipt, never complete an unclaimed key.
            KeyState::Completed { .. } | KeyState::Absent => {
                Plan::Finish(Err(DurabilityError::DedupCollision {
                    key: target.key.clone(),
                }))
            }
        }
    }

    fn landed(&self) {}

    /// Another writer moved the key on: decide again from what it holds now,
    /// for a bounded number of rounds.
    fn after_lost_race(&self, target: &Target, state: &KeyState, race: LostRace) -> Plan<()> {
        if race.round > MAX_CONFLICT_ROUNDS {
            return Plan::Finish(Err(race.error()));
        }
        self.decide(target, state)
    }
}

/// `release_claim_at`: tombstone an in-flight claim; never touch a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReleaseRule {
    /// The tombstone's timestamp.
    pub timestamp_millis: u64,
}

impl Rule for ReleaseRule {
    type Output = ();

    fn decide(&self, target: &Target, state: &KeyState) -> Plan<()> {
        match state {
            KeyState::InFlight { .. } => Plan::Append(DedupRecord::Tombstone(Tombstone::new(
                target.key.clone(),
                self.timestamp_millis,
            ))),
            // Absent, already released, or completed: nothing to release,
            // and a receipt is never clobbered.
            KeyState::Absent | KeyState::Completed { .. } => Plan::Finish(Ok(())),
        }
    }

    fn landed(&self) {}

    /// Completed or tombstoned by someone else means done; a fresh claim by
    /// someone else must be left alone, and the race is reported.
    fn after_lost_race(&self, _target: &Target, state: &KeyState, race: LostRace) -> Plan<()> {
        match state {
            KeyState::Absent | KeyState::Completed { .. } => Plan::Finish(Ok(())),
            KeyState::InFlight { .. } => Plan::Finish(Err(race.error())),
        }
    }
}
