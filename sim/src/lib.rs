//! atmostonce-sim: the deterministic simulator of the atmostonce engine.
//!
//! The real engine (`atmostonce::DedupCache`, `DedupSweeper`) runs under
//! madsim against a fault-injecting store; every operation, delivery and
//! fault goes into a [`history::History`] that [`check::check`] judges
//! against the invariants of DESIGN.md section 5. The same seed and
//! configuration always give the same trace hash.
//!
//! The crate builds two ways:
//! - with `--cfg madsim` (`cargo sim`, see `.cargo/config.toml`): the
//!   simulated world ([`runner`]) and the command line;
//! - without it: the history, the checker, the configuration and the report
//!   formats, runtime-agnostic, for a live mode against real stores and for
//!   the ordinary test suite.
//!
//! A seed sweep from Rust (madsim build):
//!
//! ```ignore
//! use atmostonce_sim::{config::FaultSpec, outcome::{ConfigSource, RunOptions}, runner};
//! let source = ConfigSource::standard(FaultSpec::parse("none").unwrap());
//! let summary = runner::run_seeds(0..100, 2, &source, RunOptions::default(), true, |_| {});
//! assert_eq!(summary.exit_code(), 0, "{}", atmostonce_sim::report::summary_line(&summary));
//! ```

#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod config;
pub mod history;
pub mod outcome;
pub mod replay;
pub mod report;
pub mod timeline;
pub mod workload;

#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
mod world;

#[cfg(madsim)]
pub use runner::{run_seed, run_seeds};
