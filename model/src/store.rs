//! The model's store: the harness's one fault-injecting table
//! ([`FaultTable`], which knows each stream's durable prefix and what a
//! crash drops), and a per-record summary the properties read cheaply.
//! Which callers lost appends to a crash is the model's own [`Session`]
//! per actor, part of the explored state.

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{DurabilityError, ScannedEntry, ScannedHead, StoredEntry, StreamHead};
use atmostonce_verify::table::{CallFault, Corruption, FaultTable};

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
    /// A summary of every entry, in sequence order (of the record as it
    /// was appended, damaged or not).
    pub records: Vec<RecordSummary>,
    /// The records `corruption` damaged: each one's sequence and its
    /// payload as it was appended (what the judges read it as: the key's
    /// state is what was written, and an answer must not come from what
    /// the damage made of it).
    pub damaged: Vec<(u64, Vec<u8>)>,
}

impl StreamMeta {
    /// True when the record at `sequence` was damaged.
    #[must_use]
    pub fn is_damaged(&self, sequence: u64) -> bool {
        self.damaged.iter().any(|(at, _)| *at == sequence)
    }

    /// The payload the record at `sequence` was appended with, if it was
    /// damaged since.
    #[must_use]
    pub fn original(&self, sequence: u64) -> Option<&[u8]> {
        self.damaged
            .iter()
            .find(|(at, _)| *at == sequence)
            .map(|(_, payload)| payload.as_slice())
    }
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
    /// The caller's operation under way was served a stale read
    /// (`stale-reads`): its read-only answer may describe a state the key
    /// already left, which the judge exempts (see `DedupModel::call`).
    pub stale: bool,
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

/// The store: every stream's entries, and per stream the record
/// summaries. Stream `i` of [`StreamMeta`] is the model's stream `i`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelStore {
    /// The entries and their durable prefixes. Served as one caller: the
    /// model keeps each actor's [`Session`] itself, and a crash reconnects
    /// every caller of the table.
    pub table: FaultTable,
    /// Bookkeeping per stream.
    pub streams: Vec<StreamMeta>,
}

impl ModelStore {
    /// An empty store of `streams` streams.
    #[must_use]
    pub fn new(streams: usize) -> ModelStore {
        let mut table = FaultTable::new();
        // The model attributes calls itself (its actors' steps).
        table.record_calls(false);
        ModelStore {
            table,
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
        self.table.scan_view(prefix, CallFault::None)
    }

    /// `read_head`: the last entry of `stream` and its length.
    #[must_use]
    pub fn head(&self, stream: &str) -> StreamHead {
        self.table.head_view(stream, CallFault::None)
    }

    /// `scan_heads`: the heads of at most `limit` streams under `prefix`
    /// named after `after`, in name order.
    #[must_use]
    pub fn heads(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<ScannedHead> {
        self.table.heads_view(prefix, after, limit, CallFault::None)
    }

    /// True when `append(stream, _, expected_seq)` would be applied.
    #[must_use]
    pub fn would_apply(&self, stream: &str, expected_seq: u64) -> bool {
        self.table.append_would_land(stream, expected_seq)
    }

    /// `stream`'s length.
    #[must_use]
    pub fn len(&self, stream: &str) -> u64 {
        self.table.len(stream) as u64
    }

    /// `stream`'s durable (flushed) length.
    #[must_use]
    pub fn durable_len(&self, stream: &str) -> u64 {
        self.table.durable_len(stream) as u64
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
        let request = StoreRequest::Append {
            stream: stream.to_owned(),
            payload: payload.to_vec(),
            expected_seq,
        };
        let StoreReply::Append(result) = self.table.serve(&request) else {
            return Err(DurabilityError::StoreError(
                "model store: the table answered an append with another kind of reply".into(),
            ));
        };
        let sequence = result?;
        self.streams[index].records.push(summary);
        Ok(sequence)
    }

    /// `compact`: removes the entries of `stream` below `below_seq` but
    /// never its last durable entry, and returns how many went. The record
    /// summaries keep the whole history (the properties judge it).
    pub fn compact(&mut self, stream: &str, below_seq: u64) -> u64 {
        let request = StoreRequest::Compact {
            stream: stream.to_owned(),
            below_seq,
        };
        match self.table.serve(&request) {
            StoreReply::Compact(Ok(removed)) => removed,
            _ => 0,
        }
    }

    /// Damages the entry at `sequence` of stream `index` (named
    /// `stream`) as `corruption` says, keeping its payload as appended;
    /// false when there is no such entry (compacted, or never appended).
    pub fn corrupt(
        &mut self,
        index: usize,
        stream: &str,
        sequence: u64,
        corruption: &Corruption,
    ) -> bool {
        let Some(offset) = usize::try_from(sequence)
            .ok()
            .and_then(|at| at.checked_sub(self.table.compacted(stream)))
        else {
            return false;
        };
        let Some(payload) = self
            .table
            .entries(stream)
            .get(offset)
            .map(|e| e.payload.clone())
        else {
            return false;
        };
        if !self.table.corrupt(stream, sequence, corruption) {
            return false;
        }
        self.streams[index].damaged.push((sequence, payload));
        true
    }

    /// Every entry `stream` has held that a crash did not drop, compacted
    /// ones included, from sequence 0 on (see [`FaultTable::history`]).
    #[must_use]
    pub fn history(&self, stream: &str) -> Vec<StoredEntry> {
        self.table.history(stream).cloned().collect()
    }

    /// Every applied append becomes durable (a successful flush). The
    /// table's flush cannot fail here: a crash of the model's table
    /// reconnects every caller, so no session of the table remembers a loss
    /// (the model's own [`Session`]s do).
    pub fn make_durable(&mut self) {
        let reply = self.table.serve(&StoreRequest::Flush);
        debug_assert!(matches!(reply, StoreReply::Flush(Ok(()))), "{reply:?}");
    }

    /// True when a crash would drop something.
    #[must_use]
    pub fn has_unflushed(&self) -> bool {
        self.table.has_unflushed()
    }

    /// A crash: every stream loses its entries past its durable length.
    pub fn crash(&mut self, names: &[String]) {
        self.table.crash_reconnecting();
        for (meta, name) in self.streams.iter_mut().zip(names) {
            let len = self.table.len(name);
            meta.records.truncate(len);
            meta.damaged.retain(|(at, _)| *at < len as u64);
        }
    }
}
