//! The fenced specification as the linearizability search sees it: one
//! operation of a key's history and the states it may lead to.

use super::{FencedAnswer, FencedError, FencedOp, FencedParams, FencedResponse, FencedState};
use crate::oracle::linear::{SearchOp, Step};
use crate::oracle::spec::Judgement;

/// One operation of a fenced key's history, for the linearizability search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FencedHistoryOp<'a> {
    /// The operation.
    pub op: &'a FencedOp,
    /// When it was invoked.
    pub invoked_at: u64,
    /// When it answered; `None` when it never did.
    pub answered_at: Option<u64>,
    /// What it answered; `None` when unknown (any answer).
    pub answer: Option<&'a FencedResponse>,
    /// The key's stream also held another key's records.
    pub stream_shared: bool,
    /// The cache's settings.
    pub params: FencedParams,
}

impl SearchOp for FencedHistoryOp<'_> {
    type State = FencedState;

    fn invoked_at(&self) -> u64 {
        self.invoked_at
    }

    fn answered_at(&self) -> Option<u64> {
        self.answered_at
    }

    fn read_only(&self) -> bool {
        match (self.op, self.answer) {
            (FencedOp::Lookup { .. }, _) => true,
            (_, None) => false,
            (_, Some(Err(error))) => *error != FencedError::Indeterminate,
            (FencedOp::Claim { .. }, Some(Ok(answer))) => {
                !matches!(answer, FencedAnswer::Granted(_))
            }
            (_, Some(Ok(_))) => false,
        }
    }

    fn next_states(&self, state: &FencedState) -> Step<FencedState> {
        match self.answer {
            None => {
                let (next, _) = state.apply(self.op, &self.params, None);
                Step::Next(if next == *state {
                    vec![next]
                } else {
                    vec![state.clone(), next]
                })
            }
            Some(answer) => match state.judge(self.op, answer, &self.params, self.stream_shared) {
                Judgement::Admissible(states) => Step::Next(states),
                Judgement::Inadmissible { .. } => Step::Refused,
                Judgement::Unexplained { reason } => Step::Unexplained(reason),
            },
        }
    }
}
