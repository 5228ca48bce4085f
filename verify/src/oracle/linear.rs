//! S7: is one key's observed history linearizable against the sequential
//! specification? A Wing-Gong-Lowe search with memoisation, shared by every
//! checker that judges a concurrent history (the simulator's and the
//! `cache_ops` fuzz target's).
//!
//! An operation may take effect at any instant between its invocation and
//! its answer. The search looks for a total order of the key's operations
//! that respects real time (an operation answered before another was
//! invoked comes first) and in which every answer is one the specification
//! gives ([`SpecState::judge`]). An indeterminate error may have taken
//! effect or not; an operation whose answer is unknown may have answered
//! anything; one that never answered (its process crashed) may take effect
//! at any time after its invocation, or never.
//!
//! Three things keep it fast:
//! - each key is checked on its own (linearizability is compositional);
//! - configurations (operations placed, state) already explored are never
//!   explored again;
//! - an enabled operation that cannot change the state wherever it is
//!   placed (a lookup, a claim told `InFlight`/`Completed`, a call refused
//!   without effect) and whose answer fits the current state is placed at
//!   once without branching. That loses no linearization: moving such an
//!   operation earlier keeps every real-time constraint and every later
//!   state. (A release that answered `Ok` is not one: it may have been the
//!   step that changed the state, so the search branches on it.)
//!
//! And one keeps it small: a configuration holds only the window of
//! operations between the first one not placed and the last one placed
//! ([`bits`]), so a soak's hot key with a hundred thousand operations costs
//! a few words per configuration, not its whole history's bits.
//!
//! The search is pure, total and bounded: it never panics, and it gives up
//! after [`search_step_budget`] configurations rather than run unbounded.
//!
//! It is generic over the specification ([`SearchOp`]): [`linearize`]
//! searches a seed-API history ([`HistoryOp`] over [`SpecState`]),
//! [`linearize_checked`] any history, such as a fenced key's
//! ([`super::fenced::FencedHistoryOp`]). A history the search cannot
//! explain (an answer before its invocation, an error the oracle cannot
//! classify) is an [`Unexplained`] error, never a verdict.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use bits::Bits;

use super::expiry::is_expired;
use super::spec::{ErrorClass, Judgement, SpecAnswer, SpecOp, SpecState};
use atmostonce::DedupDecision;
use atmostonce::DurabilityError;

/// Configurations the search may visit for one key before it gives up,
/// at the least. A key's history in the simulator's standard scenario
/// needs a few hundred; a million bounds a pathological one to well under
/// a second.
pub const MAX_SEARCH_STEPS: u64 = 1_000_000;

/// Configurations the search may visit per operation of a key's history
/// beyond [`MAX_SEARCH_STEPS`]: a soak's hot key holds hundreds of
/// thousands of operations, each of which the search visits at least once
/// and tens of thousands of which (grants, completions, indeterminate
/// errors) it branches on. A ten-minute haematite soak's hot key (360,000
/// operations) gave up at a flat million.
pub const SEARCH_STEPS_PER_OPERATION: u64 = 64;

/// How many configurations the search visits for a history of
/// `operations` before it gives up.
#[must_use]
pub fn search_step_budget(operations: usize) -> u64 {
    let operations = u64::try_from(operations).unwrap_or(u64::MAX);
    MAX_SEARCH_STEPS.max(operations.saturating_mul(SEARCH_STEPS_PER_OPERATION))
}

/// What placing one operation on a state gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<S> {
    /// The answer fits; the state afterwards is one of these.
    Next(Vec<S>),
    /// The specification never gives this answer from this state.
    Refused,
    /// The oracle cannot judge the answer: an internal error.
    Unexplained(String),
}

/// One operation of a history as the search sees it: its real-time span
/// and how it may move the key's state.
pub trait SearchOp {
    /// The specification's state of one key.
    type State: Clone + Eq + Hash;
    /// When it was invoked.
    fn invoked_at(&self) -> u64;
    /// When it answered; `None` when it never did.
    fn answered_at(&self) -> Option<u64>;
    /// True when no placement of it changes the key's state, whatever the
    /// state.
    fn read_only(&self) -> bool;
    /// The states that may follow from `state`.
    fn next_states(&self, state: &Self::State) -> Step<Self::State>;
}

/// One operation of a key's history, as the search sees it. Positions are
/// in any unit of real time (microseconds, logical ticks) shared by the
/// history's operations; an operation answers no earlier than it is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOp<'a> {
    /// The operation and its parameters.
    pub op: &'a SpecOp,
    /// When it was invoked.
    pub invoked_at: u64,
    /// When it answered; `None` when it never did (its process crashed): it
    /// may take effect at any time after its invocation, or never.
    pub answered_at: Option<u64>,
    /// What it answered; `None` when that is unknown (any answer).
    pub answer: Option<&'a Result<SpecAnswer, DurabilityError>>,
    /// The key's stream also held another key's records (a hash
    /// collision), which makes a `DedupCollision` refusal admissible.
    pub stream_shared: bool,
    /// For [`SpecOp::Expire`] (ignored for other operations): the sweep's
    /// clock, when the expiry may take effect only on an entry whose TTL
    /// plus grace had passed by then ([`is_expired`]).
    pub expiry_clock: Option<ExpiryClock>,
}

/// The clock and TTL a sweep judged expiry by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExpiryClock {
    /// The sweep's `now`.
    pub now_millis: u64,
    /// The TTL it applied.
    pub ttl_ms: u64,
}

impl<'a> HistoryOp<'a> {
    /// An operation invoked at `invoked_at` that answered `answer` at
    /// `answered_at`, on a stream of its own key, with no expiry clock.
    #[must_use]
    pub fn answered(
        op: &'a SpecOp,
        invoked_at: u64,
        answered_at: u64,
        answer: &'a Result<SpecAnswer, DurabilityError>,
    ) -> HistoryOp<'a> {
        HistoryOp {
            op,
            invoked_at,
            answered_at: Some(answered_at),
            answer: Some(answer),
            stream_shared: false,
            expiry_clock: None,
        }
    }

    /// An operation invoked at `invoked_at` that never answered.
    #[must_use]
    pub fn unanswered(op: &'a SpecOp, invoked_at: u64) -> HistoryOp<'a> {
        HistoryOp {
            op,
            invoked_at,
            answered_at: None,
            answer: None,
            stream_shared: false,
            expiry_clock: None,
        }
    }
}

impl SearchOp for HistoryOp<'_> {
    type State = SpecState;

    fn invoked_at(&self) -> u64 {
        self.invoked_at
    }

    fn answered_at(&self) -> Option<u64> {
        self.answered_at
    }

    fn read_only(&self) -> bool {
        match (self.op, self.answer) {
            (SpecOp::Lookup, _) => true,
            (_, None) => false,
            (_, Some(Err(error))) => matches!(
                ErrorClass::of(error),
                ErrorClass::NoEffect | ErrorClass::Collision
            ),
            (SpecOp::Claim { .. }, Some(Ok(SpecAnswer::Decision(decision)))) => {
                *decision != DedupDecision::Claimed
            }
            (_, Some(Ok(_))) => false,
        }
    }

    fn next_states(&self, state: &SpecState) -> Step<SpecState> {
        if let (SpecOp::Expire, Some(clock), Some(timestamp_millis)) =
            (self.op, self.expiry_clock, state.timestamp_millis())
            && !is_expired(timestamp_millis, clock.ttl_ms, clock.now_millis)
        {
            // The entry had not expired at the sweep's clock: the expiry
            // could not have taken effect on it.
            return match self.answer {
                Some(Ok(_)) => Step::Refused,
                Some(Err(_)) | None => Step::Next(vec![state.clone()]),
            };
        }
        match self.answer {
            None => {
                let (next, _) = state.apply(self.op);
                if next == *state {
                    Step::Next(vec![next])
                } else {
                    Step::Next(vec![state.clone(), next])
                }
            }
            Some(answer) => match state.judge(self.op, answer, self.stream_shared) {
                Judgement::Admissible(states) => Step::Next(states),
                Judgement::Inadmissible { .. } => Step::Refused,
                Judgement::Unexplained { reason } => Step::Unexplained(reason),
            },
        }
    }
}

/// The verdict on one key's history. Operations are named by their index
/// in the slice given to [`linearize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linearization<S = SpecState> {
    /// A linearization exists.
    Linearizable,
    /// None exists. `blocked` is the operation the deepest attempt could
    /// not place (the earliest-answering one left), `concurrent` the other
    /// operations left that overlap it, `state` the key's state there.
    NotLinearizable {
        /// The operation no order could place.
        blocked: usize,
        /// The operations left that overlap it in real time.
        concurrent: Vec<usize>,
        /// The key's state in the deepest attempt.
        state: S,
    },
    /// The search visited [`search_step_budget`] configurations without a
    /// verdict. Never a pass: callers report it.
    GaveUp,
}

/// The search met a history it cannot explain: an internal error of the
/// harness (or of what the caller handed it), never a verdict on the
/// engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexplained {
    /// The operation concerned (its index in the caller's slice), when one.
    pub op: Option<usize>,
    /// What could not be explained.
    pub reason: String,
}

/// Searches for a linearization of one key's seed-API operations (in any
/// order), starting from [`SpecState::Absent`].
///
/// A history the search cannot explain ([`linearize_checked`]'s error) is
/// answered [`Linearization::GaveUp`], which is never a pass; callers that
/// want the reason call [`linearize_checked`].
#[must_use]
pub fn linearize(ops: &[HistoryOp<'_>]) -> Linearization {
    linearize_checked(ops, SpecState::Absent).unwrap_or(Linearization::GaveUp)
}

/// Searches for a linearization of one key's operations (in any order),
/// starting from `initial`.
///
/// # Errors
/// [`Unexplained`] when an operation answered before it was invoked, the
/// oracle cannot judge an answer, or the search reaches a configuration it
/// cannot account for.
pub fn linearize_checked<O: SearchOp>(
    ops: &[O],
    initial: O::State,
) -> Result<Linearization<O::State>, Unexplained> {
    Search::over(ops)?.run(initial)
}

/// An operation in the search's order (by invocation).
struct Placed<'a, O> {
    /// Its index in the caller's slice.
    index: usize,
    call: u64,
    /// `u64::MAX` when it never answered.
    ret: u64,
    op: &'a O,
}

fn internal(reason: impl Into<String>) -> Unexplained {
    Unexplained {
        op: None,
        reason: reason.into(),
    }
}

struct Search<'a, O: SearchOp> {
    /// Sorted by invocation.
    ops: Vec<Placed<'a, O>>,
    /// Interned states: configurations hold an index into this.
    states: Vec<O::State>,
    state_ids: HashMap<O::State, usize>,
    /// Configurations already explored.
    seen: HashSet<(Bits, usize)>,
    steps: u64,
    /// The configuration with the most operations placed, for the report.
    deepest: Option<(usize, Bits, usize)>,
}

impl<'a, O: SearchOp> Search<'a, O> {
    /// A search over `ops`, in the order of their invocations.
    fn over(ops: &'a [O]) -> Result<Search<'a, O>, Unexplained> {
        let mut sorted: Vec<Placed<'a, O>> = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let call = op.invoked_at();
            let ret = match op.answered_at() {
                Some(at) if at < call => {
                    return Err(Unexplained {
                        op: Some(index),
                        reason: format!("answered at {at}, before its invocation at {call}"),
                    });
                }
                Some(at) => at,
                None => u64::MAX,
            };
            sorted.push(Placed {
                index,
                call,
                ret,
                op,
            });
        }
        sorted.sort_by_key(|op| (op.call, op.index));
        Ok(Search {
            ops: sorted,
            states: Vec::new(),
            state_ids: HashMap::new(),
            seen: HashSet::new(),
            steps: 0,
            deepest: None,
        })
    }

    fn intern(&mut self, state: O::State) -> usize {
        if let Some(id) = self.state_ids.get(&state) {
            return *id;
        }
        let id = self.states.len();
        self.states.push(state.clone());
        self.state_ids.insert(state, id);
        id
    }

    fn state(&self, id: usize) -> Result<&O::State, Unexplained> {
        self.states
            .get(id)
            .ok_or_else(|| internal(format!("state {id} was never interned")))
    }

    fn placed(&self, index: usize) -> Result<&Placed<'_, O>, Unexplained> {
        self.ops
            .get(index)
            .ok_or_else(|| internal(format!("operation {index} is out of range")))
    }

    /// The earliest answer among operations not yet placed. Operations are
    /// sorted by invocation and answer no earlier than they are invoked, so
    /// the scan stops at the first one invoked after the best answer so
    /// far: a history of thousands of operations costs its concurrency,
    /// not its length.
    fn min_ret(&self, done: &Bits) -> u64 {
        let mut best = u64::MAX;
        for (index, op) in self.ops.iter().enumerate().skip(done.first_clear()) {
            if op.call > best {
                break;
            }
            if !done.get(index) {
                best = best.min(op.ret);
            }
        }
        best
    }

    /// Operations that may be placed next: not yet placed, and invoked no
    /// later than the earliest answer left.
    fn candidates(&self, done: &Bits) -> Vec<usize> {
        let horizon = self.min_ret(done);
        self.ops
            .iter()
            .enumerate()
            .skip(done.first_clear())
            .take_while(|(_, op)| op.call <= horizon)
            .filter(|(index, _)| !done.get(*index))
            .map(|(index, _)| index)
            .collect()
    }

    /// Places every enabled operation that fits without changing the state.
    fn close(&self, done: &mut Bits, state: usize) -> Result<(), Unexplained> {
        let current = self.state(state)?;
        loop {
            let mut greedy = None;
            for index in self.candidates(done) {
                let placed = self.placed(index)?;
                if !placed.op.read_only() {
                    continue;
                }
                match placed.op.next_states(current) {
                    Step::Next(next) if next.len() == 1 && next[0] == *current => {
                        greedy = Some(index);
                        break;
                    }
                    Step::Unexplained(reason) => {
                        return Err(Unexplained {
                            op: Some(placed.index),
                            reason,
                        });
                    }
                    Step::Next(_) | Step::Refused => {}
                }
            }
            match greedy {
                Some(index) if done.set(index) => {}
                Some(index) => return Err(internal(format!("bit {index} is out of range"))),
                None => return Ok(()),
            }
        }
    }

    /// True when every operation that answered is placed (one that never
    /// answered may never have taken effect).
    fn finished(&self, done: &Bits) -> bool {
        let len = self.ops.len();
        (done.first_clear()..len)
            .all(|index| done.get(index) || self.ops.get(index).is_none_or(|op| op.ret == u64::MAX))
    }

    fn run(&mut self, initial: O::State) -> Result<Linearization<O::State>, Unexplained> {
        let initial = self.intern(initial);
        let mut stack: Vec<(Bits, usize)> = vec![(Bits::new(self.ops.len()), initial)];
        let budget = search_step_budget(self.ops.len());
        while let Some((mut done, state)) = stack.pop() {
            self.steps += 1;
            if self.steps > budget {
                return Ok(Linearization::GaveUp);
            }
            self.close(&mut done, state)?;
            if self.finished(&done) {
                return Ok(Linearization::Linearizable);
            }
            let depth = done.count();
            if self.deepest.as_ref().is_none_or(|(most, ..)| depth > *most) {
                self.deepest = Some((depth, done.clone(), state));
            }
            if !self.seen.insert((done.clone(), state)) {
                continue;
            }
            let current = self.state(state)?.clone();
            for index in self.candidates(&done).into_iter().rev() {
                let placed = self.placed(index)?;
                let nexts = match placed.op.next_states(&current) {
                    Step::Next(nexts) => nexts,
                    Step::Refused => continue,
                    Step::Unexplained(reason) => {
                        return Err(Unexplained {
                            op: Some(placed.index),
                            reason,
                        });
                    }
                };
                for next in nexts.into_iter().rev() {
                    let next = self.intern(next);
                    let mut child = done.clone();
                    if !child.set(index) {
                        return Err(internal(format!("bit {index} is out of range")));
                    }
                    stack.push((child, next));
                }
            }
        }
        self.blocked()
    }

    /// The report on the deepest configuration of a failed search.
    fn blocked(&self) -> Result<Linearization<O::State>, Unexplained> {
        let Some((_, done, state)) = &self.deepest else {
            return Err(internal(
                "the search ended without visiting a configuration",
            ));
        };
        let pending: Vec<&Placed<'_, O>> = self
            .ops
            .iter()
            .enumerate()
            .filter(|(index, _)| !done.get(*index))
            .map(|(_, op)| op)
            .collect();
        let Some(blocked) = pending.iter().min_by_key(|op| (op.ret, op.call, op.index)) else {
            return Err(internal("the search failed with every operation placed"));
        };
        let concurrent = pending
            .iter()
            .filter(|op| op.index != blocked.index)
            .filter(|op| op.call <= blocked.ret && op.ret >= blocked.call)
            .map(|op| op.index)
            .collect();
        Ok(Linearization::NotLinearizable {
            blocked: blocked.index,
            concurrent,
            state: self.state(*state)?.clone(),
        })
    }
}

mod bits;
#[cfg(test)]
mod tests;
