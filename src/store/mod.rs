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
mod heads;
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
pub use heads::{ScannedHead, StreamHead};
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
/// - `read_head(stream)` returns the stream's last entry and its length
///   (the sequence the next append must name) as one answer.
/// - `scan_heads(prefix, after, limit)` returns, for at most `limit`
///   streams whose name starts with `prefix` and sorts after `after`, each
///   stream's last entry and length, ordered by stream name. A page shorter
///   than `limit` is the last one; the next page starts after the last
///   stream name of this one.
/// - `compact(stream, below_seq)` may remove the entries whose sequence is
///   below `below_seq`, except the stream's last entry, and returns how many
///   it removed. The length never changes: the next append still names the
///   old length, so sequences keep growing. A store that cannot remove
///   entries removes none (the default). Reads and scans then return only
///   the entries left, in order; a compacted stream's first entry may have a
///   sequence above 0.
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

    /// The last entry of `stream` and the stream's length, in one call.
    ///
    /// The default reads the whole stream with [`read_from`] (one call, but
    /// as costly as the stream is long); stores override it with a lookup
    /// that costs the same whatever the stream's length.
    ///
    /// [`read_from`]: DurableStore::read_from
    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        Box::pin(async move {
            let entries = self.read_from(stream, 0, usize::MAX).await?;
            heads::head_of_entries(stream, entries)
        })
    }

    /// One page of stream heads under `prefix`: the streams named after
    /// `after` (all of them when `None`), by name, at most `limit`.
    ///
    /// The default scans the whole prefix with [`scan`] and keeps the page
    /// (correct, but it loads every entry under the prefix per page); stores
    /// override it with a listing that reads one entry per stream.
    ///
    /// [`scan`]: DurableStore::scan
    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        Box::pin(async move {
            let entries = self.scan(prefix).await?;
            heads::page_of_scan(entries, after, limit)
        })
    }

    /// Removes the entries of `stream` below sequence `below_seq`, never its
    /// last entry, and returns how many were removed. The default removes
    /// nothing (the contract allows it: compaction bounds storage, it
    /// decides nothing).
    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        let _ = (stream, below_seq);
        Box::pin(std::future::ready(Ok(0)))
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

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        (**self).read_head(stream)
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        (**self).scan_heads(prefix, after, limit)
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        (**self).compact(stream, below_seq)
    }
}
