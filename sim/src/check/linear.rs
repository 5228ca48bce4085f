//! S7: per-key linearizability against [`atmostonce::spec`], with operations
//! of unknown outcome, by a Wing-Gong-Lowe search with memoisation.
//!
//! An operation may take effect at any instant between its invocation and
//! its response. The search builds a total order of one key's operations
//! that respects real time (an operation that returned before another was
//! invoked comes first) and in which every answer is one the sequential
//! specification gives. Operations that never answered (their process
//! crashed) may take effect at any time after their invocation, or never;
//! indeterminate errors may have taken effect or not.
//!
//! Two things keep it fast:
//! - each key is checked on its own (linearizability is compositional);
//! - an enabled operation that cannot change the state wherever it is
//!   placed (a lookup, a claim told `InFlight`/`Completed`, a refused call)
//!   and whose answer fits the current state is linearized at once without
//!   branching. That is complete: moving such an operation earlier keeps
//!   every real-time constraint and every later state. (A release that
//!   answered `Ok` is not one: it may have been the step that changed the
//!   state, so it is branched on.)

use std::collections::{HashMap, HashSet};

use atmostonce::DurabilityError;
use atmostonce::spec::{ErrorClass, Judgement, SpecAnswer, SpecOp, SpecState};

use crate::history::OpId;

/// One operation as the search sees it.
#[derive(Debug, Clone)]
pub(crate) struct LinOp<'a> {
    pub id: OpId,
    pub call_us: u64,
    /// `u64::MAX` when it never answered.
    pub ret_us: u64,
    pub op: &'a SpecOp,
    /// `None`: unknown outcome, any answer.
    pub observed: Option<&'a Result<SpecAnswer, DurabilityError>>,
}

impl LinOp<'_> {
    /// True when no placement of this operation changes the key's state,
    /// whatever the state: a lookup, a claim told `InFlight` or
    /// `Completed`, an operation refused without effect. Only those may be
    /// linearized greedily (a release answering `Ok` may or may not have
    /// changed the state, so it is not one of them).
    fn read_only(&self) -> bool {
        match (self.op, self.observed) {
            (SpecOp::Lookup, _) => true,
            (_, None) => false,
            (_, Some(Err(error))) => ErrorClass::of(error) != ErrorClass::Indeterminate,
            (SpecOp::Claim { .. }, Some(Ok(SpecAnswer::Decision(decision)))) => {
                *decision != atmostonce::DedupDecision::Claimed
            }
            (_, Some(Ok(_))) => false,
        }
    }

    /// The states that may follow from `state`, or `None` when the observed
    /// answer is one the specification never gives from `state`.
    fn next_states(&self, state: &SpecState, shared: bool) -> Option<Vec<SpecState>> {
        match self.observed {
            None => {
                let (next, _) = state.apply(self.op);
                if next == *state {
                    Some(vec![next])
                } else {
                    Some(vec![state.clone(), next])
                }
            }
            Some(observed) => match state.judge(self.op, observed, shared) {
                Judgement::Admissible(states) => Some(states),
                Judgement::Inadmissible { .. } => None,
            },
        }
    }
}

/// The verdict on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Linearization {
    /// A linearization exists.
    Linearizable,
    /// None exists. `blocked` is the operation the deepest attempt could not
    /// place (the earliest-returning one left), `concurrent` the operations
    /// that overlap it, `state` the specification state at that point.
    NotLinearizable {
        blocked: OpId,
        concurrent: Vec<OpId>,
        state: SpecState,
    },
    /// The search exceeded its budget (reported as an internal error, never
    /// as a pass).
    GaveUp,
}

/// Configurations the search may visit per key before it gives up. A key's
/// history in the standard scenario needs a few hundred; a million bounds a
/// pathological one to well under a second.
pub(crate) const MAX_SEARCH_STEPS: u64 = 1_000_000;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn get(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }
    fn set(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }
    fn count(&self) -> u32 {
        self.0.iter().map(|word| word.count_ones()).sum()
    }
    /// The lowest index not set (`len` when all are), skipping full words.
    fn first_clear(&self, len: usize) -> usize {
        self.0
            .iter()
            .position(|word| *word != u64::MAX)
            .map_or(len, |word| {
                (word * 64 + self.0[word].trailing_ones() as usize).min(len)
            })
    }
}

struct Search<'a> {
    ops: Vec<LinOp<'a>>,
    shared: bool,
    states: Vec<SpecState>,
    state_ids: HashMap<SpecState, u32>,
    finite: usize,
    seen: HashSet<(Bits, u32)>,
    steps: u64,
    deepest: (u32, Bits, u32),
}

impl<'a> Search<'a> {
    fn intern(&mut self, state: SpecState) -> u32 {
        if let Some(id) = self.state_ids.get(&state) {
            return *id;
        }
        // At most one state per operation plus the initial one: fits.
        let id = u32::try_from(self.states.len()).unwrap_or(u32::MAX);
        self.states.push(state.clone());
        self.state_ids.insert(state, id);
        id
    }

    /// The earliest response among operations not yet linearized. Ops are
    /// sorted by invocation and answer no earlier than they are invoked, so
    /// the scan stops at the first op invoked after the best response so
    /// far: a history of thousands of operations costs its concurrency, not
    /// its length.
    fn min_ret(&self, done: &Bits) -> u64 {
        let mut best = u64::MAX;
        for (index, op) in self
            .ops
            .iter()
            .enumerate()
            .skip(done.first_clear(self.ops.len()))
        {
            if op.call_us > best {
                break;
            }
            if !done.get(index) {
                best = best.min(op.ret_us);
            }
        }
        best
    }

    /// Operations that may be linearized next: not yet placed, and invoked
    /// no later than the earliest pending response (ops are sorted by call).
    fn candidates(&self, done: &Bits) -> Vec<usize> {
        let horizon = self.min_ret(done);
        self.ops
            .iter()
            .enumerate()
            .skip(done.first_clear(self.ops.len()))
            .take_while(|(_, op)| op.call_us <= horizon)
            .filter(|(index, _)| !done.get(*index))
            .map(|(index, _)| index)
            .collect()
    }

    /// Linearizes every enabled operation that fits without changing the
    /// state; returns false if none is left to do.
    fn close(&mut self, done: &mut Bits, state: u32) {
        loop {
            let current = self.states[state as usize].clone();
            let greedy = self.candidates(done).into_iter().find(|index| {
                let op = &self.ops[*index];
                op.read_only()
                    && op
                        .next_states(&current, self.shared)
                        .is_some_and(|next| next.len() == 1 && next[0] == current)
            });
            match greedy {
                Some(index) => done.set(index),
                None => return,
            }
        }
    }

    fn finished(&self, done: &Bits) -> bool {
        (done.first_clear(self.finite)..self.finite)
            .all(|index| done.get(index) || self.ops[index].ret_us == u64::MAX)
    }

    fn run(&mut self) -> Linearization {
        let initial = self.intern(SpecState::Absent);
        let mut stack: Vec<(Bits, u32)> = vec![(Bits::new(self.ops.len()), initial)];
        while let Some((mut done, state)) = stack.pop() {
            self.steps += 1;
            if self.steps > MAX_SEARCH_STEPS {
                return Linearization::GaveUp;
            }
            self.close(&mut done, state);
            if self.finished(&done) {
                return Linearization::Linearizable;
            }
            let depth = done.count();
            if depth > self.deepest.0 || self.deepest.1.0.is_empty() {
                self.deepest = (depth, done.clone(), state);
            }
            if !self.seen.insert((done.clone(), state)) {
                continue;
            }
            let current = self.states[state as usize].clone();
            for index in self.candidates(&done).into_iter().rev() {
                let Some(nexts) = self.ops[index].next_states(&current, self.shared) else {
                    continue;
                };
                for next in nexts.into_iter().rev() {
                    let next = self.intern(next);
                    let mut child = done.clone();
                    child.set(index);
                    stack.push((child, next));
                }
            }
        }
        self.blocked()
    }

    fn blocked(&self) -> Linearization {
        let (_, done, state) = &self.deepest;
        let pending: Vec<usize> = (0..self.ops.len())
            .filter(|index| done.0.is_empty() || !done.get(*index))
            .collect();
        let Some(&blocked) = pending.iter().min_by_key(|index| self.ops[**index].ret_us) else {
            return Linearization::GaveUp;
        };
        let blocked_op = &self.ops[blocked];
        let concurrent = pending
            .iter()
            .filter(|index| **index != blocked)
            .filter(|index| {
                let op = &self.ops[**index];
                op.call_us <= blocked_op.ret_us && op.ret_us >= blocked_op.call_us
            })
            .map(|index| self.ops[*index].id)
            .collect();
        Linearization::NotLinearizable {
            blocked: blocked_op.id,
            concurrent,
            state: self.states[*state as usize].clone(),
        }
    }
}

/// Checks one key's operations. `shared` says the key's stream may hold
/// another key's records, which makes `DedupCollision` admissible.
pub(crate) fn check_key(mut ops: Vec<LinOp<'_>>, shared: bool) -> Linearization {
    ops.sort_by_key(|op| (op.call_us, op.id));
    let finite = ops.len();
    let mut search = Search {
        ops,
        shared,
        states: Vec::new(),
        state_ids: HashMap::new(),
        finite,
        seen: HashSet::new(),
        steps: 0,
        deepest: (0, Bits(Vec::new()), 0),
    };
    search.run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atmostonce::{DedupDecision, ProcessingReceipt};

    fn claim(now_millis: u64) -> SpecOp {
        SpecOp::Claim { now_millis }
    }

    fn answer(decision: DedupDecision) -> Result<SpecAnswer, DurabilityError> {
        Ok(SpecAnswer::Decision(decision))
    }

    fn op<'a>(
        id: OpId,
        call_us: u64,
        ret_us: u64,
        op: &'a SpecOp,
        observed: Option<&'a Result<SpecAnswer, DurabilityError>>,
    ) -> LinOp<'a> {
        LinOp {
            id,
            call_us,
            ret_us,
            op,
            observed,
        }
    }

    #[test]
    fn two_overlapping_claims_linearize_when_one_is_told_in_flight() {
        let (c1, c2) = (claim(1), claim(2));
        let (granted, in_flight) = (
            answer(DedupDecision::Claimed),
            answer(DedupDecision::InFlight),
        );
        // The InFlight answer returns first, yet the grant may be placed
        // before it because the two overlap.
        let ops = vec![
            op(0, 0, 10, &c1, Some(&granted)),
            op(1, 1, 5, &c2, Some(&in_flight)),
        ];
        assert_eq!(check_key(ops, false), Linearization::Linearizable);
    }

    #[test]
    fn two_granted_claims_without_a_release_are_not_linearizable() {
        let (c1, c2) = (claim(1), claim(2));
        let granted = answer(DedupDecision::Claimed);
        let ops = vec![
            op(0, 0, 10, &c1, Some(&granted)),
            op(1, 20, 30, &c2, Some(&granted)),
        ];
        assert!(matches!(
            check_key(ops, false),
            Linearization::NotLinearizable { blocked: 1, .. }
        ));
    }

    #[test]
    fn an_unanswered_release_may_explain_a_second_grant() {
        let (c1, c2, release) = (claim(1), claim(2), SpecOp::Release);
        let granted = answer(DedupDecision::Claimed);
        let ops = vec![
            op(0, 0, 10, &c1, Some(&granted)),
            op(1, 12, u64::MAX, &release, None),
            op(2, 20, 30, &c2, Some(&granted)),
        ];
        assert_eq!(check_key(ops, false), Linearization::Linearizable);
    }

    #[test]
    fn an_indeterminate_claim_may_have_taken_effect_or_not() {
        let (c1, c2, c3) = (claim(1), claim(2), claim(3));
        let failed = Err(DurabilityError::StoreError("timeout".into()));
        let (in_flight, granted) = (
            answer(DedupDecision::InFlight),
            answer(DedupDecision::Claimed),
        );
        // Someone saw the failed claim's record ...
        let took_effect = vec![
            op(0, 0, 10, &c1, Some(&failed)),
            op(1, 20, 30, &c2, Some(&in_flight)),
        ];
        assert_eq!(check_key(took_effect, false), Linearization::Linearizable);
        // ... or it never landed and another claim wins.
        let did_not = vec![
            op(0, 0, 10, &c1, Some(&failed)),
            op(1, 20, 30, &c3, Some(&granted)),
        ];
        assert_eq!(check_key(did_not, false), Linearization::Linearizable);
    }

    #[test]
    fn a_receipt_that_changes_without_expiry_is_caught() {
        let c1 = claim(1);
        let (r1, r2) = (
            ProcessingReceipt::new(b"one".to_vec()),
            ProcessingReceipt::new(b"two".to_vec()),
        );
        let complete = SpecOp::Complete {
            receipt: r1.clone(),
            timestamp_millis: 2,
        };
        let (lookup_a, lookup_b) = (SpecOp::Lookup, SpecOp::Lookup);
        let granted = answer(DedupDecision::Claimed);
        let done = Ok(SpecAnswer::Done);
        let saw_one = Ok(SpecAnswer::Lookup(Some(DedupDecision::Completed(r1))));
        let saw_two = Ok(SpecAnswer::Lookup(Some(DedupDecision::Completed(r2))));
        let ops = vec![
            op(0, 0, 10, &c1, Some(&granted)),
            op(1, 11, 20, &complete, Some(&done)),
            op(2, 21, 30, &lookup_a, Some(&saw_one)),
            op(3, 31, 40, &lookup_b, Some(&saw_two)),
        ];
        assert!(matches!(
            check_key(ops, false),
            Linearization::NotLinearizable { blocked: 3, .. }
        ));
    }
    #[test]
    fn a_release_that_may_have_been_a_no_op_is_still_tried_where_it_takes_effect() {
        // p6 released (applied), p2 claimed, p6's retried release then
        // tombstoned p2's claim, so p2's completion was refused.
        let (claim_a, claim_b, release_a, release_b) =
            (claim(1), claim(2), SpecOp::Release, SpecOp::Release);
        let complete = SpecOp::Complete {
            receipt: ProcessingReceipt::new(b"r".to_vec()),
            timestamp_millis: 3,
        };
        let granted = answer(DedupDecision::Claimed);
        let (done, refused) = (
            Ok(SpecAnswer::Done),
            Err(DurabilityError::DedupCollision { key: "k".into() }),
        );
        let ops = vec![
            op(0, 48, 78, &claim_a, Some(&granted)),
            op(1, 80, 118, &release_a, Some(&done)),
            op(2, 137, 182, &claim_b, Some(&granted)),
            op(3, 140, 149, &release_b, Some(&done)),
            op(4, 187, 192, &complete, Some(&refused)),
        ];
        assert_eq!(check_key(ops, false), Linearization::Linearizable);
    }
}
