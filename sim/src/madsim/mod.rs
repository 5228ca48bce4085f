//! The madsim build only (`--cfg madsim`, `cargo sim`): the simulated
//! surroundings of a run and everything that needs madsim.
//!
//! - `rng.rs`: madsim's RNG and sleep as the simulation draws them;
//! - `store.rs`: the fault-injecting store every caller gets a handle on;
//! - `env.rs`: the madsim [`Env`](crate::world::Env) over that store;
//! - `handler.rs`: a user's [`Handler`](harness::Handler), its context and
//!   the producer that runs it;
//! - `run.rs`: one simulated run and its madsim fault controllers;
//! - [`runner`]: one madsim runtime per seed, sweeps, shrinking,
//!   calibration;
//! - [`harness`]: a seed sweep of a user's handler, from a user's test;
//! - [`app`]: what each simulation mode of the command line does.
//!
//! Dependencies point one way: `rng` <- `store` <- `env` <- `handler` <-
//! `run` <- `runner` <- `harness`, `app`.

pub mod app;
mod env;
mod handler;
pub mod harness;
mod rng;
mod run;
pub mod runner;
mod store;
