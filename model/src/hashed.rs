//! [`Hashed`]: an interned, immutable value that carries its own hash.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Deref;
use std::sync::LazyLock;

use parking_lot::Mutex;

use atmostonce::core::fenced::{
    ClaimToken, FencedClaimOp, FencedCompleteOp, FencedReleaseOp, FencedSweepOp,
};
use atmostonce::core::{ClaimOp, CompleteOp, ReleaseOp, SweepOp};

use crate::store::ModelStore;

/// A handle on an immutable value held once per process.
///
/// The checker clones every state it expands and hashes and drops every
/// state it generates. Engine operations hold strings and byte vectors, so
/// holding them by value would make those copies deep; holding them behind
/// an `Arc` makes every copy and drop of a state a series of atomic
/// reference-count updates, which the checker's threads fight over when
/// their states share a value. A `Hashed` is instead a plain reference to
/// the one copy of its value that the process keeps (values are *interned*),
/// so it is `Copy`: copying, dropping, comparing (one pointer) and hashing
/// (its stored hash) a state cost what its words do.
///
/// Interned values are kept for the rest of the process. The model's bounded
/// configurations have few distinct operations and store contents (some
/// thousands for the standard configuration), so that is a few megabytes.
/// Each thread looks values up in its own cache first, so the threads meet
/// at the process-wide table (a mutex) only the first time a thread sees a
/// value.
///
/// Ordering is by hash only (it is what symmetry reduction sorts producers
/// by): two different values with equal hashes compare `Equal`, which can
/// only make symmetry reduction miss a merge, never merge different states.
pub struct Hashed<T: 'static> {
    interned: &'static Interned<T>,
}

/// An interned value and its hash.
struct Interned<T> {
    hash: u64,
    value: T,
}

impl<T> Clone for Hashed<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Hashed<T> {}

impl<T: Internable> Hashed<T> {
    /// The handle on `value`'s interned copy.
    pub fn new(value: T) -> Hashed<T> {
        // Fixed seeds: the same value hashes alike in every run and thread.
        let hash = ahash::RandomState::with_seeds(0x9e37, 0x79b9, 0x7f4a, 0x7c15).hash_one(&value);
        let interned = T::with_local(|local| {
            let chain = local.entry(hash);
            if let Some(found) = chain.iter().find(|i| i.value == value) {
                return *found;
            }
            let found = T::global().intern(hash, value);
            chain.push(found);
            found
        });
        Hashed { interned }
    }

    /// The handle on a copy of the value changed by `change`.
    #[must_use]
    pub fn with(&self, change: impl FnOnce(&mut T)) -> Hashed<T>
    where
        T: Clone,
    {
        let mut value = T::clone(&self.interned.value);
        change(&mut value);
        Hashed::new(value)
    }
}

impl<T> Hashed<T> {
    /// The value's identity: its interned copy's address, the same for
    /// equal values for the rest of the process.
    #[must_use]
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self.interned) as usize
    }

    /// The stored hash.
    #[must_use]
    pub fn hash_value(&self) -> u64 {
        self.interned.hash
    }
}

impl<T> Deref for Hashed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.interned.value
    }
}

impl<T> Hash for Hashed<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.interned.hash);
    }
}

/// Interning makes equal values one copy: equal handles are one pointer.
impl<T> PartialEq for Hashed<T> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.interned, other.interned)
    }
}

impl<T> Eq for Hashed<T> {}

impl<T> PartialOrd for Hashed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Hashed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.interned.hash.cmp(&other.interned.hash)
    }
}

impl<T: fmt::Debug> fmt::Debug for Hashed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.interned.value.fmt(f)
    }
}

/// Interned values by hash (a chain for the rare values whose hashes
/// collide). The keys are hashes already: hashing them again is waste.
type Chains<T> = HashMap<u64, Vec<&'static Interned<T>>, BuildHasherDefault<HashIsKey>>;

/// The process-wide table of one type's interned values.
pub struct Interner<T: 'static> {
    chains: LazyLock<Mutex<Chains<T>>>,
}

impl<T: Eq + Send + Sync> Interner<T> {
    /// An empty table.
    #[must_use]
    pub const fn new() -> Interner<T> {
        Interner {
            chains: LazyLock::new(|| Mutex::new(Chains::default())),
        }
    }

    /// The interned copy of `value`, whose hash is `hash`.
    fn intern(&self, hash: u64, value: T) -> &'static Interned<T> {
        // A panic while the table was locked left it consistent (pushing
        // is the only change), so a poisoned lock is taken over.
        let mut chains = self.chains.lock();
        let chain = chains.entry(hash).or_default();
        if let Some(found) = chain.iter().find(|i| i.value == value) {
            return found;
        }
        let interned: &'static Interned<T> = Box::leak(Box::new(Interned { hash, value }));
        chain.push(interned);
        interned
    }

    /// How many values are interned.
    #[must_use]
    pub fn len(&self) -> usize {
        let chains = self.chains.lock();
        chains.values().map(Vec::len).sum()
    }

    /// True when no value is interned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Eq + Send + Sync> Default for Interner<T> {
    fn default() -> Self {
        Interner::new()
    }
}

/// A type whose values [`Hashed`] can hold: it has a process-wide
/// [`Interner`] and a per-thread cache in front of it.
pub trait Internable: Eq + Hash + Send + Sync + Sized + 'static {
    /// The process-wide table.
    fn global() -> &'static Interner<Self>;

    /// Runs `f` on this thread's cache of the table.
    #[doc(hidden)]
    fn with_local<R>(f: impl FnOnce(&mut LocalChains<Self>) -> R) -> R;
}

/// A thread's cache of an [`Interner`].
#[doc(hidden)]
pub struct LocalChains<T: 'static>(Chains<T>);

impl<T> Default for LocalChains<T> {
    fn default() -> Self {
        LocalChains(Chains::default())
    }
}

impl<T> LocalChains<T> {
    fn entry(&mut self, hash: u64) -> &mut Vec<&'static Interned<T>> {
        self.0.entry(hash).or_default()
    }
}

/// Implements [`Internable`] for types, each with its own table and cache.
macro_rules! internable {
    ($($t:ty),* $(,)?) => {$(
        impl Internable for $t {
            fn global() -> &'static Interner<$t> {
                static TABLE: Interner<$t> = Interner::new();
                &TABLE
            }

            fn with_local<R>(f: impl FnOnce(&mut LocalChains<$t>) -> R) -> R {
                thread_local! {
                    static LOCAL: RefCell<LocalChains<$t>> = RefCell::default();
                }
                LOCAL.with_borrow_mut(f)
            }
        }
    )*};
}

internable!(
    ClaimOp,
    CompleteOp,
    ReleaseOp,
    SweepOp,
    ModelStore,
    FencedClaimOp,
    FencedCompleteOp,
    FencedReleaseOp,
    FencedSweepOp,
    ClaimToken,
);

/// A hasher for keys that are hashes already (or write one mixed word).
#[derive(Default)]
pub(crate) struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in anyway.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    internable!(Vec<u8>);

    #[test]
    fn equal_values_are_one_copy_and_a_change_is_seen() {
        let a = Hashed::new(vec![1u8, 2]);
        let b = Hashed::new(vec![1u8, 2]);
        assert_eq!(a, b);
        assert!(std::ptr::eq(&*a, &*b), "interned once");
        assert_eq!(a.hash_value(), b.hash_value());
        let c = a.with(|v| v.push(3));
        assert_ne!(a, c);
        assert_eq!(*c, vec![1, 2, 3]);
        assert_eq!(*a, vec![1, 2], "the original is left unchanged");
    }

    #[test]
    fn threads_share_one_copy_of_a_value() {
        let here = Hashed::new(vec![7u8, 7, 7]);
        let there = std::thread::spawn(|| Hashed::new(vec![7u8, 7, 7]))
            .join()
            .unwrap();
        assert_eq!(here, there);
        assert!(std::ptr::eq(&*here, &*there));
    }
}
