//! [`MemoryStore`]: a linearizable in-process store.

use parking_lot::{Mutex, MutexGuard};

use super::{
    DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead, StreamTable,
};
use crate::clock::wall_clock_millis;

/// A linearizable [`DurableStore`] held in process memory.
///
/// Every call takes one lock, so each call is atomic and calls are totally
/// ordered. Appends are "durable" for the store's lifetime (there is no crash
/// to lose them), so the engine skips its flushes. The simulator wraps it in
/// a fault-injecting store; tests and single-process deployments use it as is.
#[derive(Debug, Default)]
pub struct MemoryStore {
    table: Mutex<StreamTable>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store holding `table`'s streams.
    #[must_use]
    pub fn from_table(table: StreamTable) -> Self {
        MemoryStore {
            table: Mutex::new(table),
        }
    }

    /// A copy of the store's streams.
    #[must_use]
    pub fn snapshot(&self) -> StreamTable {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, StreamTable> {
        // The lock does not poison, and need not: a panic while it was held
        // cannot leave the table half-changed, as every StreamTable method
        // mutates with a single push/truncate/drain/assign after all its
        // checks.
        self.table.lock()
    }
}

impl DurableStore for MemoryStore {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        let result = self
            .lock()
            .append(stream, payload, expected_seq, wall_clock_millis());
        Box::pin(std::future::ready(result))
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        let entries = self.lock().read_from(stream, offset, limit);
        Box::pin(std::future::ready(Ok(entries)))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        let entries = self.lock().scan(prefix);
        Box::pin(std::future::ready(Ok(entries)))
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        true
    }

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        let head = self.lock().head(stream);
        Box::pin(std::future::ready(Ok(head)))
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        let heads = self.lock().heads(prefix, after, limit);
        Box::pin(std::future::ready(Ok(heads)))
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        let removed = self.lock().compact(stream, below_seq);
        Box::pin(std::future::ready(Ok(removed)))
    }
}
