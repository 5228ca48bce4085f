//! Live mode (ordinary build only): the simulator's workload as real tokio
//! tasks against a real store, with real faults, checked by the same
//! checker.
//!
//! A run is the simulation's run with real parts: the same producers,
//! sweeper, clock jumps and probe (`world::actors`) in a [`World`] whose
//! [`Env`](crate::world::Env) is tokio's clock and tasks ([`env::Live`]);
//! every caller's store is a recording handle on the store under test
//! ([`env::Recording`]). The store is `MemoryStore` in this process,
//! `HaematiteStore` in a child process of this binary
//! ([`server::HaematiteServer`]) or `PostgresStore`. Faults are real: aborted
//! producer tasks, a SIGKILLed haematite server, a PostgreSQL server stopped
//! with `pg_ctl stop -m immediate`, terminated connections
//! ([`faults`]); after each store crash the restarted store is read back
//! and compared with what it had acknowledged and served
//! ([`env::Ledger`]). Then the history goes to [`check::check`].
//!
//! What the checker is told about each real fault, so that it raises no
//! false alarm and still catches a real bug:
//! - An aborted producer's operation has no answer. Its in-flight append
//!   runs to its end in its own task (a request already sent is carried
//!   out or fails by itself), so any effect it had happened before both
//!   the abort and the end of its last call: the history says so
//!   ([`History::cut_off`]) instead of leaving the effect open forever.
//! - A store call that failed (a killed server, a terminated connection,
//!   a server starting up) is indeterminate, as the engine treats it; it is
//!   recorded as a fault event.
//! - A crash of a store whose acknowledged appends are durable on return
//!   (haematite and PostgreSQL both promise it) may drop only appends that
//!   were never acknowledged. Reading the store back finds what was
//!   dropped: an acknowledged append that is gone is an S4 violation (the
//!   store broke its promise); an entry an operation had read that is gone
//!   makes that read dirty (exempt from S2/S4/S7 as in the simulation,
//!   counted, and reported by `--strict-reads`).
//!
//! [`check::check`]: crate::check::check
//! [`History::cut_off`]: crate::history::History::cut_off

pub mod app;
mod env;
pub mod exporter;
mod faults;
mod options;
mod plant;
mod postgres;
mod remote;
pub mod report;
mod run;
pub mod server;
pub mod storage;
mod wire;

pub use options::{LiveOptions, PostgresTarget};
pub use run::{FaultCounts, LiveRun, run};
