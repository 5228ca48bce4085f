//! The sequential specification of one key (`docs/spec.md`, S7).
//!
//! Every checker of the project — the simulator's history checker, the
//! model checker and the `cache_ops` fuzz target — judges the engine's
//! answers against this one definition:
//!
//! - state: `Absent | InFlight(ts) | Completed(R, ts)`;
//! - `claim(now)`: `Absent` becomes `InFlight(now)` and answers `Claimed`;
//!   otherwise it answers `InFlight` or `Completed(R)` and changes nothing;
//! - `lookup`: answers `None`, `InFlight` or `Completed(R)`;
//! - `complete(R, ts)`: `InFlight` becomes `Completed(R, ts)`; completing
//!   `Completed(R)` again with the same `R` is `Ok` and changes nothing; any
//!   other case answers `DedupCollision` and changes nothing;
//! - `release(ts)`: `InFlight` becomes `Absent`; otherwise `Ok`, no change;
//! - `expire`: an active state (`InFlight` or `Completed`) becomes `Absent`.
//!
//! [`SpecState::judge`] says whether an *observed* answer is one the
//! operation may give from a state, and what state follows. Error answers
//! are classified by [`ErrorClass`]: an indeterminate error (`StoreError`,
//! `EnvelopeError`) may have taken effect or not; a lost race
//! (`SequenceConflict`) and a refused input took no effect.
//!
//! [`linear::linearize`] judges a whole concurrent history of one key: it
//! searches for an order of its operations in which every answer is one
//! [`SpecState::judge`] admits.

use atmostonce::DedupDecision;
use atmostonce::DurabilityError;
use atmostonce::ProcessingReceipt;

/// A key's state in the sequential specification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecState {
    /// Never claimed, released, or expired.
    #[default]
    Absent,
    /// Claimed, no receipt yet.
    InFlight {
        /// The claim's TTL anchor.
        timestamp_millis: u64,
    },
    /// Completed with a receipt.
    Completed {
        /// The stored receipt.
        receipt: ProcessingReceipt,
        /// The completion's TTL anchor.
        timestamp_millis: u64,
    },
}

/// An operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpecOp {
    /// `claim_or_get(key, now_millis)`.
    Claim {
        /// The claim's TTL anchor.
        now_millis: u64,
    },
    /// `lookup(key)`.
    Lookup,
    /// `complete_receipt_at(key, receipt, timestamp_millis)`.
    Complete {
        /// The receipt.
        receipt: ProcessingReceipt,
        /// The completion's TTL anchor.
        timestamp_millis: u64,
    },
    /// `release_claim_at(key, timestamp_millis)`.
    Release,
    /// The sweeper tombstoning the key.
    Expire,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpecAnswer {
    /// The answer of `claim_or_get`.
    Decision(DedupDecision),
    /// The answer of `lookup`.
    Lookup(Option<DedupDecision>),
    /// The answer of `complete`, `release` and `expire`.
    Done,
}

/// What the specification says an operation answers from a state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpecResponse {
    /// The operation succeeds with this answer.
    Ok(SpecAnswer),
    /// The operation is refused with `DedupCollision` (a completion that
    /// does not match the key's state).
    Collision,
}

/// How an error answer bears on the key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The operation may or may not have taken effect (`StoreError`,
    /// `EnvelopeError`).
    Indeterminate,
    /// The operation took no effect (`SequenceConflict`, refused input or
    /// configuration).
    NoEffect,
    /// `DedupCollision`: no effect, and only admissible where the
    /// specification refuses the operation (or the key's stream is shared
    /// with another key, which the caller knows and the spec does not).
    Collision,
    /// An error this oracle does not know (a variant added to the engine
    /// after this classification was written). A judge reports it as an
    /// internal error; it never guesses what the error did.
    Unclassified,
}

impl ErrorClass {
    /// The class of an engine error (`docs/spec.md`, "Error classes").
    #[must_use]
    // The wildcard is unreachable while `DurabilityError` lists only the
    // variants above; it becomes reachable when the engine adds one (the
    // fenced API's `StaleClaim`, or `#[non_exhaustive]`), which is then
    // unclassified until this function learns it.
    #[allow(unreachable_patterns)]
    pub fn of(error: &DurabilityError) -> ErrorClass {
        match error {
            DurabilityError::StoreError(_) | DurabilityError::EnvelopeError { .. } => {
                ErrorClass::Indeterminate
            }
            DurabilityError::DedupCollision { .. } => ErrorClass::Collision,
            DurabilityError::SequenceConflict { .. }
            | DurabilityError::ConfigError(_)
            | DurabilityError::LimitExceeded { .. }
            | DurabilityError::InvalidInput(_) => ErrorClass::NoEffect,
            _ => ErrorClass::Unclassified,
        }
    }
}

/// The verdict on one observed answer, for a specification whose states
/// are `S` and whose answers are `R` (the seed API's by default; the fenced
/// API's in [`super::fenced`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Judgement<S = SpecState, R = SpecResponse> {
    /// The answer is admissible; the key's state afterwards is one of these
    /// (two for an indeterminate error: applied, or not).
    Admissible(Vec<S>),
    /// The specification never gives this answer from this state.
    Inadmissible {
        /// What the specification answers instead.
        expected: R,
    },
    /// The oracle cannot judge the answer (an error it cannot classify):
    /// an internal error of the harness, never a pass.
    Unexplained {
        /// What it could not explain.
        reason: String,
    },
}

impl SpecState {
    /// True for `InFlight` and `Completed`.
    #[must_use]
    pub fn is_active(&self) -> bool {
        !matches!(self, SpecState::Absent)
    }

    /// The TTL anchor of an active state.
    #[must_use]
    pub fn timestamp_millis(&self) -> Option<u64> {
        match self {
            SpecState::Absent => None,
            SpecState::InFlight { timestamp_millis }
            | SpecState::Completed {
                timestamp_millis, ..
            } => Some(*timestamp_millis),
        }
    }

    fn decision(&self) -> Option<DedupDecision> {
        match self {
            SpecState::Absent => None,
            SpecState::InFlight { .. } => Some(DedupDecision::InFlight),
            SpecState::Completed { receipt, .. } => Some(DedupDecision::Completed(receipt.clone())),
        }
    }

    /// Applies `op`: the state that follows and the answer.
    #[must_use]
    pub fn apply(&self, op: &SpecOp) -> (SpecState, SpecResponse) {
        let unchanged = |answer| (self.clone(), SpecResponse::Ok(answer));
        match (op, self) {
            (SpecOp::Claim { now_millis }, SpecState::Absent) => (
                SpecState::InFlight {
                    timestamp_millis: *now_millis,
                },
                SpecResponse::Ok(SpecAnswer::Decision(DedupDecision::Claimed)),
            ),
            (SpecOp::Claim { .. }, SpecState::InFlight { .. }) => {
                unchanged(SpecAnswer::Decision(DedupDecision::InFlight))
            }
            (SpecOp::Claim { .. }, SpecState::Completed { receipt, .. }) => unchanged(
                SpecAnswer::Decision(DedupDecision::Completed(receipt.clone())),
            ),
            (SpecOp::Lookup, state) => unchanged(SpecAnswer::Lookup(state.decision())),
            (
                SpecOp::Complete {
                    receipt,
                    timestamp_millis,
                },
                SpecState::InFlight { .. },
            ) => (
                SpecState::Completed {
                    receipt: receipt.clone(),
                    timestamp_millis: *timestamp_millis,
                },
                SpecResponse::Ok(SpecAnswer::Done),
            ),
            (
                SpecOp::Complete { receipt, .. },
                SpecState::Completed {
                    receipt: stored, ..
                },
            ) if receipt == stored => unchanged(SpecAnswer::Done),
            (SpecOp::Complete { .. }, _) => (self.clone(), SpecResponse::Collision),
            (SpecOp::Release, SpecState::InFlight { .. }) => {
                (SpecState::Absent, SpecResponse::Ok(SpecAnswer::Done))
            }
            (SpecOp::Release, _) => unchanged(SpecAnswer::Done),
            (SpecOp::Expire, _) => (SpecState::Absent, SpecResponse::Ok(SpecAnswer::Done)),
        }
    }

    /// Judges an observed answer of `op` from this state. `stream_shared`
    /// says the key's stream also holds another key (a hash collision), in
    /// which case a `DedupCollision` refusal is always admissible.
    #[must_use]
    pub fn judge(
        &self,
        op: &SpecOp,
        observed: &Result<SpecAnswer, DurabilityError>,
        stream_shared: bool,
    ) -> Judgement {
        let (next, response) = self.apply(op);
        match observed {
            Ok(answer) if response == SpecResponse::Ok(answer.clone()) => {
                Judgement::Admissible(vec![next])
            }
            Ok(_) => Judgement::Inadmissible { expected: response },
            Err(error) => match ErrorClass::of(error) {
                ErrorClass::Indeterminate if next == *self => Judgement::Admissible(vec![next]),
                ErrorClass::Indeterminate => Judgement::Admissible(vec![self.clone(), next]),
                ErrorClass::NoEffect => Judgement::Admissible(vec![self.clone()]),
                ErrorClass::Collision if response == SpecResponse::Collision || stream_shared => {
                    Judgement::Admissible(vec![self.clone()])
                }
                ErrorClass::Collision => Judgement::Inadmissible { expected: response },
                ErrorClass::Unclassified => Judgement::Unexplained {
                    reason: format!("the oracle cannot classify the error {error:?}"),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(bytes: &[u8]) -> ProcessingReceipt {
        ProcessingReceipt::new(bytes.to_vec())
    }

    #[test]
    fn a_claim_of_an_absent_key_is_granted_and_puts_it_in_flight() {
        let (next, response) = SpecState::Absent.apply(&SpecOp::Claim { now_millis: 5 });
        assert_eq!(
            next,
            SpecState::InFlight {
                timestamp_millis: 5
            }
        );
        assert_eq!(
            response,
            SpecResponse::Ok(SpecAnswer::Decision(DedupDecision::Claimed))
        );
    }

    #[test]
    fn a_second_claim_is_told_the_key_is_in_flight() {
        let state = SpecState::InFlight {
            timestamp_millis: 5,
        };
        assert_eq!(
            state.judge(
                &SpecOp::Claim { now_millis: 6 },
                &Ok(SpecAnswer::Decision(DedupDecision::Claimed)),
                false
            ),
            Judgement::Inadmissible {
                expected: SpecResponse::Ok(SpecAnswer::Decision(DedupDecision::InFlight))
            }
        );
    }

    #[test]
    fn completing_with_another_receipt_must_be_refused() {
        let state = SpecState::Completed {
            receipt: receipt(b"a"),
            timestamp_millis: 1,
        };
        let op = SpecOp::Complete {
            receipt: receipt(b"b"),
            timestamp_millis: 2,
        };
        assert!(matches!(
            state.judge(&op, &Ok(SpecAnswer::Done), false),
            Judgement::Inadmissible { .. }
        ));
        let refused = Err(DurabilityError::DedupCollision { key: "k".into() });
        assert_eq!(
            state.judge(&op, &refused, false),
            Judgement::Admissible(vec![state.clone()])
        );
    }

    #[test]
    fn release_never_clobbers_a_receipt_in_the_spec() {
        let state = SpecState::Completed {
            receipt: receipt(b"a"),
            timestamp_millis: 1,
        };
        assert_eq!(
            state.apply(&SpecOp::Release),
            (state.clone(), SpecResponse::Ok(SpecAnswer::Done))
        );
    }

    #[test]
    fn an_indeterminate_error_admits_both_outcomes() {
        let judgement = SpecState::Absent.judge(
            &SpecOp::Claim { now_millis: 3 },
            &Err(DurabilityError::StoreError("timeout".into())),
            false,
        );
        assert_eq!(
            judgement,
            Judgement::Admissible(vec![
                SpecState::Absent,
                SpecState::InFlight {
                    timestamp_millis: 3
                }
            ])
        );
    }

    #[test]
    fn a_collision_error_is_admissible_only_where_the_spec_refuses_or_the_stream_is_shared() {
        let refused = Err(DurabilityError::DedupCollision { key: "k".into() });
        let claim = SpecOp::Claim { now_millis: 1 };
        assert!(matches!(
            SpecState::Absent.judge(&claim, &refused, false),
            Judgement::Inadmissible { .. }
        ));
        assert_eq!(
            SpecState::Absent.judge(&claim, &refused, true),
            Judgement::Admissible(vec![SpecState::Absent])
        );
    }
}
