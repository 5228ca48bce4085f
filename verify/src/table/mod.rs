//! [`FaultTable`]: the one fault-injecting store table of the harness.
//!
//! # Usage
//!
//! ```
//! use atmostonce::core::{StoreReply, StoreRequest};
//! use atmostonce_verify::table::{CallFault, Caller, FaultTable};
//!
//! let mut table = FaultTable::new();
//! let producer = Caller(0);
//! let append = StoreRequest::Append { stream: "s".into(), payload: b"x".to_vec(), expected_seq: 0 };
//! // A fault-free call, stamped with the caller's clock.
//! assert_eq!(table.serve(producer, &append, 7), StoreReply::Append(Ok(0)));
//! // The store crashes before any flush: the append is gone, and the
//! // caller's next flush fails once.
//! table.crash();
//! assert_eq!(table.len("s"), 0);
//! assert!(matches!(table.serve(producer, &StoreRequest::Flush, 8), StoreReply::Flush(Err(_))));
//! // An append that takes effect but answers an indeterminate error.
//! let reply = table.serve_with(producer, &append, CallFault::ErrorApplied, 9);
//! assert!(matches!(reply, StoreReply::Append(Err(_))));
//! assert_eq!(table.len("s"), 1);
//! ```
//!
//! The caller's RNG chooses the fault of each call ([`CallFault`]); the
//! table has no randomness, no clock and only ordered collections, so it
//! is a value (`Clone + Eq + Hash`) the model can keep in its state.
//! The durability model is the store contract of `docs/spec.md`: an
//! applied append is volatile until a flush succeeds; a crash truncates
//! every stream to its durable length.

use std::collections::BTreeMap;

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{DurabilityError, ScannedEntry, StoredEntry};

#[cfg(test)]
mod tests;

/// Who makes a call (a producer, the sweeper, a probe), as the driver
/// numbers them: sessions and attribution are per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Caller(pub u32);

/// What the store does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallFault {
    /// Serve it correctly.
    None,
    /// Take effect (an append that fits, a flush), then answer with an
    /// indeterminate `StoreError`; a read or scan just fails.
    ErrorApplied,
    /// Answer with an indeterminate `StoreError` without taking effect.
    ErrorLost,
    /// Serve a read or scan with each stream missing its newest `hidden`
    /// entries (a replica behind); other calls are served correctly.
    Stale {
        /// How many of each stream's newest entries are hidden.
        hidden: u64,
    },
}

/// A caller's session: a flush after a crash dropped the caller's
/// unflushed appends fails once (as `fsync` reports an earlier write-back
/// error), so "flush makes acknowledged appends durable" is never a lie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Session {
    unflushed: bool,
    lost: bool,
}

/// One stream: its entries, how many are durable, and which caller
/// appended each entry not yet durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Stream {
    entries: Vec<StoredEntry>,
    durable: u64,
}

/// The streams of a store with the fault model of the harness.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FaultTable {
    streams: BTreeMap<String, Stream>,
    sessions: BTreeMap<Caller, Session>,
    /// `(stream, sequence)` of each applied append, with its caller.
    appended_by: BTreeMap<(String, u64), Caller>,
}

fn indeterminate(what: &str) -> DurabilityError {
    DurabilityError::StoreError(format!(
        "injected fault: the {what} failed (outcome unknown)"
    ))
}

impl FaultTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> FaultTable {
        FaultTable::default()
    }

    /// Entries of `stream` (0 when never written).
    #[must_use]
    pub fn len(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |s| s.entries.len() as u64)
    }

    /// Durable entries of `stream`.
    #[must_use]
    pub fn durable_len(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |s| s.durable)
    }

    /// The entries of `stream`, as stored now.
    #[must_use]
    pub fn entries(&self, stream: &str) -> &[StoredEntry] {
        self.streams.get(stream).map_or(&[], |s| &s.entries)
    }

    /// Every stream's name and length, in name order.
    pub fn stream_lengths(&self) -> impl Iterator<Item = (&str, u64)> {
        self.streams
            .iter()
            .map(|(name, s)| (name.as_str(), s.entries.len() as u64))
    }

    /// The caller whose append put entry `sequence` of `stream` there.
    #[must_use]
    pub fn appended_by(&self, stream: &str, sequence: u64) -> Option<Caller> {
        self.appended_by
            .get(&(stream.to_owned(), sequence))
            .copied()
    }

    /// True when a crash would drop something.
    #[must_use]
    pub fn has_unflushed(&self) -> bool {
        self.streams
            .values()
            .any(|s| s.durable < s.entries.len() as u64)
    }

    /// Serves `request` for `caller` without a fault; `now_millis` stamps
    /// an appended entry.
    pub fn serve(&mut self, caller: Caller, request: &StoreRequest, now_millis: u64) -> StoreReply {
        self.serve_with(caller, request, CallFault::None, now_millis)
    }

    /// Serves `request` for `caller` with `fault`.
    pub fn serve_with(
        &mut self,
        caller: Caller,
        request: &StoreRequest,
        fault: CallFault,
        now_millis: u64,
    ) -> StoreReply {
        let hidden = match fault {
            CallFault::Stale { hidden } => hidden,
            _ => 0,
        };
        match request {
            StoreRequest::Read {
                stream,
                offset,
                limit,
            } => StoreReply::Read(match fault {
                CallFault::ErrorApplied | CallFault::ErrorLost => Err(indeterminate("read")),
                _ => Ok(self.read(stream, *offset, *limit, hidden)),
            }),
            StoreRequest::Scan { prefix } => StoreReply::Scan(match fault {
                CallFault::ErrorApplied | CallFault::ErrorLost => Err(indeterminate("scan")),
                _ => Ok(self.scan(prefix, hidden)),
            }),
            StoreRequest::Append {
                stream,
                payload,
                expected_seq,
            } => StoreReply::Append(match fault {
                CallFault::ErrorLost => Err(indeterminate("append")),
                CallFault::ErrorApplied => self
                    .append(caller, stream, payload, *expected_seq, now_millis)
                    .and(Err(indeterminate("append"))),
                _ => self.append(caller, stream, payload, *expected_seq, now_millis),
            }),
            StoreRequest::Flush => StoreReply::Flush(match fault {
                CallFault::ErrorLost => Err(indeterminate("flush")),
                CallFault::ErrorApplied => self.flush(caller).and(Err(indeterminate("flush"))),
                _ => self.flush(caller),
            }),
        }
    }

    fn read(&self, stream: &str, offset: u64, limit: usize, hidden: u64) -> Vec<StoredEntry> {
        let visible = self.len(stream).saturating_sub(hidden);
        self.entries(stream)
            .iter()
            .filter(|e| e.sequence >= offset && e.sequence < visible)
            .take(limit)
            .cloned()
            .collect()
    }

    fn scan(&self, prefix: &str, hidden: u64) -> Vec<ScannedEntry> {
        self.streams
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(name, _)| name.starts_with(prefix))
            .flat_map(|(name, s)| {
                let visible = (s.entries.len() as u64).saturating_sub(hidden);
                s.entries
                    .iter()
                    .filter(move |e| e.sequence < visible)
                    .map(move |e| ScannedEntry {
                        stream: name.clone(),
                        entry: e.clone(),
                    })
            })
            .collect()
    }

    fn append(
        &mut self,
        caller: Caller,
        stream: &str,
        payload: &[u8],
        expected_seq: u64,
        now_millis: u64,
    ) -> Result<u64, DurabilityError> {
        let actual = self.len(stream);
        if actual != expected_seq {
            return Err(DurabilityError::SequenceConflict {
                expected: expected_seq,
                actual,
            });
        }
        let slot = self.streams.entry(stream.to_owned()).or_default();
        slot.entries.push(StoredEntry {
            payload: payload.to_vec(),
            sequence: expected_seq,
            timestamp: now_millis,
        });
        self.appended_by
            .insert((stream.to_owned(), expected_seq), caller);
        self.sessions.entry(caller).or_default().unflushed = true;
        Ok(expected_seq)
    }

    fn flush(&mut self, caller: Caller) -> Result<(), DurabilityError> {
        let session = self.sessions.entry(caller).or_default();
        if session.lost {
            session.lost = false;
            return Err(DurabilityError::StoreError(
                "the store restarted and lost appends of this caller that were not yet flushed"
                    .into(),
            ));
        }
        for s in self.streams.values_mut() {
            s.durable = s.entries.len() as u64;
        }
        for session in self.sessions.values_mut() {
            session.unflushed = false;
        }
        Ok(())
    }

    /// A store crash: every stream loses its entries past its durable
    /// length; a caller whose appends were dropped fails its next flush.
    /// Returns the dropped `(stream, sequence, caller)` slots, in order.
    pub fn crash(&mut self) -> Vec<(String, u64, Option<Caller>)> {
        let mut dropped = Vec::new();
        for (name, s) in &mut self.streams {
            let keep = usize::try_from(s.durable).unwrap_or(usize::MAX);
            for entry in s.entries.iter().skip(keep) {
                let by = self
                    .appended_by
                    .get(&(name.clone(), entry.sequence))
                    .copied();
                dropped.push((name.clone(), entry.sequence, by));
            }
            s.entries.truncate(keep);
        }
        self.streams.retain(|_, s| !s.entries.is_empty());
        for (stream, sequence, _) in &dropped {
            self.appended_by.remove(&(stream.clone(), *sequence));
        }
        for session in self.sessions.values_mut() {
            session.lost |= session.unflushed;
            session.unflushed = false;
        }
        dropped
    }

    /// Replaces the payload of entry `sequence` of `stream` (record
    /// corruption: an overwrite). False when there is no such entry.
    pub fn overwrite(&mut self, stream: &str, sequence: u64, payload: Vec<u8>) -> bool {
        let slot = self
            .streams
            .get_mut(stream)
            .and_then(|s| s.entries.get_mut(usize::try_from(sequence).ok()?));
        match slot {
            Some(entry) => {
                entry.payload = payload;
                true
            }
            None => false,
        }
    }

    /// Flips bit `bit` (modulo the payload's bits) of an entry's payload.
    /// False when there is no such entry or it is empty.
    pub fn flip_bit(&mut self, stream: &str, sequence: u64, bit: u64) -> bool {
        let Some(mut payload) = self.payload(stream, sequence) else {
            return false;
        };
        let bits = payload.len() as u64 * 8;
        if bits == 0 {
            return false;
        }
        let bit = bit % bits;
        let byte = usize::try_from(bit / 8).unwrap_or(0);
        if let Some(b) = payload.get_mut(byte) {
            *b ^= 1 << (bit % 8);
        }
        self.overwrite(stream, sequence, payload)
    }

    /// Truncates an entry's payload to `len` bytes. False when there is no
    /// such entry or it is not longer than `len`.
    pub fn truncate_record(&mut self, stream: &str, sequence: u64, len: usize) -> bool {
        let Some(mut payload) = self.payload(stream, sequence) else {
            return false;
        };
        if payload.len() <= len {
            return false;
        }
        payload.truncate(len);
        self.overwrite(stream, sequence, payload)
    }

    fn payload(&self, stream: &str, sequence: u64) -> Option<Vec<u8>> {
        let index = usize::try_from(sequence).ok()?;
        self.entries(stream).get(index).map(|e| e.payload.clone())
    }
}
