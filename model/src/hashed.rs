//! [`Hashed`]: a shared value that carries its own hash.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// An immutable, shared value with its hash computed once.
///
/// The checker clones every state it expands and hashes every state it
/// generates. Engine operations hold strings and byte vectors, so cloning
/// and hashing them is most of the cost of a step. Behind `Hashed`, a clone
/// is a reference-count increment and hashing writes one `u64`; only the
/// value an action changes is copied and rehashed.
///
/// Ordering is by hash only (it is what symmetry reduction sorts producers
/// by): two different values with equal hashes compare `Equal`, which can
/// only make symmetry reduction miss a merge, never merge different states.
#[derive(Clone)]
pub struct Hashed<T> {
    value: Arc<T>,
    hash: u64,
}

impl<T: Hash> Hashed<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Hashed<T> {
        // Fixed seeds: the same value hashes alike in every run and thread.
        let hash = ahash::RandomState::with_seeds(0x9e37, 0x79b9, 0x7f4a, 0x7c15).hash_one(&value);
        Hashed {
            hash,
            value: Arc::new(value),
        }
    }

    /// A copy of the value changed by `change`.
    #[must_use]
    pub fn with(&self, change: impl FnOnce(&mut T)) -> Hashed<T>
    where
        T: Clone,
    {
        let mut value = T::clone(&self.value);
        change(&mut value);
        Hashed::new(value)
    }

    /// The cached hash.
    #[must_use]
    pub fn hash_value(&self) -> u64 {
        self.hash
    }
}

impl<T> Deref for Hashed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Hash for Hashed<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<T: PartialEq> PartialEq for Hashed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.value, &other.value) || self.value == other.value)
    }
}

impl<T: Eq> Eq for Hashed<T> {}

impl<T: Eq> PartialOrd for Hashed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Eq> Ord for Hashed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.hash.cmp(&other.hash)
    }
}

impl<T: fmt::Debug> fmt::Debug for Hashed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_hash_alike_and_a_change_is_seen() {
        let a = Hashed::new(vec![1u8, 2]);
        let b = Hashed::new(vec![1u8, 2]);
        assert_eq!(a, b);
        assert_eq!(a.hash_value(), b.hash_value());
        let c = a.with(|v| v.push(3));
        assert_ne!(a, c);
        assert_eq!(*c, vec![1, 2, 3]);
        assert_eq!(*a, vec![1, 2], "the original is left unchanged");
    }
}
