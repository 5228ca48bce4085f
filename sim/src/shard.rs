//! `--shard K/N`: one runner's part of a seed range, so that N runners of a
//! CI matrix or a batch system sweep the range together.
//!
//! The rule: the range `A..B` of `L = B - A` seeds is cut into N contiguous
//! blocks, and shard K (1-based) runs `A + (K-1)·L/N .. A + K·L/N` (integer
//! division, computed without overflow). The blocks are disjoint, cover the
//! range, and their sizes differ by at most one; a shard depends only on
//! the range, K and N, never on the runner, so every seed is run by exactly
//! one shard and gets the same trace hash as in an unsharded sweep. A shard
//! may be empty when N exceeds L.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// The most shards a sweep may be split into: far more runners than any CI
/// matrix has (GitHub Actions allows 256 jobs per matrix).
pub const MAX_SHARDS: u32 = 65_536;

/// Shard `index` of `count` (1-based, as CI matrices number their jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// K, 1..=N.
    pub index: u32,
    /// N.
    pub count: u32,
}

impl Shard {
    /// The whole range as one shard.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Parses `K/N` with `1 <= K <= N <= MAX_SHARDS`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a shard K/N (e.g. 2/4)"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?} is not a shard K/N: {part:?} is not a number"))
        };
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "{text:?}: the shard count N must be 1..={MAX_SHARDS}"
            ));
        }
        if index == 0 || index > count {
            return Err(format!(
                "{text:?}: the shard K must be 1..={count} (shards are numbered from 1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// This shard's part of `range` (see the module's rule).
    #[must_use]
    pub fn part(self, range: &Range<u64>) -> Range<u64> {
        let length = u128::from(range.end.saturating_sub(range.start));
        // offset <= length, so start + offset <= end: it fits.
        let bound = |k: u32| {
            let offset = length * u128::from(k) / u128::from(self.count);
            u64::try_from(offset).map_or(range.end, |offset| range.start + offset)
        };
        bound(self.index - 1)..bound(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        Shard::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_is_in_exactly_one_shard() {
        for range in [
            0..10,
            7..8,
            0..2000,
            5..1_000_003,
            (u64::MAX - 10)..u64::MAX,
        ] {
            for count in [1, 2, 3, 4, 7, 16, 64] {
                let parts: Vec<Range<u64>> = (1..=count)
                    .map(|index| Shard { index, count }.part(&range))
                    .collect();
                assert_eq!(parts[0].start, range.start, "{range:?} in {count}");
                assert_eq!(
                    parts[parts.len() - 1].end,
                    range.end,
                    "{range:?} in {count}"
                );
                for pair in parts.windows(2) {
                    assert_eq!(
                        pair[0].end, pair[1].start,
                        "{range:?} in {count}: a gap or overlap"
                    );
                }
                let sizes: Vec<u64> = parts.iter().map(|part| part.end - part.start).collect();
                let (small, large) = (sizes.iter().min(), sizes.iter().max());
                assert!(
                    large
                        .zip(small)
                        .is_some_and(|(large, small)| large - small <= 1),
                    "{range:?} in {count}: sizes {sizes:?}"
                );
            }
        }
    }

    #[test]
    fn a_shard_is_the_same_block_whoever_computes_it() {
        let shard = Shard::parse("2/4").unwrap();
        assert_eq!(shard.part(&(0..10)), 2..5);
        assert_eq!(shard.part(&(100..2100)), 600..1100);
        assert_eq!(Shard::parse("3/3").unwrap().part(&(0..2)), 1..2);
        assert_eq!(Shard::parse("1/3").unwrap().part(&(0..2)), 0..0);
    }

    #[test]
    fn a_bad_shard_is_refused_naming_what_is_wrong() {
        assert!(Shard::parse("0/4").unwrap_err().contains("numbered from 1"));
        assert!(Shard::parse("5/4").unwrap_err().contains("1..=4"));
        assert!(Shard::parse("1/0").unwrap_err().contains("shard count"));
        assert!(
            Shard::parse("two/4")
                .unwrap_err()
                .contains("\"two\" is not a number")
        );
        assert!(Shard::parse("2-4").unwrap_err().contains("not a shard K/N"));
        assert_eq!(Shard::parse("2/4").unwrap().to_string(), "2/4");
    }
}
