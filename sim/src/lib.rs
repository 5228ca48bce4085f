//! atmostonce-sim: the deterministic simulator of the atmostonce engine.
//!
//! The real engine (`atmostonce::DedupCache`, `DedupSweeper`) runs under
//! madsim against a fault-injecting store; every operation, delivery and
//! fault goes into a [`history::History`] that [`check::check`] judges
//! against the invariants of `docs/spec.md` ("Invariants"). The same seed and
//! configuration always give the same trace hash.
//!
//! The crate builds two ways, and the tree says which code is in which:
//! - shared by both builds (the top-level modules and `world/`): the
//!   history, the checker, the configuration, the workload and its actors
//!   (producers, sweeper, probe, clock jumps), the report formats, the
//!   command line (clap), progress bars, `--shard` and `merge`;
//! - [`madsim`], only with `--cfg madsim` (`cargo sim`, see
//!   `.cargo/config.toml`): the simulated surroundings, the fault-injecting
//!   store, one simulated run, the seed runner and the simulation modes,
//!   and `harness`, which sweeps a user's own handler from the user's
//!   tests (README, "Gate your own consumer in CI");
//! - [`live`], only without it: live mode, the same workload as real tokio
//!   tasks against a real store (memory, haematite in a child process,
//!   PostgreSQL) with real faults, checked by the same checker.
//!
//! The checker judges any history, however it was recorded:
//!
//! ```
//! use atmostonce::DedupDecision;
//! use atmostonce_verify::oracle::{SpecAnswer, SpecOp};
//! use atmostonce_sim::check::{CheckOptions, Invariant, check};
//! use atmostonce_sim::history::{History, Process};
//!
//! let mut history = History::new(vec!["k0".into()], vec!["orders:0".into()]);
//! for (producer, call_us) in [(0, 10), (1, 50)] {
//!     let op = history.invoke(Process::Producer(producer), 0, 0, SpecOp::Claim { now_millis: 1 }, None, call_us);
//!     history.respond(op, Ok(SpecAnswer::Decision(DedupDecision::Claimed)), call_us + 5);
//! }
//! // Two grants with no release or expiry between them: S1 (and S7).
//! let verdict = check(&history, CheckOptions::default());
//! assert!(verdict.invariants().contains(&Invariant::S1));
//! ```
//!
//! A seed sweep from Rust, in a test of the madsim build:
//!
//! ```text
//! use atmostonce_sim::{config::FaultSpec, outcome::{ConfigSource, RunOptions}, run_seeds};
//! let source = ConfigSource::standard(Api::Fenced, FaultSpec::parse("none").unwrap());
//! let summary = run_seeds(0..100, 2, &source, RunOptions::default(), true, |_| {});
//! assert_eq!(summary.exit_code(), 0, "{}", atmostonce_sim::report::summary_line(&summary));
//! ```

#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod config;
pub mod history;
pub mod merge;
pub mod outcome;
pub mod progress;
pub mod replay;
pub mod report;
pub mod shard;
pub mod timeline;
pub mod workload;

mod world;

#[cfg(not(madsim))]
pub mod live;
#[cfg(madsim)]
pub mod madsim;

#[cfg(madsim)]
pub use crate::madsim::harness;
#[cfg(madsim)]
pub use crate::madsim::runner::{self, run_seed, run_seeds};
