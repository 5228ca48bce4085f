//! A sweep's summary as a record: what `--json` prints last (`{"summary":
//! ...}`), what the summary line says, and what `merge` reads back. One
//! type for all three, so the writer and the reader cannot drift apart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::outcome::Summary;

/// Seeds a sweep ran, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    /// The first seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl From<&Range<u64>> for SeedRange {
    fn from(range: &Range<u64>) -> SeedRange {
        SeedRange {
            start: range.start,
            end: range.end,
        }
    }
}

impl SeedRange {
    /// As a `Range`.
    #[must_use]
    pub fn range(self) -> Range<u64> {
        self.start..self.end
    }

    /// Seeds in it.
    #[must_use]
    pub fn len(self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True when it holds no seed.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Which sweep a summary belongs to: what must agree for shards to merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepIdentity {
    /// `--seeds`, the whole range every shard splits.
    pub range: SeedRange,
    /// `--shard` as `K/N` (`1/1`: the whole range).
    pub shard: String,
    /// The seeds this summary covers.
    pub shard_seeds: SeedRange,
    /// `--api`.
    pub api: String,
    /// `--faults`, normalized.
    pub faults: String,
    /// `--producers`.
    pub producers: u16,
    /// `--keys`.
    pub keys: u16,
    /// `--ops`.
    pub ops: u32,
    /// `--strict-reads`.
    pub strict_reads: bool,
    /// `--check-determinism`.
    pub check_determinism: bool,
}

/// A failing seed, with what it violated and how to rerun it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingSeed {
    /// The seed.
    pub seed: u64,
    /// The invariants violated, by the catalogue's names.
    pub invariants: Vec<String>,
    /// The command that reruns it.
    pub reproduce: String,
}

/// Seeds violating one invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantCount {
    /// How many seeds.
    pub seeds: u64,
    /// The smallest of them.
    pub smallest_seed: u64,
}

/// The summary of a sweep (or of merged shards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds with a violation.
    pub failures: u64,
    /// Seeds that could not be run or checked.
    pub internal_errors: u64,
    /// Seeds whose rerun gave another trace hash.
    pub nondeterministic: Vec<u64>,
    /// Per invariant violated: seeds and the smallest.
    pub violations: BTreeMap<String, InvariantCount>,
    /// Seeds per second of real time.
    pub seeds_per_second: f64,
    /// Simulated time over real time.
    pub simulated_to_real: f64,
    /// The checker's share of the per-seed time.
    pub checker_share: f64,
    /// Real time of the sweep (merged: of the slowest shard).
    pub elapsed_s: f64,
    /// Stale read-only answers exempted.
    pub exempt_stale_answers: u64,
    /// Dirty read-only answers exempted.
    pub exempt_dirty_answers: u64,
    /// Seeds `--strict-reads` would fail on S7.
    pub strict_reads_s7_seeds: u64,
    /// A1 double deliveries excused.
    pub a1_excused: u64,
    /// The exit status: 0 pass, 1 a violation, 2 a harness error.
    pub exit: i32,
    /// Which sweep (absent in summaries of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepIdentity>,
    /// Every failing seed, by seed.
    #[serde(default)]
    pub failing_seeds: Vec<FailingSeed>,
    /// Every seed that could not be run or checked.
    #[serde(default)]
    pub internal_error_seeds: Vec<u64>,
}

impl SummaryRecord {
    /// The record of `summary`, without its sweep's identity and lists.
    #[must_use]
    pub fn new(summary: &Summary) -> SummaryRecord {
        SummaryRecord {
            seeds: summary.seeds,
            failures: summary.failures,
            internal_errors: summary.internal_errors,
            nondeterministic: summary.nondeterministic.clone(),
            violations: summary
                .by_invariant
                .iter()
                .map(|(invariant, (seeds, smallest_seed))| {
                    (
                        invariant.to_string(),
                        InvariantCount {
                            seeds: *seeds,
                            smallest_seed: *smallest_seed,
                        },
                    )
                })
                .collect(),
            seeds_per_second: summary.seeds_per_second(),
            simulated_to_real: summary.sim_ratio(),
            checker_share: summary.checker_share(),
            elapsed_s: summary.elapsed.as_secs_f64(),
            exempt_stale_answers: summary.stale_answers,
            exempt_dirty_answers: summary.dirty_answers,
            strict_reads_s7_seeds: summary.strict_s7_seeds,
            a1_excused: summary.a1_excused,
            exit: summary.exit_code(),
            sweep: None,
            failing_seeds: Vec::new(),
            internal_error_seeds: Vec::new(),
        }
    }

    /// As the `{"summary": ...}` object `--json` prints last.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "summary": self })
    }

    /// The summary line: seeds, failures, speed, and what was violated,
    /// nondeterministic or exempt.
    #[must_use]
    pub fn line(&self) -> String {
        let mut text = String::new();
        if let Some(sweep) = self.sweep.as_ref().filter(|sweep| sweep.shard != "1/1") {
            let _ = write!(
                text,
                "shard {} (seeds {}..{} of {}..{}): ",
                sweep.shard,
                sweep.shard_seeds.start,
                sweep.shard_seeds.end,
                sweep.range.start,
                sweep.range.end
            );
        }
        let _ = write!(
            text,
            "{} seeds, {} failed, {} internal errors; {:.0} seeds/s; simulated/real {:.0}x; \
             checker {:.1}% of seed time",
            self.seeds,
            self.failures,
            self.internal_errors,
            self.seeds_per_second,
            self.simulated_to_real,
            self.checker_share * 100.0
        );
        if !self.violations.is_empty() {
            let parts: Vec<String> = self
                .violations
                .iter()
                .map(|(invariant, count)| {
                    format!(
                        "{invariant}: {} (smallest seed {})",
                        count.seeds, count.smallest_seed
                    )
                })
                .collect();
            let _ = write!(text, "\n  violations: {}", parts.join("; "));
        }
        if !self.nondeterministic.is_empty() {
            let _ = write!(
                text,
                "\n  NONDETERMINISTIC seeds (trace hash differs on rerun): {:?}",
                self.nondeterministic
            );
        }
        if self.exempt_stale_answers + self.exempt_dirty_answers + self.a1_excused > 0 {
            let _ = write!(
                text,
                "\n  exempt: {} stale and {} dirty read-only answers ({} seeds would fail S7 \
                 under --strict-reads); {} double deliveries excused by their cause (a holder \
                 that crashed before completing, a lease that ended first)",
                self.exempt_stale_answers,
                self.exempt_dirty_answers,
                self.strict_reads_s7_seeds,
                self.a1_excused
            );
        }
        text
    }
}
