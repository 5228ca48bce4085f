//! The stateright model of atmostonce.
//!
//! Producers and a sweeper run the engine's own operation state machines
//! (`atmostonce::core`: the very values `DedupCache` and `DedupSweeper`
//! drive) against a model store; the checker explores every interleaving of
//! their store calls, producer and store crashes, indeterminate appends,
//! failed deliveries and clock ticks, within the bounds of a [`Config`],
//! and checks the invariants of `docs/spec.md` ("Invariants", stated once in
//! `atmostonce_verify::catalogue`).
//!
//! ```
//! use atmostonce_model::{check, Config, SearchOptions};
//!
//! let mut config = Config::standard();
//! config.producers = 2;
//! config.faults = atmostonce_model::FaultSet::none();
//! let report = check(&config, SearchOptions::default()).unwrap();
//! assert!(report.unique_states > 0);
//! println!("{report}");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod action;
mod actors;
mod calls;
mod check;
mod checks;
mod config;
mod damage;
mod discovered;
mod fenced_actors;
mod fenced_judge;
mod fresh;
mod hashed;
mod memo;
mod model;
mod narration;
mod properties;
mod records;
pub mod replay;
mod state;
mod store;
mod transitions;

pub use action::{Action, Call, Damage, ProducerAction, Skew};
pub use atmostonce_verify::catalogue::Invariant;
pub use calls::injected_error;
pub use check::{
    PROGRESS_INTERVAL, Progress, Report, SearchOptions, StepText, Verdict, check, check_watched,
    narrate, path_of, replay_actions,
};
pub use config::{
    Api, Bounds, Config, DEFAULT_MAX_TICK, DEFAULT_SKEW_MS, FENCED_TOTAL_FAULTS, Fault, FaultSet,
    GRACE_MS, LEASE_MS, MAX_FAULT_BOUND, MAX_KEYS, MAX_PRODUCERS, MAX_SKEW_MS, MAX_TOTAL_FAULTS,
    TICK_MS, TTL_MS,
};
pub use fresh::{MAX_CLAIM_ID, MAX_RECEIPT_NUMBER, claim_id, claim_number, receipt_bytes};
pub use hashed::Hashed;
pub use model::{DedupModel, NAMESPACE};
pub use properties::{A1_VACUITY, Always, INVARIANTS, WITNESSES, Witness};
pub use state::{
    Budget, Event, FencedGrant, Grant, KeyGhost, Outcome, Phase, Producer, State, SweepPass,
    Sweeper, violation_bit,
};
pub use store::{ModelStore, RecordKind, RecordSummary, Session, StreamMeta};
