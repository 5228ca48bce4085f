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
//! The search is pure, total and bounded: it never panics, and it gives up
//! after [`MAX_SEARCH_STEPS`] configurations rather than run unbounded.

use std::collections::{HashMap, HashSet};

use super::expiry::is_expired;
use super::spec::{ErrorClass, Judgement, SpecAnswer, SpecOp, SpecState};
use atmostonce::DedupDecision;
use atmostonce::DurabilityError;

/// Configurations the search may visit for one key before it gives up. A
/// key's history in the simulator's standard scenario needs a few hundred;
/// a million bounds a pathological one to well under a second.
pub const MAX_SEARCH_STEPS: u64 = 1_000_000;

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

    /// True when no placement of this operation changes the key's state,
    /// whatever the state.
    fn read_only(&self) -> bool {
        match (self.op, self.answer) {
            (SpecOp::Lookup, _) => true,
            (_, None) => false,
            (_, Some(Err(error))) => ErrorClass::of(error) != ErrorClass::Indeterminate,
            (SpecOp::Claim { .. }, Some(Ok(SpecAnswer::Decision(decision)))) => {
                *decision != DedupDecision::Claimed
            }
            (_, Some(Ok(_))) => false,
        }
    }

    /// The states that may follow from `state`; `None` when the answer is
    /// one the specification never gives from `state`.
    fn next_states(&self, state: &SpecState) -> Option<Vec<SpecState>> {
        if let (SpecOp::Expire, Some(clock), Some(timestamp_millis)) =
            (self.op, self.expiry_clock, state.timestamp_millis())
            && !is_expired(timestamp_millis, clock.ttl_ms, clock.now_millis)
        {
            // The entry had not expired at the sweep's clock: the expiry
            // could not have taken effect on it.
            return match self.answer {
                Some(Ok(_)) => None,
                Some(Err(_)) | None => Some(vec![state.clone()]),
            };
        }
        match self.answer {
            None => {
                let (next, _) = state.apply(self.op);
                if next == *state {
                    Some(vec![next])
                } else {
                    Some(vec![state.clone(), next])
                }
            }
            Some(answer) => match state.judge(self.op, answer, self.stream_shared) {
                Judgement::Admissible(states) => Some(states),
                Judgement::Inadmissible { .. } => None,
            },
        }
    }
}

/// The verdict on one key's history. Operations are named by their index
/// in the slice given to [`linearize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linearization {
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
        state: SpecState,
    },
    /// The search visited [`MAX_SEARCH_STEPS`] configurations without a
    /// verdict. Never a pass: callers report it.
    GaveUp,
}

/// Searches for a linearization of one key's operations (in any order),
/// starting from [`SpecState::Absent`].
#[must_use]
pub fn linearize(ops: &[HistoryOp<'_>]) -> Linearization {
    let mut sorted: Vec<Placed<'_>> = ops
        .iter()
        .enumerate()
        .map(|(index, op)| Placed {
            index,
            call: op.invoked_at,
            // An answer before the invocation is a caller's mistake; read
            // it as an answer at the invocation, which keeps the scans'
            // ordering assumption true.
            ret: op.answered_at.map_or(u64::MAX, |at| at.max(op.invoked_at)),
            op: *op,
        })
        .collect();
    sorted.sort_by_key(|op| (op.call, op.index));
    let mut search = Search {
        ops: sorted,
        states: Vec::new(),
        state_ids: HashMap::new(),
        seen: HashSet::new(),
        steps: 0,
        deepest: None,
    };
    search.run()
}

/// An operation in the search's order (by invocation).
struct Placed<'a> {
    /// Its index in the caller's slice.
    index: usize,
    call: u64,
    /// `u64::MAX` when it never answered.
    ret: u64,
    op: HistoryOp<'a>,
}

/// The set of operations already placed.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn get(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }
    fn set(&mut self, index: usize) {
        if let Some(word) = self.0.get_mut(index / 64) {
            *word |= 1 << (index % 64);
        }
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
    /// Sorted by invocation.
    ops: Vec<Placed<'a>>,
    /// Interned states: configurations hold an index into this.
    states: Vec<SpecState>,
    state_ids: HashMap<SpecState, usize>,
    /// Configurations already explored.
    seen: HashSet<(Bits, usize)>,
    steps: u64,
    /// The configuration with the most operations placed, for the report.
    deepest: Option<(u32, Bits, usize)>,
}

impl Search<'_> {
    fn intern(&mut self, state: SpecState) -> usize {
        if let Some(id) = self.state_ids.get(&state) {
            return *id;
        }
        let id = self.states.len();
        self.states.push(state.clone());
        self.state_ids.insert(state, id);
        id
    }

    fn state(&self, id: usize) -> SpecState {
        self.states.get(id).cloned().unwrap_or_default()
    }

    /// The earliest answer among operations not yet placed. Operations are
    /// sorted by invocation and answer no earlier than they are invoked, so
    /// the scan stops at the first one invoked after the best answer so
    /// far: a history of thousands of operations costs its concurrency,
    /// not its length.
    fn min_ret(&self, done: &Bits) -> u64 {
        let mut best = u64::MAX;
        for (index, op) in self
            .ops
            .iter()
            .enumerate()
            .skip(done.first_clear(self.ops.len()))
        {
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
            .skip(done.first_clear(self.ops.len()))
            .take_while(|(_, op)| op.call <= horizon)
            .filter(|(index, _)| !done.get(*index))
            .map(|(index, _)| index)
            .collect()
    }

    /// Places every enabled operation that fits without changing the state.
    fn close(&self, done: &mut Bits, state: usize) {
        let Some(current) = self.states.get(state) else {
            return;
        };
        loop {
            let greedy = self.candidates(done).into_iter().find(|index| {
                let op = &self.ops[*index].op;
                op.read_only()
                    && op
                        .next_states(current)
                        .is_some_and(|next| next.len() == 1 && next[0] == *current)
            });
            match greedy {
                Some(index) => done.set(index),
                None => return,
            }
        }
    }

    /// True when every operation that answered is placed (one that never
    /// answered may never have taken effect).
    fn finished(&self, done: &Bits) -> bool {
        let len = self.ops.len();
        (done.first_clear(len)..len).all(|index| done.get(index) || self.ops[index].ret == u64::MAX)
    }

    fn run(&mut self) -> Linearization {
        let initial = self.intern(SpecState::Absent);
        let mut stack: Vec<(Bits, usize)> = vec![(Bits::new(self.ops.len()), initial)];
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
            if self.deepest.as_ref().is_none_or(|(most, ..)| depth > *most) {
                self.deepest = Some((depth, done.clone(), state));
            }
            if !self.seen.insert((done.clone(), state)) {
                continue;
            }
            let current = self.state(state);
            for index in self.candidates(&done).into_iter().rev() {
                let Some(nexts) = self.ops[index].op.next_states(&current) else {
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

    /// The report on the deepest configuration of a failed search.
    fn blocked(&self) -> Linearization {
        let Some((_, done, state)) = &self.deepest else {
            return Linearization::GaveUp;
        };
        let pending: Vec<&Placed<'_>> = (0..self.ops.len())
            .filter(|index| !done.get(*index))
            .map(|index| &self.ops[index])
            .collect();
        let Some(blocked) = pending.iter().min_by_key(|op| (op.ret, op.call, op.index)) else {
            return Linearization::GaveUp;
        };
        let concurrent = pending
            .iter()
            .filter(|op| op.index != blocked.index)
            .filter(|op| op.call <= blocked.ret && op.ret >= blocked.call)
            .map(|op| op.index)
            .collect();
        Linearization::NotLinearizable {
            blocked: blocked.index,
            concurrent,
            state: self.state(*state),
        }
    }
}

#[cfg(test)]
mod tests;
