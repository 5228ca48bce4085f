//! atmostonce: an idempotency-key dedup engine whose at-most-once guarantees
//! are checked by deterministic simulation, model checking and fuzzing.
//!
//! A producer claims a message's idempotency key before delivering it,
//! stores a receipt when done (later duplicates get the receipt back), and
//! releases the claim if delivery failed; a sweeper expires old entries and
//! stuck claims.
//!
//! ```
//! use std::sync::Arc;
//! use atmostonce::{DedupCache, DedupDecision, MemoryStore, ProcessingReceipt};
//!
//! # futures::executor::block_on(async {
//! let cache = DedupCache::new(Arc::new(MemoryStore::new()), "orders");
//! let now_millis = 1_700_000_000_000;
//!
//! // The first delivery of message "order-17" claims its key ...
//! assert_eq!(cache.claim_or_get("order-17", now_millis).await?, DedupDecision::Claimed);
//! // ... delivers, and stores what a duplicate should get back.
//! let receipt = ProcessingReceipt::new(b"charged 12.00 EUR".to_vec());
//! cache.complete_receipt_at("order-17", &receipt, now_millis).await?;
//!
//! // A duplicate is answered with the receipt and must not be delivered.
//! assert_eq!(
//!     cache.claim_or_get("order-17", now_millis + 5).await?,
//!     DedupDecision::Completed(receipt)
//! );
//! # Ok::<(), atmostonce::DurabilityError>(())
//! # }).unwrap();
//! ```
//!
//! That is the seed-compatible API. New code should use the fenced API,
//! [`fenced::FencedCache`]: every grant carries a random claim id and a
//! fencing token, a holder's completion, release and renewal name their
//! claim and are refused with [`DurabilityError::StaleClaim`] once it is no
//! longer the key's current one, and every record is checksummed (see the
//! module's example and `docs/record-format.md`). It serves namespaces the
//! seed API wrote.
//!
//! The crate is a pure core with thin drivers: [`core`] holds every
//! operation as a deterministic state machine without I/O; [`DedupCache`]
//! and [`DedupSweeper`] drive those machines against a [`DurableStore`].
//! The crate depends on no async runtime.
//!
//! # Where things are
//!
//! - The crate root: the seed-compatible API, with the seed's call shapes
//!   ([`DedupCache`], [`DedupSweeper`], [`DedupDecision`], the version-1
//!   records [`DedupEntry`] and [`Tombstone`], [`key_hash`]).
//! - [`fenced`]: the fenced API, for new code.
//! - [`store`]: the storage contract [`DurableStore`] and the stores
//!   ([`MemoryStore`], `HaematiteStore` with feature `haematite`, the
//!   default, `PostgresStore` with feature `postgres`); [`conformance`]: the
//!   checks every store must pass.
//! - [`core`] and [`codec`]: the operations as state machines and the record
//!   format, for drivers of their own (the model checker and the fuzzer are
//!   two); [`limits`]: every bound.
//!
//! # Features
//!
//! - `haematite` (default), `postgres`: the durable stores.
//! - `serde`: serde derives on the store vocabulary, for carrying store calls
//!   over a wire.
//! - `testing`: knobs for the verification harness (narrow key hashes that
//!   make keys collide, the driver loop at the root, phase names, rewriting a
//!   [`StreamTable`] to model crashes and corruption). **Not covered by
//!   semver, for the harness only**: never enable it in production.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod clock;
pub mod codec;
pub mod conformance;
pub mod core;
mod driver;
mod error;
pub mod fenced;
mod hash;
pub mod limits;
pub mod store;
mod sweeper;
pub mod telemetry;

pub use cache::{DedupCache, DedupOptions, IntoStore};
pub use clock::wall_clock_millis;
pub use codec::{
    DedupEntry, DedupRecord, EncodeError, EnvelopeError, ProcessingReceipt, Tombstone,
};
pub use core::{DedupDecision, DedupSweepReport};
#[cfg(feature = "testing")]
pub use driver::{drive, execute};
pub use error::DurabilityError;
#[cfg(feature = "testing")]
pub use hash::key_hash_bits;
pub use hash::{KeyHash, SIPHASH24_STREAM_TAG, fnv1a64, key_hash};
pub use store::{
    DurableStore, MemoryStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead,
    StreamTable,
};
#[cfg(feature = "haematite")]
pub use store::{HaematiteOptions, HaematiteStore};
#[cfg(feature = "postgres")]
pub use store::{PostgresOptions, PostgresStore};
pub use sweeper::DedupSweeper;
