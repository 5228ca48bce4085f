//! An example consumer of atmostonce: for each message it charges a
//! (fake) payment API at most once per idempotency key, and a test gates
//! it in CI by running it under the simulator (`atmostonce_sim::harness`,
//! README "Gate your own consumer in CI").
//!
//! Two handlers, written against the harness's [`HandlerCtx`], whose cache
//! calls are `FencedCache`'s:
//!
//! - [`Correct`]: claim; on `Granted` charge, then complete with the
//!   charge's id as the receipt (or release when the charge was declined);
//!   on `InFlight` do not charge (another producer is on it; the broker
//!   redelivers the message later); on `Completed` answer with the stored
//!   receipt.
//! - [`ChargesAfterTimeout`]: the same, except that on `InFlight` it waits
//!   for a timeout, claims again, and, when the key is still in flight,
//!   decides the holder is stuck and charges anyway. The sweep catches it
//!   (A1: a charge no granted claim authorised, while another producer
//!   holds the key).
//!
//! The ordinary build of this crate is empty: the simulator, and so the
//! handlers, exist in the madsim build only (`cargo payments-test`).

#![forbid(unsafe_code)]

#[cfg(madsim)]
mod handlers;

#[cfg(madsim)]
pub use handlers::{ChargesAfterTimeout, Correct, charge};
