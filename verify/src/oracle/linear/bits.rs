//! The set of operations a configuration of the search has placed.
//!
//! Operations are sorted by invocation and the search places them roughly
//! in that order, so a configuration deep into a long history has placed
//! every operation below some index, none far above it, and a few in
//! between. [`Bits`] stores only that window: the count of leading words
//! that are all set, then the words from there to the last set bit. A
//! configuration then costs the history's concurrency, not its length:
//! a key with 150,000 operations held its whole history's 18.8 KB in every
//! configuration explored, on the search's stack and in its memo, and a
//! ten-minute soak's checker ran out of memory; windowed, a few words.
//!
//! The representation is canonical (no leading full word, no trailing
//! empty word), so two configurations with the same operations placed
//! are equal and hash alike, as the memo needs.

const WORD_BITS: usize = 64;

/// A set of operation indices below a fixed length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Bits {
    /// Words below this one are all set.
    full_words: usize,
    /// The words from `full_words` on; the first is never all set, the
    /// last never empty.
    window: Vec<u64>,
    /// Indices are below this.
    len: usize,
}

impl Bits {
    /// The empty set of indices below `len`.
    pub(super) fn new(len: usize) -> Bits {
        Bits {
            full_words: 0,
            window: Vec::new(),
            len,
        }
    }

    pub(super) fn get(&self, index: usize) -> bool {
        if index >= self.len {
            return false;
        }
        let word = index / WORD_BITS;
        match word.checked_sub(self.full_words) {
            None => true,
            Some(at) => self
                .window
                .get(at)
                .is_some_and(|bits| bits & (1 << (index % WORD_BITS)) != 0),
        }
    }

    /// Sets `index`; false when it is out of range.
    #[must_use]
    pub(super) fn set(&mut self, index: usize) -> bool {
        if index >= self.len {
            return false;
        }
        let Some(at) = (index / WORD_BITS).checked_sub(self.full_words) else {
            return true;
        };
        if at >= self.window.len() {
            self.window.resize(at + 1, 0);
        }
        if let Some(bits) = self.window.get_mut(at) {
            *bits |= 1 << (index % WORD_BITS);
        }
        let full = self
            .window
            .iter()
            .take_while(|bits| **bits == u64::MAX)
            .count();
        if full > 0 {
            self.window.drain(..full);
            self.full_words += full;
        }
        true
    }

    /// How many indices are set.
    pub(super) fn count(&self) -> usize {
        let partial: u32 = self.window.iter().map(|bits| bits.count_ones()).sum();
        (self.full_words * WORD_BITS + partial as usize).min(self.len)
    }

    /// The lowest index not set (`len` when all are).
    pub(super) fn first_clear(&self) -> usize {
        let below = self.full_words * WORD_BITS;
        let within = self
            .window
            .first()
            .map_or(0, |bits| bits.trailing_ones() as usize);
        (below + within).min(self.len)
    }

    /// The words it holds: what a configuration costs.
    #[cfg(test)]
    pub(super) fn held_words(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Bits;

    #[test]
    fn membership_and_the_first_clear_index_follow_the_bits_set() {
        let mut bits = Bits::new(200);
        assert_eq!(bits.first_clear(), 0);
        for index in [0, 1, 2, 130] {
            assert!(bits.set(index));
        }
        assert!(bits.get(130) && bits.get(2) && !bits.get(3) && !bits.get(129));
        assert_eq!(bits.first_clear(), 3);
        assert_eq!(bits.count(), 4);
        assert!(!bits.set(200), "an index past the length is refused");
        assert!(!bits.get(200));
    }

    #[test]
    fn the_same_set_built_in_any_order_is_one_value() {
        let mut up = Bits::new(300);
        let mut down = Bits::new(300);
        let indices: Vec<usize> = (0..140).chain([200, 299]).collect();
        for index in &indices {
            assert!(up.set(*index));
        }
        for index in indices.iter().rev() {
            assert!(down.set(*index));
        }
        assert_eq!(up, down);
        assert_eq!(up.first_clear(), 140);
        assert_eq!(up.count(), 142);
    }

    #[test]
    fn a_long_placed_prefix_costs_no_words() {
        let len = 1_000_000;
        let mut bits = Bits::new(len);
        for index in 0..999_990 {
            assert!(bits.set(index));
        }
        assert!(bits.set(999_995));
        // The window spans from the first clear bit to the last set one:
        // one word, whatever the length of the prefix below it.
        assert_eq!(bits.held_words(), 1);
        assert_eq!(bits.first_clear(), 999_990);
        assert_eq!(bits.count(), 999_991);
        assert!(bits.get(123_456) && !bits.get(999_994) && bits.get(999_995));
        for index in 999_990..len {
            assert!(bits.set(index));
        }
        assert_eq!(bits.held_words(), 0);
        assert_eq!(bits.first_clear(), len);
        assert_eq!(bits.count(), len);
    }

    #[test]
    fn a_length_that_is_not_a_whole_number_of_words_ends_at_its_length() {
        let mut bits = Bits::new(70);
        for index in 0..70 {
            assert!(bits.set(index));
        }
        // The last word is never all ones (bits 70..128 do not exist), so it
        // stays in the window; the set is still full.
        assert_eq!(bits.first_clear(), 70);
        assert_eq!(bits.count(), 70);
    }
}
