//! What running seeds produces: one [`SeedRun`] per seed and a [`Summary`]
//! of a sweep. Runtime-agnostic, so reports and tests use them in either
//! build.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::check::{CheckOptions, Invariant, Verdict};
use crate::config::{Api, Config, FaultSpec, Shape};
use crate::history::History;

/// Where a run's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Drawn from the seed (the usual case: `--seed`, `--seeds`).
    Draw {
        /// The engine API.
        api: Api,
        /// The workload's size.
        shape: Shape,
        /// Which faults may be drawn.
        faults: FaultSpec,
    },
    /// Given exactly (a replay file, a shrunk run).
    Fixed(Config),
}

impl ConfigSource {
    /// The standard scenario of `api` with these faults.
    #[must_use]
    pub fn standard(api: Api, faults: FaultSpec) -> ConfigSource {
        ConfigSource::Draw {
            api,
            shape: Shape::STANDARD,
            faults,
        }
    }
}

/// How to run and check seeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Checker strictness.
    pub check: CheckOptions,
    /// Keep the history of passing seeds too (failing ones always keep it).
    pub keep_history: bool,
}

/// One seed's run.
#[derive(Debug, Clone)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// The configuration it ran with.
    pub config: Config,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// The trace hash (same seed and configuration, same hash).
    pub trace_hash: u64,
    /// Operations in the history.
    pub ops: usize,
    /// Simulated time, in microseconds.
    pub sim_us: u64,
    /// Real time the simulation took.
    pub wall_sim: Duration,
    /// Real time the checker took.
    pub wall_check: Duration,
    /// The history, if kept.
    pub history: Option<History>,
}

/// A seed that could not be run or checked (a harness error: exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalError {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub message: String,
}

/// Counts of a sweep.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds with a violation.
    pub failures: u64,
    /// Seeds that could not be run or checked.
    pub internal_errors: u64,
    /// Seeds whose rerun gave another trace hash (`--check-determinism`).
    pub nondeterministic: Vec<u64>,
    /// For each invariant violated: seeds violating it and the smallest.
    pub by_invariant: BTreeMap<Invariant, (u64, u64)>,
    /// Total simulated time, microseconds.
    pub sim_us: u64,
    /// Total real time in the simulations (all jobs).
    pub wall_sim: Duration,
    /// Total real time in the checker (all jobs).
    pub wall_check: Duration,
    /// Real time of the whole sweep.
    pub elapsed: Duration,
    /// Exempted stale / dirty answers and excused A1 double deliveries.
    pub stale_answers: u64,
    /// Dirty read-only answers exempted.
    pub dirty_answers: u64,
    /// Seeds where `--strict-reads` would report S7.
    pub strict_s7_seeds: u64,
    /// A1 double deliveries excused by a crashed holder.
    pub a1_excused: u64,
}

impl Summary {
    /// Adds one seed's run.
    pub fn add(&mut self, run: &SeedRun) {
        self.seeds += 1;
        self.sim_us += run.sim_us;
        self.wall_sim += run.wall_sim;
        self.wall_check += run.wall_check;
        let notes = &run.verdict.notes;
        self.stale_answers += u64::from(notes.stale_answers);
        self.dirty_answers += u64::from(notes.dirty_answers);
        self.a1_excused += u64::from(crate::check::a1_excused(&run.verdict));
        self.strict_s7_seeds += u64::from(!notes.strict_s7_keys.is_empty());
        if run.verdict.invariants().contains(&Invariant::Internal) {
            // The checker could not decide: a harness error, never a pass
            // and not a finding either.
            self.internal_errors += 1;
        } else if !run.verdict.passed() {
            self.failures += 1;
            for invariant in run.verdict.invariants() {
                let entry = self.by_invariant.entry(invariant).or_insert((0, run.seed));
                entry.0 += 1;
                entry.1 = entry.1.min(run.seed);
            }
        }
    }

    /// Adds a seed that could not be run.
    pub fn add_error(&mut self) {
        self.seeds += 1;
        self.internal_errors += 1;
    }

    /// The exit status: 0 all passed, 1 a violation, 2 a harness error.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        if self.internal_errors > 0 || !self.nondeterministic.is_empty() {
            2
        } else if self.failures > 0 {
            1
        } else {
            0
        }
    }

    /// Seeds per second of real time.
    #[must_use]
    pub fn seeds_per_second(&self) -> f64 {
        self.seeds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Simulated time over the real time the simulations took.
    #[must_use]
    pub fn sim_ratio(&self) -> f64 {
        (self.sim_us as f64 / 1e6) / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The checker's share of the per-seed time.
    #[must_use]
    pub fn checker_share(&self) -> f64 {
        let total = (self.wall_sim + self.wall_check).as_secs_f64();
        if total == 0.0 {
            0.0
        } else {
            self.wall_check.as_secs_f64() / total
        }
    }
}
