//! The verification layer of atmostonce.
//!
//! Everything here judges the engine; nothing here reuses the engine's
//! decisions. `docs/spec.md` is the text every part of this crate is
//! written from.
//!
//! - [`oracle`]: the sequential specification of one key, the per-key
//!   linearizability search, expiry, stream naming, error classes and a
//!   reference record decoder, each written from the specification.
//! - [`catalogue`]: the one list of invariants, violations and verdicts.
//! - [`faults`]: the one fault vocabulary, with the tools that support each.
//! - [`table`]: the one fault-injecting store table.
//! - [`served`]: a store that serves whole requests (a table's, a wire's),
//!   as the engine's `DurableStore`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod catalogue;
pub mod faults;
pub mod oracle;
pub mod served;
pub mod table;
