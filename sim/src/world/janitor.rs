//! The janitor of the `compaction` fault: now and then it compacts a random
//! stream below its head, racing every operation (`docs/spec.md`, fault
//! model: a compaction removes only entries below a head, which no decision
//! reads). The simulated store runs it between calls
//! (`crate::madsim::store`), live mode as a task against the real store
//! (`crate::live::faults`); both draw where to cut here.

use crate::config::Draw;

/// The sequence the janitor compacts a stream of `len` entries below:
/// anywhere from 1 to the head's sequence (`len - 1`), so the head always
/// stays, even on a store that did not keep its last entry by itself;
/// none for a stream with no entry below its head.
pub(crate) fn janitor_below(len: u64, rng: &mut impl Draw) -> Option<u64> {
    let head = len.checked_sub(1).filter(|head| *head >= 1)?;
    Some(rng.range(1, head))
}

#[cfg(test)]
mod tests {
    use super::janitor_below;
    use crate::config::SplitMix;

    #[test]
    fn the_janitor_cuts_between_1_and_the_head_and_never_above_it() {
        let mut rng = SplitMix(3);
        assert_eq!(janitor_below(0, &mut rng), None);
        assert_eq!(janitor_below(1, &mut rng), None);
        assert_eq!(janitor_below(2, &mut rng), Some(1));
        for len in 2..40u64 {
            let cuts: Vec<u64> = (0..200)
                .filter_map(|_| janitor_below(len, &mut rng))
                .collect();
            assert_eq!(cuts.len(), 200);
            assert!(cuts.iter().all(|below| (1..len).contains(below)), "{len}");
            // Every cut from 1 to the head's sequence is drawn.
            assert_eq!(cuts.iter().max(), Some(&(len - 1)), "{len}");
            assert_eq!(cuts.iter().min(), Some(&1), "{len}");
        }
    }
}
