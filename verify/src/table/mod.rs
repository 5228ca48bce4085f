//! The one fault-injecting store table (`docs/spec.md`, fault model).
//!
//! # Usage
//!
//! ```
//! use atmostonce::core::{StoreReply, StoreRequest};
//! use atmostonce_verify::table::{Call, CallFault, FaultTable};
//!
//! let mut table = FaultTable::new();
//! let append = StoreRequest::Append { stream: "s".into(), payload: vec![1], expected_seq: 0 };
//! // Served plainly, or with a fault the caller's RNG chose:
//! let reply = table.serve_with(Call::new(0, Some(7)), &append, CallFault::ErrorApplied);
//! assert!(matches!(reply, StoreReply::Append(Err(_))));
//! assert_eq!(table.len("s"), 1); // applied, though the caller saw an error
//! table.crash(); // nothing was flushed: the append is gone
//! assert_eq!(table.len("s"), 0);
//! ```
//!
//! - [`FaultTable::serve`] answers a request with no fault, as caller 0.
//! - [`FaultTable::serve_with`] answers for a [`Call`] (caller session and
//!   the operation to attribute it to) with a chosen [`CallFault`].
//! - [`FaultTable::crash`] drops every stream back to its flushed prefix;
//!   a caller whose unflushed appends were dropped gets an error from its
//!   next flush (its session is then renewed).
//! - [`FaultTable::crash_reconnecting`] is a crash after which every caller
//!   reconnects (no flush fails later); it lists the dropped entries with
//!   the calls that appended them.
//! - [`FaultTable::corrupt`] damages one stored record ([`Corruption`]).
//! - [`FaultTable::calls`] lists every call served, with its operation.
//!
//! Head reads and head scans get the faults of reads (an error, or a
//! stale view whose head is older); a compaction gets those of appends
//! (an error that removed entries or one that removed none). A compaction
//! never removes a stream's last durable entry, so a crash after it still
//! leaves the stream's length where the durable prefix put it, and a stale
//! view never reaches below a compaction: it shows at least the first
//! entry kept (`docs/spec.md`, fault model).
//!
//! The table is deterministic: ordered collections, no randomness and no
//! clock of its own (timestamps come from [`FaultTable::set_now_millis`]).

use std::collections::BTreeMap;

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{DurabilityError, ScannedEntry, ScannedHead, StoredEntry, StreamHead};

/// Who makes a call: the caller's session and the operation it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Call {
    /// The caller (a producer, a sweeper) whose session the call belongs to.
    pub caller: u32,
    /// The operation the call is attributed to, if any.
    pub op: Option<u64>,
}

impl Call {
    /// A call by `caller` on behalf of operation `op`.
    pub fn new(caller: u32, op: Option<u64>) -> Self {
        Self { caller, op }
    }
}

/// The fault to apply to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallFault {
    /// Serve the call faithfully.
    None,
    /// An indeterminate failure that took effect: an append is applied (a
    /// flush is performed) but the caller sees an error.
    ErrorApplied,
    /// An indeterminate failure that did not take effect: nothing changes
    /// and the caller sees an error.
    ErrorLost,
    /// A read or scan (of entries or heads) served from the durable
    /// (flushed) view instead of the latest one.
    StaleDurable,
    /// A read or scan (of entries or heads) served as if the last `n`
    /// entries of each stream were not there yet (a recorded older view),
    /// never hiding the first entry a compaction kept.
    StaleBy(usize),
}

/// Damage to one stored record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// Flip bit `bit % 8` of byte `byte % len`.
    BitFlip {
        /// Which byte (taken modulo the payload length).
        byte: usize,
        /// Which bit of it (taken modulo 8).
        bit: u8,
    },
    /// Keep only the first `len` bytes.
    Truncate {
        /// Bytes kept.
        len: usize,
    },
    /// Replace the payload.
    Overwrite(Vec<u8>),
}

/// The kind of a served call, for attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// A read.
    Read,
    /// An append.
    Append,
    /// A scan.
    Scan,
    /// A flush.
    Flush,
    /// A head read.
    ReadHead,
    /// A scan of heads.
    ScanHeads,
    /// A compaction.
    Compact,
}

/// One served call: who made it, what it was, which fault it got, and,
/// for an append that landed, the sequence it landed at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallRecord {
    /// Who made the call.
    pub call: Call,
    /// What kind of call.
    pub kind: CallKind,
    /// The stream (or scan prefix); empty for a flush.
    pub stream: String,
    /// The fault applied.
    pub fault: CallFault,
    /// For an append that landed, where.
    pub landed_at: Option<u64>,
}

/// An entry a crash dropped, and the call that had appended it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DroppedEntry {
    /// The stream.
    pub stream: String,
    /// The entry's sequence.
    pub sequence: u64,
    /// Who appended it, for which operation.
    pub appended_by: Call,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Stream {
    /// The entries a compaction kept, from sequence `compacted` on.
    entries: Vec<StoredEntry>,
    /// How many leading entries compactions removed: the sequence of
    /// `entries[0]`.
    compacted: usize,
    /// The stream's flushed length (a crash keeps the entries below it).
    /// Never below `compacted + 1` once the stream holds an entry.
    durable_len: usize,
    /// Who appended each entry, for which operation (parallel to `entries`).
    appended_by: Vec<Call>,
    /// The entries compactions removed, in order (sequences 0 to
    /// `compacted - 1` for a stream this table compacted itself): what a
    /// checker judges as the stream's history, never served to a caller.
    removed: Vec<StoredEntry>,
}

/// One caller's session: whether a crash dropped appends it made since
/// its last successful flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Session {
    lost_appends: bool,
}

/// A synchronous store of streams with the whole fault model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FaultTable {
    streams: BTreeMap<String, Stream>,
    sessions: BTreeMap<u32, Session>,
    now_millis: u64,
    calls: Vec<CallRecord>,
    /// True when served calls are not recorded ([`FaultTable::record_calls`]).
    calls_unrecorded: bool,
    /// True for a store whose acknowledged appends are durable
    /// ([`FaultTable::with_appends_durable`]).
    appends_durable: bool,
}

/// The message of every injected indeterminate failure.
const INJECTED: &str = "injected indeterminate store failure";

impl FaultTable {
    /// An empty table at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table holding the same streams as the engine's `table` (all of it
    /// flushed), for checkers that read a store's final state.
    /// A compacted stream is copied as compacted.
    pub fn copy_of(table: &atmostonce::StreamTable) -> Self {
        let mut copy = Self::new();
        for (name, len) in table.stream_lengths() {
            let entries = table.read_from(name, 0, usize::try_from(len).unwrap_or(usize::MAX));
            let compacted = entries.first().map_or(0, |first| {
                usize::try_from(first.sequence).unwrap_or(usize::MAX)
            });
            let stream = Stream {
                removed: Vec::new(),
                appended_by: vec![Call::new(0, None); entries.len()],
                durable_len: compacted.saturating_add(entries.len()),
                compacted,
                entries,
            };
            copy.streams.insert(name.to_owned(), stream);
        }
        copy
    }

    /// Set the store clock that stamps accepted entries.
    pub fn set_now_millis(&mut self, now_millis: u64) {
        self.now_millis = now_millis;
    }

    /// The stream's current length (flushed or not).
    pub fn len(&self, stream: &str) -> usize {
        self.streams.get(stream).map_or(0, Stream::len)
    }

    /// The stream's flushed length.
    pub fn durable_len(&self, stream: &str) -> usize {
        self.streams.get(stream).map_or(0, |s| s.durable_len)
    }

    /// The stream's current entries (from the first a compaction kept:
    /// `entries[i].sequence` is `i` plus [`compacted`](FaultTable::compacted)).
    pub fn entries(&self, stream: &str) -> &[StoredEntry] {
        self.streams.get(stream).map_or(&[], |s| &s.entries)
    }

    /// How many leading entries of the stream compactions removed.
    pub fn compacted(&self, stream: &str) -> usize {
        self.streams.get(stream).map_or(0, |s| s.compacted)
    }

    /// The names of every non-empty stream, in order.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.streams
            .iter()
            .filter(|(_, s)| !s.entries.is_empty())
            .map(|(n, _)| n.as_str())
    }

    /// The current entries of `stream` from `offset`, at most `limit`
    /// (a look that is not a served call: no fault, no attribution).
    pub fn read_from(&self, stream: &str, offset: u64, limit: usize) -> Vec<StoredEntry> {
        self.read(stream, offset, limit, CallFault::None)
    }

    /// What a read served with `fault` would return, without serving it.
    pub fn read_view(
        &self,
        stream: &str,
        offset: u64,
        limit: usize,
        fault: CallFault,
    ) -> Vec<StoredEntry> {
        self.read(stream, offset, limit, fault)
    }

    /// What a scan served with `fault` would return, without serving it.
    pub fn scan_view(&self, prefix: &str, fault: CallFault) -> Vec<ScannedEntry> {
        self.scan(prefix, fault)
    }

    /// What a head read served with `fault` would return, without serving it.
    pub fn head_view(&self, stream: &str, fault: CallFault) -> StreamHead {
        self.head(stream, fault)
    }

    /// What a scan of heads served with `fault` would return, without
    /// serving it.
    pub fn heads_view(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        fault: CallFault,
    ) -> Vec<ScannedHead> {
        self.heads(prefix, after, limit, fault)
    }

    /// What a read-only request (a read, a scan, a head read or a scan of
    /// heads) served with `fault` would answer, without serving it; `None`
    /// for a request that writes (an append, a flush, a compaction).
    pub fn view(&self, request: &StoreRequest, fault: CallFault) -> Option<StoreReply> {
        Some(match request {
            StoreRequest::Read {
                stream,
                offset,
                limit,
            } => StoreReply::Read(Ok(self.read(stream, *offset, *limit, fault))),
            StoreRequest::Scan { prefix } => StoreReply::Scan(Ok(self.scan(prefix, fault))),
            StoreRequest::ReadHead { stream } => StoreReply::Head(Ok(self.head(stream, fault))),
            StoreRequest::ScanHeads {
                prefix,
                after,
                limit,
            } => StoreReply::Heads(Ok(self.heads(prefix, after.as_deref(), *limit, fault))),
            StoreRequest::Append { .. } | StoreRequest::Flush | StoreRequest::Compact { .. } => {
                return None;
            }
        })
    }

    /// True when a crash would drop something: some stream holds entries
    /// past its flushed length.
    pub fn has_unflushed(&self) -> bool {
        self.streams
            .values()
            .any(|stream| stream.durable_len < stream.len())
    }

    /// Every non-empty stream with its current length, in name order.
    pub fn stream_lengths(&self) -> impl Iterator<Item = (&str, usize)> {
        self.streams
            .iter()
            .filter(|(_, s)| !s.entries.is_empty())
            .map(|(n, s)| (n.as_str(), s.len()))
    }

    /// Every call served so far, in order.
    pub fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    /// Serve with no fault, as caller 0, attributed to no operation.
    pub fn serve(&mut self, request: &StoreRequest) -> StoreReply {
        self.serve_with(Call::new(0, None), request, CallFault::None)
    }

    /// Serve `request` for `call` with `fault`.
    pub fn serve_with(
        &mut self,
        call: Call,
        request: &StoreRequest,
        fault: CallFault,
    ) -> StoreReply {
        self.serve_landed(call, request, fault).0
    }

    /// Record each served call in [`calls`](FaultTable::calls) (the
    /// default) or not: a caller that attributes calls itself, from
    /// [`serve_landed`](FaultTable::serve_landed), keeps the table's memory
    /// flat over a long run.
    pub fn record_calls(&mut self, on: bool) {
        self.calls_unrecorded = !on;
    }

    /// [`serve_with`](FaultTable::serve_with), also returning where an
    /// append landed, if it did (even when the caller hears an error).
    pub fn serve_landed(
        &mut self,
        call: Call,
        request: &StoreRequest,
        fault: CallFault,
    ) -> (StoreReply, Option<u64>) {
        let (kind, stream) = match request {
            StoreRequest::Read { stream, .. } => (CallKind::Read, stream.as_str()),
            StoreRequest::Append { stream, .. } => (CallKind::Append, stream.as_str()),
            StoreRequest::Scan { prefix } => (CallKind::Scan, prefix.as_str()),
            StoreRequest::Flush => (CallKind::Flush, ""),
            StoreRequest::ReadHead { stream } => (CallKind::ReadHead, stream.as_str()),
            StoreRequest::ScanHeads { prefix, .. } => (CallKind::ScanHeads, prefix.as_str()),
            StoreRequest::Compact { stream, .. } => (CallKind::Compact, stream.as_str()),
        };
        let mut landed_at = None;
        let reply = match request {
            StoreRequest::Read {
                stream,
                offset,
                limit,
            } => StoreReply::Read(match fault {
                CallFault::ErrorApplied | CallFault::ErrorLost => Err(injected_error()),
                _ => Ok(self.read(stream, *offset, *limit, fault)),
            }),
            StoreRequest::Scan { prefix } => StoreReply::Scan(match fault {
                CallFault::ErrorApplied | CallFault::ErrorLost => Err(injected_error()),
                _ => Ok(self.scan(prefix, fault)),
            }),
            StoreRequest::Append {
                stream,
                payload,
                expected_seq,
            } => {
                let result = match fault {
                    CallFault::ErrorLost => Err(injected_error()),
                    _ => self.append(call, stream, payload, *expected_seq),
                };
                landed_at = result.as_ref().ok().copied();
                StoreReply::Append(match (fault, result) {
                    (CallFault::ErrorApplied, _) => Err(injected_error()),
                    (_, result) => result,
                })
            }
            StoreRequest::Flush => StoreReply::Flush(match fault {
                CallFault::ErrorLost => Err(injected_error()),
                CallFault::ErrorApplied => {
                    // The flush itself is performed; the caller hears an error.
                    let _ = self.flush(call.caller);
                    Err(injected_error())
                }
                _ => self.flush(call.caller),
            }),
            StoreRequest::ReadHead { stream } => StoreReply::Head(match fault {
                CallFault::ErrorApplied | CallFault::ErrorLost => Err(injected_error()),
                _ => Ok(self.head(stream, fault)),
            }),
            StoreRequest::ScanHeads {
                prefix,
                after,
                limit,
            } => StoreReply::Heads(match fault {
                CallFault::ErrorApplied | CallFault::ErrorLost => Err(injected_error()),
                _ => Ok(self.heads(prefix, after.as_deref(), *limit, fault)),
            }),
            StoreRequest::Compact { stream, below_seq } => StoreReply::Compact(match fault {
                CallFault::ErrorLost => Err(injected_error()),
                CallFault::ErrorApplied => {
                    // The entries go; the caller hears an error.
                    self.compact(stream, *below_seq);
                    Err(injected_error())
                }
                _ => Ok(self.compact(stream, *below_seq)),
            }),
        };
        if !self.calls_unrecorded {
            self.calls.push(CallRecord {
                call,
                kind,
                stream: stream.to_owned(),
                fault,
                landed_at,
            });
        }
        (reply, landed_at)
    }

    /// True when an append at `expected_seq` to `stream` would land now (the
    /// stream holds exactly that many entries), so a caller can choose a
    /// fault only for calls that take effect.
    pub fn append_would_land(&self, stream: &str, expected_seq: u64) -> bool {
        self.len(stream) as u64 == expected_seq
    }

    fn read(&self, stream: &str, offset: u64, limit: usize, fault: CallFault) -> Vec<StoredEntry> {
        let Some(s) = self.streams.get(stream) else {
            return Vec::new();
        };
        let visible = s.visible(fault);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .saturating_sub(s.compacted)
            .min(visible.len());
        visible[start..].iter().take(limit).cloned().collect()
    }

    fn scan(&self, prefix: &str, fault: CallFault) -> Vec<ScannedEntry> {
        self.streams
            .range(prefix.to_string()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .flat_map(|(name, s)| {
                s.visible(fault).iter().map(|entry| ScannedEntry {
                    stream: name.clone(),
                    entry: entry.clone(),
                })
            })
            .collect()
    }

    fn append(
        &mut self,
        call: Call,
        stream: &str,
        payload: &[u8],
        expected_seq: u64,
    ) -> Result<u64, DurabilityError> {
        let (now_millis, appends_durable) = (self.now_millis, self.appends_durable);
        let s = self.streams.entry(stream.to_string()).or_default();
        let actual = s.len() as u64;
        if actual != expected_seq {
            return Err(DurabilityError::SequenceConflict {
                expected: expected_seq,
                actual,
            });
        }
        s.entries.push(StoredEntry {
            payload: payload.to_vec(),
            sequence: actual,
            timestamp: now_millis,
        });
        s.appended_by.push(call);
        if appends_durable {
            s.durable_len = s.len();
        }
        Ok(actual)
    }

    fn flush(&mut self, caller: u32) -> Result<(), DurabilityError> {
        // Only a crash opens a session (for a caller it dropped appends of):
        // a table's value stays the same whoever has flushed.
        if self
            .sessions
            .remove(&caller)
            .is_some_and(|session| session.lost_appends)
        {
            // The session is renewed: the caller has now heard of the loss.
            return Err(DurabilityError::StoreError(
                "flush failed: a store crash dropped appends of this session that were not flushed"
                    .into(),
            ));
        }
        for stream in self.streams.values_mut() {
            stream.durable_len = stream.len();
        }
        Ok(())
    }
}

impl Stream {
    /// The stream's length: entries compacted away plus entries kept.
    fn len(&self) -> usize {
        self.compacted + self.entries.len()
    }

    /// The entries a read served with `fault` sees. A stale view hides the
    /// newest entries but never the first one kept by a compaction (the
    /// view a compaction reached is at least as new as it).
    fn visible(&self, fault: CallFault) -> &[StoredEntry] {
        let len = match fault {
            CallFault::StaleDurable => self.durable_len,
            CallFault::StaleBy(n) => self.len().saturating_sub(n),
            _ => self.len(),
        };
        let floor = usize::from(self.compacted > 0 && !self.entries.is_empty());
        let kept = len.saturating_sub(self.compacted).max(floor);
        &self.entries[..kept.min(self.entries.len())]
    }
}

/// The error of every injected indeterminate failure, for a tool that
/// injects one the table did not serve (the model's store).
pub fn injected_error() -> DurabilityError {
    DurabilityError::StoreError(INJECTED.into())
}

mod damage;
mod heads;
#[cfg(test)]
mod tests;
