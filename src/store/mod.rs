//! The storage contract ([`DurableStore`]) and the built-in in-memory store.
//!
//! A store holds named streams; a stream is an append-only sequence of
//! entries numbered 0, 1, 2, ... An append names the sequence it expects to
//! write (the stream's current length) and fails with
//! [`DurabilityError::SequenceConflict`] otherwise — optimistic concurrency
//! that the engine's every decision rests on.

#[cfg(feature = "haematite")]
mod blocking;
#[cfg(feature = "haematite")]
pub mod haematite;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod table;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::DurabilityError;

#[cfg(feature = "haematite")]
pub use haematite::{HaematiteOptions, HaematiteStore};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use table::StreamTable;

/// One entry of a stream.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredEntry {
    /// The record bytes, as appended.
    pub payload: Vec<u8>,
    /// The entry's position in its stream (0-based).
    pub sequence: u64,
    /// When the store accepted the entry, in milliseconds since the Unix
    /// epoch, by the store's clock. The engine never decides on it: TTLs use
    /// the timestamp inside the record.
    pub timestamp: u64,
}

/// An entry returned by [`DurableStore::scan`], with the stream it belongs to.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScannedEntry {
    /// The stream's name.
    pub stream: String,
    /// The entry.
    pub entry: StoredEntry,
}

/// The future every store call returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DurabilityError>> + Send + 'a>>;

/// A store of append-only streams with expected-sequence concurrency control.
///
/// Contract (checked for any implementation by [`crate::conformance`]):
///
/// - `append(stream, payload, expected_seq)` appends only if the stream holds
///   exactly `expected_seq` entries and returns `expected_seq`; otherwise it
///   fails with `SequenceConflict { expected, actual }`, `actual` being the
///   stream's length. Appends to one stream are linearizable.
/// - `read_from(stream, offset, limit)` returns the entries with
///   `sequence >= offset`, in order, at most `limit` of them.
/// - `scan(prefix)` returns the entries of every stream whose name starts
///   with `prefix`, ordered by stream name, then sequence.
/// - `flush()` makes every acknowledged append durable.
///
/// Any error other than `SequenceConflict` is indeterminate: the call may or
/// may not have taken effect. Unless [`acknowledged_appends_are_durable`]
/// says otherwise, an acknowledged append can be lost by a crash until a
/// later `flush()` succeeds; the engine flushes before it acknowledges a
/// claim, completion or release.
///
/// [`acknowledged_appends_are_durable`]: DurableStore::acknowledged_appends_are_durable
pub trait DurableStore: Send + Sync {
    /// Appends `payload` at `expected_seq`, which must be the stream's length.
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64>;

    /// Up to `limit` entries of `stream` with `sequence >= offset`, in order.
    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>>;

    /// Every entry of every stream whose name starts with `prefix`.
    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>>;

    /// Makes every acknowledged append durable.
    fn flush(&self) -> StoreFuture<'_, ()>;

    /// True when an append that returned `Ok` is already durable, so the
    /// engine may skip its `flush`. The default, `false`, is always safe.
    fn acknowledged_appends_are_durable(&self) -> bool {
        false
    }
}

impl<S: DurableStore + ?Sized> DurableStore for Arc<S> {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        (**self).append(stream, payload, expected_seq)
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        (**self).read_from(stream, offset, limit)
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        (**self).scan(prefix)
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        (**self).flush()
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        (**self).acknowledged_appends_are_durable()
    }
}
