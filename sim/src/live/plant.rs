//! Store-side mistakes live mode plants on purpose (`--plant`), so that a
//! test can show the checker catches each: a store that acknowledges
//! appends it never applied, reads that show receipts nobody stored, and a
//! memory store that forgets everything when it "crashes".
//!
//! [`PlantedStore`]'s plants are bugs of a store layered over the real
//! backend under test, not faults of the fault model; `wipe-on-crash` is
//! the fault model's crash on the one fault table ([`FaultTable`]) with
//! the flush made a lie.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{
    DurabilityError, DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead,
};
use atmostonce_verify::oracle::record::{self, Record};
use atmostonce_verify::table::FaultTable;

use crate::cli::Plant;
use atmostonce_verify::served::{ServeRequest, Served};

/// One claim append in this many is acknowledged without being applied
/// (`drop-appends`): often enough that a short run grants claims twice on
/// its hot keys, rarely enough that the workload goes on.
const DROP_EVERY: u64 = 4;

/// True when `payload` is a claim: an active entry without a receipt.
fn is_claim(payload: &[u8]) -> bool {
    matches!(
        record::decode(payload),
        Ok(Record::V1Entry { receipt: None, .. })
    )
}

/// The store under test with a store-side plant.
pub(crate) struct PlantedStore {
    inner: Arc<dyn DurableStore>,
    plant: Plant,
    appends: AtomicU64,
}

impl PlantedStore {
    /// Wraps `inner` if `plant` is a store-side one.
    pub(crate) fn wrap(
        inner: Arc<dyn DurableStore>,
        plant: Option<Plant>,
    ) -> Arc<dyn DurableStore> {
        match plant {
            Some(plant @ (Plant::DropAppends | Plant::ForgeReceipts | Plant::SwapReceipts)) => {
                Arc::new(PlantedStore {
                    inner,
                    plant,
                    appends: AtomicU64::new(0),
                })
            }
            _ => inner,
        }
    }

    /// What a read shows of `entry`: a completed entry's receipt replaced
    /// by one that names the same key but no claim of the run
    /// (`forge-receipts`) or that names another key (`swap-receipts`).
    fn shown(&self, mut entry: StoredEntry) -> StoredEntry {
        if !matches!(self.plant, Plant::ForgeReceipts | Plant::SwapReceipts) {
            return entry;
        }
        let Ok(Record::V1Entry {
            key,
            receipt: Some(_),
            timestamp_millis,
        }) = record::decode(&entry.payload)
        else {
            return entry;
        };
        let receipt = if self.plant == Plant::ForgeReceipts {
            format!("{key}|p999|c999999")
        } else {
            format!("{key}-elsewhere|p999|c999999")
        };
        entry.payload = Record::V1Entry {
            key,
            receipt: Some(receipt.into_bytes()),
            timestamp_millis,
        }
        .encode();
        entry
    }
}

impl DurableStore for PlantedStore {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        if self.plant == Plant::DropAppends && is_claim(payload) {
            let count = self.appends.fetch_add(1, Ordering::Relaxed);
            if count % DROP_EVERY == DROP_EVERY - 1 {
                return Box::pin(std::future::ready(Ok(expected_seq)));
            }
        }
        self.inner.append(stream, payload, expected_seq)
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        Box::pin(async move {
            let entries = self.inner.read_from(stream, offset, limit).await?;
            Ok(entries.into_iter().map(|entry| self.shown(entry)).collect())
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        self.inner.scan(prefix)
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.inner.flush()
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.inner.acknowledged_appends_are_durable()
    }

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        Box::pin(async move {
            let head = self.inner.read_head(stream).await?;
            Ok(StreamHead {
                last: head.last.map(|entry| self.shown(entry)),
                length: head.length,
            })
        })
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        self.inner.scan_heads(prefix, after, limit)
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        self.inner.compact(stream, below_seq)
    }
}

/// A memory store that a "crash" empties (`wipe-on-crash`): a
/// [`FaultTable`] whose flushes are never performed (they answer `Ok`), so
/// every append stays volatile and a crash of the table drops them all,
/// while it claims, as `MemoryStore` does, that acknowledged appends are
/// durable.
pub(crate) type WipeableStore = Served<WipeableTable>;

/// The table of a [`WipeableStore`].
#[derive(Debug, Default)]
pub(crate) struct WipeableTable {
    table: Mutex<FaultTable>,
}

impl WipeableTable {
    /// Serves `request` at once, stamped with the wall clock.
    fn serve_now(&self, request: &StoreRequest) -> StoreReply {
        let mut table = self.table.lock();
        match request {
            // The planted lie: nothing is ever made durable.
            StoreRequest::Flush => StoreReply::Flush(Ok(())),
            _ => {
                table.set_now_millis(atmostonce::wall_clock_millis());
                table.serve(request)
            }
        }
    }

    /// The crash: every stream is gone (nothing was ever flushed).
    pub(crate) fn wipe(&self) {
        self.table.lock().crash_reconnecting();
    }
}

impl ServeRequest for WipeableTable {
    fn serve(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreReply, DurabilityError>> + Send + '_ {
        std::future::ready(Ok(self.serve_now(&request)))
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "the wipe-on-crash store"
    }
}
