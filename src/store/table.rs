//! [`StreamTable`]: the streams of a store as a plain value.

use std::collections::BTreeMap;

use super::{ScannedEntry, ScannedHead, StoredEntry, StreamHead};
use crate::DurabilityError;

/// A set of append-only streams held in memory, with no locking and no I/O.
///
/// It is the state of [`MemoryStore`](super::MemoryStore), and it is a value
/// (`Clone + Eq + Hash`) so that the simulator can snapshot it and the model
/// checker can hold it in its state. Streams are kept in name order, so
/// [`scan`](StreamTable::scan) is deterministic.
///
/// A stream's entries are contiguous: after a [`compact`](StreamTable::compact)
/// they start at the first sequence kept, and its length is its last
/// entry's sequence + 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StreamTable {
    streams: BTreeMap<String, Vec<StoredEntry>>,
}

impl StreamTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        StreamTable::default()
    }

    /// The number of entries in `stream` (0 for a stream never written).
    #[must_use]
    pub fn len(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |entries| length_of(entries))
    }

    /// True when no stream holds an entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.streams.values().all(Vec::is_empty)
    }

    /// Appends `payload` to `stream` if it holds exactly `expected_seq`
    /// entries, stamping it with `timestamp`; returns the new entry's
    /// sequence.
    pub fn append(
        &mut self,
        stream: &str,
        payload: &[u8],
        expected_seq: u64,
        timestamp: u64,
    ) -> Result<u64, DurabilityError> {
        let actual = self.len(stream);
        if actual != expected_seq {
            return Err(DurabilityError::SequenceConflict {
                expected: expected_seq,
                actual,
            });
        }
        let entries = self.streams.entry(stream.to_owned()).or_default();
        entries.push(StoredEntry {
            payload: payload.to_vec(),
            sequence: expected_seq,
            timestamp,
        });
        Ok(expected_seq)
    }

    /// Up to `limit` entries of `stream` with `sequence >= offset`.
    #[must_use]
    pub fn read_from(&self, stream: &str, offset: u64, limit: usize) -> Vec<StoredEntry> {
        let Some(entries) = self.streams.get(stream) else {
            return Vec::new();
        };
        let start = index_of(entries, offset).min(entries.len());
        entries[start..].iter().take(limit).cloned().collect()
    }

    /// The last entry of `stream` and its length.
    #[must_use]
    pub fn head(&self, stream: &str) -> StreamHead {
        let entries = self.streams.get(stream);
        StreamHead {
            last: entries.and_then(|entries| entries.last().cloned()),
            length: entries.map_or(0, |entries| length_of(entries)),
        }
    }

    /// The heads of at most `limit` streams whose names start with `prefix`
    /// and sort after `after`, by name.
    #[must_use]
    pub fn heads(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<ScannedHead> {
        let from = match after {
            Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included(prefix),
        };
        self.streams
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter_map(|(name, entries)| {
                let last = entries.last()?;
                Some(ScannedHead {
                    stream: name.clone(),
                    last: last.clone(),
                    length: length_of(entries),
                })
            })
            .take(limit)
            .collect()
    }

    /// Removes the entries of `stream` below `below_seq`, never the last
    /// one; returns how many it removed. The stream's length is unchanged.
    pub fn compact(&mut self, stream: &str, below_seq: u64) -> u64 {
        let Some(entries) = self.streams.get_mut(stream) else {
            return 0;
        };
        let removed = index_of(entries, below_seq).min(entries.len().saturating_sub(1));
        entries.drain(..removed);
        removed as u64
    }

    /// Every entry of every stream whose name starts with `prefix`, by stream
    /// name, then sequence.
    #[must_use]
    pub fn scan(&self, prefix: &str) -> Vec<ScannedEntry> {
        self.streams
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(name, _)| name.starts_with(prefix))
            .flat_map(|(name, entries)| {
                entries.iter().map(move |entry| ScannedEntry {
                    stream: name.clone(),
                    entry: entry.clone(),
                })
            })
            .collect()
    }

    /// Drops every entry of `stream` at or after sequence `len` (a crash
    /// losing unflushed appends, in the simulator and the model). Feature
    /// `testing`.
    #[cfg(feature = "testing")]
    pub fn truncate(&mut self, stream: &str, len: u64) {
        if let Some(entries) = self.streams.get_mut(stream) {
            let kept = index_of(entries, len);
            entries.truncate(kept);
            if entries.is_empty() {
                self.streams.remove(stream);
            }
        }
    }

    /// Replaces the payload of one entry (record corruption, in the simulator
    /// and the fuzzer). Returns false when there is no such entry. Feature
    /// `testing`.
    #[cfg(feature = "testing")]
    pub fn overwrite(&mut self, stream: &str, sequence: u64, payload: Vec<u8>) -> bool {
        let slot = self.streams.get_mut(stream).and_then(|entries| {
            let first = entries.first()?.sequence;
            let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
            entries.get_mut(index)
        });
        match slot {
            Some(entry) => {
                entry.payload = payload;
                true
            }
            None => false,
        }
    }

    /// The names of all streams, in order, with their lengths.
    pub fn stream_lengths(&self) -> impl Iterator<Item = (&str, u64)> {
        self.streams
            .iter()
            .map(|(name, entries)| (name.as_str(), length_of(entries)))
    }
}

/// A stream's length: its last entry's sequence + 1 (0 when empty). The
/// table only ever appends at the length, so the sum cannot overflow before
/// the table has held `u64::MAX` entries.
fn length_of(entries: &[StoredEntry]) -> u64 {
    entries
        .last()
        .map_or(0, |last| last.sequence.saturating_add(1))
}

/// The index in `entries` of the entry at `sequence` (or where it would be):
/// the sequence less the first entry's.
fn index_of(entries: &[StoredEntry], sequence: u64) -> usize {
    let first = entries.first().map_or(0, |first| first.sequence);
    usize::try_from(sequence.saturating_sub(first)).unwrap_or(usize::MAX)
}
