//! Memoized store calls: each checker thread computes each distinct store
//! call of an engine operation once.
//!
//! A step of an actor is one store call of its operation: build the request
//! (`poll`), let the store answer it, feed the answer (`feed`), and intern
//! the fed operation. The engine's operations are deterministic (the same
//! value fed the same reply becomes the same value: an invariant of the
//! core), and what the store answers depends only on the store's contents,
//! the request, how the model lets the call go (normally, or failing) and
//! the caller's session; the operation and the store are interned
//! [`Hashed`](crate::Hashed) values, so a pointer names each. The answer to
//! a call is therefore a function of a few words, and the checker, which
//! reaches the same call from many states (interleavings of the other
//! actors' steps), looks it up instead of computing it again. Every answer
//! is still computed by the engine's own `poll` and `feed`, the first time
//! a thread meets it; narrated steps (counterexamples, the Explorer's
//! descriptions) are always computed afresh.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hashed::HashIsKey;

/// Most answers a thread keeps for one operation type. The standard
/// configuration needs some tens of thousands; a thread that outlives many
/// checks (the tests' main thread) starts over past this bound instead of
/// growing (some tens of megabytes at most).
const MAX_ANSWERS: usize = 1 << 18;

/// Who makes a store call, as far as the answer depends on it: the store
/// tells the sweeper's expiries from producers' releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActorKind {
    Producer,
    Sweeper,
}

/// A store call: the model, the operation, the store, how the call goes
/// and the caller's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    model: u64,
    op: usize,
    store: usize,
    how: u8,
}

impl Key {
    /// The call of operation `op` (an interned value's id) against store
    /// `store` (likewise) in model `model`, made as `call` says by a caller
    /// whose session has `lost` appends and, with `stale`, was served a
    /// stale read in this operation.
    pub(crate) fn new(
        model: u64,
        op: usize,
        store: usize,
        call: u8,
        (lost, stale): (bool, bool),
        actor: ActorKind,
    ) -> Key {
        let how = call
            | u8::from(lost) << 4
            | u8::from(actor == ActorKind::Sweeper) << 5
            | u8::from(stale) << 6;
        Key {
            model,
            op,
            store,
            how,
        }
    }
}

/// One word, mixed (a multiply-xorshift): the table's hasher passes it on
/// as the hash.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = self.model;
        for word in [self.op as u64, self.store as u64, u64::from(self.how)] {
            h = (h ^ word).wrapping_mul(K);
            h ^= h >> 29;
        }
        state.write_u64(h);
    }
}

/// A thread's answers for one operation type.
pub(crate) struct Memo<V> {
    answers: HashMap<Key, V, BuildHasherDefault<HashIsKey>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo {
            answers: HashMap::default(),
        }
    }
}

/// A type whose store calls are memoized: each thread keeps a
/// [`Memo`] of its answers (see [`crate::calls`] for the operations).
pub(crate) trait Memoized {
    /// What a call gives.
    type Answer: Clone;
    /// Runs `f` on this thread's memo of this type's answers.
    fn with_memo<R>(f: impl FnOnce(&mut Memo<Self::Answer>) -> R) -> R;
}

/// The answer to the call `key`: remembered, or computed by `compute` and
/// remembered. `None` (the call is not enabled) is remembered too.
pub(crate) fn remember<T: Memoized>(key: Key, compute: impl FnOnce() -> T::Answer) -> T::Answer {
    if let Some(known) = T::with_memo(|memo| memo.answers.get(&key).cloned()) {
        return known;
    }
    // Outside the memo's borrow: computing interns values, which uses
    // other thread-local tables only, but keep the borrows apart anyway.
    let answer = compute();
    T::with_memo(|memo| {
        if memo.answers.len() >= MAX_ANSWERS {
            memo.answers.clear();
        }
        memo.answers.insert(key, answer.clone());
    });
    answer
}

/// A new model's identity: memoized answers of one model are never served
/// to another (the model's key and stream names decide some answers).
pub(crate) fn new_model_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
