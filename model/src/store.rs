//! The model's store: the engine's own [`StreamTable`] plus what a crash
//! needs (how much of each stream is durable, and which callers lost
//! appends), and a per-record summary the properties read cheaply.

use atmostonce::{
    DurabilityError, ScannedEntry, ScannedHead, StoredEntry, StreamHead, StreamTable,
};

/// What one record of a stream is, as the checker classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// An active entry without receipt (a claim).
    Claim,
    /// An active entry with a receipt (a completion).
    Complete,
    /// A tombstone written by a producer (a release).
    Release,
    /// A tombstone written by the sweeper (an expiry).
    Expire,
}

/// One record's summary: its kind, the index of the key it belongs to, for
/// a completion the receipt's number (see [`crate::receipt_bytes`]), and
/// for a fenced record its claim id's number (see [`crate::claim_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordSummary {
    /// The kind.
    pub kind: RecordKind,
    /// The key's index in the configuration.
    pub key: u8,
    /// The receipt's number (completions only, else 0).
    pub receipt: u8,
    /// The record's timestamp in ticks of the model's clock, rounded down.
    pub tick: u8,
    /// The model's number of the record's claim id (fenced records; 0 for
    /// version-1 records, which have none).
    pub claim: u8,
}

/// One stream's bookkeeping beside its entries in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StreamMeta {
    /// Entries made durable by a flush; a crash truncates to this length.
    pub durable: u64,
    /// A summary of every entry, in sequence order.
    pub records: Vec<RecordSummary>,
}

/// A caller's session with the store: the store tells a caller whose
/// appends a crash dropped, at its next flush.
///
/// This is how the model reads the storage contract: "`flush()` makes every
/// acknowledged append durable". A flush that answers `Ok` after a crash
/// dropped the caller's appends would break that promise, so the first flush
/// after such a loss fails (an indeterminate error, like `fsync` reporting
/// an earlier write-back error). The replay store enforces the same rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Session {
    /// An append of this caller was applied and no flush has covered it yet.
    pub unflushed: bool,
    /// A crash dropped such an append; the next flush fails.
    pub lost: bool,
}

impl Session {
    /// An append of this caller was applied.
    pub fn applied(&mut self) {
        self.unflushed = true;
    }

    /// The store crashed: unflushed appends are gone.
    pub fn crashed(&mut self) {
        self.lost |= self.unflushed;
        self.unflushed = false;
    }

    /// This caller flushes: fails once if a crash dropped its appends.
    /// On `Ok` every applied append is durable (the caller must then mark
    /// every session flushed, see [`Session::flushed`]).
    pub fn flush(&mut self) -> Result<(), DurabilityError> {
        if self.lost {
            self.lost = false;
            return Err(DurabilityError::StoreError(
                "the store restarted and lost appends of this caller that were not yet flushed"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Someone's flush succeeded: every applied append is durable.
    pub fn flushed(&mut self) {
        self.unflushed = false;
    }
}

/// The store: every stream's entries, and per stream the durable length
/// and record summaries. Stream `i` of [`StreamMeta`] is the model's
/// stream `i`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelStore {
    /// The entries, held exactly as the engine's `MemoryStore` holds them.
    pub table: StreamTable,
    /// Bookkeeping per stream.
    pub streams: Vec<StreamMeta>,
}

impl ModelStore {
    /// An empty store of `streams` streams.
    #[must_use]
    pub fn new(streams: usize) -> ModelStore {
        ModelStore {
            table: StreamTable::new(),
            streams: vec![StreamMeta::default(); streams],
        }
    }

    /// `read_from`.
    #[must_use]
    pub fn read(&self, stream: &str, offset: u64, limit: usize) -> Vec<StoredEntry> {
        self.table.read_from(stream, offset, limit)
    }

    /// `scan`.
    #[must_use]
    pub fn scan(&self, prefix: &str) -> Vec<ScannedEntry> {
        self.table.scan(prefix)
    }

    /// `read_head`: the last entry of `stream` and its length.
    #[must_use]
    pub fn head(&self, stream: &str) -> StreamHead {
        self.table.head(stream)
    }

    /// `scan_heads`: the heads of at most `limit` streams under `prefix`
    /// named after `after`, in name order.
    #[must_use]
    pub fn heads(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<ScannedHead> {
        self.table.heads(prefix, after, limit)
    }

    /// True when `append(stream, _, expected_seq)` would be applied.
    #[must_use]
    pub fn would_apply(&self, stream: &str, expected_seq: u64) -> bool {
        self.table.len(stream) == expected_seq
    }

    /// `append`; `summary` describes the record for the checker.
    pub fn append(
        &mut self,
        index: usize,
        stream: &str,
        payload: &[u8],
        expected_seq: u64,
        summary: RecordSummary,
    ) -> Result<u64, DurabilityError> {
        let sequence = self.table.append(stream, payload, expected_seq, 0)?;
        self.streams[index].records.push(summary);
        Ok(sequence)
    }

    /// Every applied append becomes durable (a successful flush).
    pub fn make_durable(&mut self) {
        for meta in &mut self.streams {
            meta.durable = meta.records.len() as u64;
        }
    }

    /// True when a crash would drop something.
    #[must_use]
    pub fn has_unflushed(&self) -> bool {
        self.streams
            .iter()
            .any(|meta| meta.durable < meta.records.len() as u64)
    }

    /// A crash: every stream loses its entries past its durable length.
    pub fn crash(&mut self, names: &[String]) {
        for (meta, name) in self.streams.iter_mut().zip(names) {
            self.table.truncate(name, meta.durable);
            meta.records
                .truncate(usize::try_from(meta.durable).unwrap_or(usize::MAX));
        }
    }
}
