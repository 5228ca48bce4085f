//! Deterministic simulation of the atmostonce engine.
pub mod check;
pub mod config;
pub mod history;
pub mod outcome;
pub mod workload;

#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
mod world;
