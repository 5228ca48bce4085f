//! Stream heads: what [`DurableStore::read_head`] and
//! [`DurableStore::scan_heads`] answer, and the default implementations'
//! folding of whole reads and scans into heads.
//!
//! [`DurableStore::read_head`]: super::DurableStore::read_head
//! [`DurableStore::scan_heads`]: super::DurableStore::scan_heads

use std::collections::BTreeMap;

use super::{ScannedEntry, StoredEntry};
use crate::DurabilityError;

/// A stream's last entry and its length, read in one call.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StreamHead {
    /// The stream's last entry; `None` for a stream never written.
    pub last: Option<StoredEntry>,
    /// The stream's length: the sequence the next append must name. It is
    /// `last.sequence + 1` (0 for a stream never written), whatever was
    /// compacted away below the last entry.
    pub length: u64,
}

impl StreamHead {
    /// The head of a stream whose last entry is `last`, or an error naming
    /// `stream` when the entry's sequence is the largest there is (no
    /// stream can be that long).
    pub fn of_last(stream: &str, last: StoredEntry) -> Result<StreamHead, DurabilityError> {
        let length = length_after(stream, &last)?;
        Ok(StreamHead {
            last: Some(last),
            length,
        })
    }
}

/// One stream's head, as [`DurableStore::scan_heads`] lists it.
///
/// [`DurableStore::scan_heads`]: super::DurableStore::scan_heads
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScannedHead {
    /// The stream's name.
    pub stream: String,
    /// Its last entry.
    pub last: StoredEntry,
    /// Its length (`last.sequence + 1`).
    pub length: u64,
}

impl ScannedHead {
    /// The head of `stream` whose last entry is `last` (an error when the
    /// sequence leaves no room for a length).
    pub fn of_last(stream: String, last: StoredEntry) -> Result<ScannedHead, DurabilityError> {
        let length = length_after(&stream, &last)?;
        Ok(ScannedHead {
            stream,
            last,
            length,
        })
    }
}

fn length_after(stream: &str, last: &StoredEntry) -> Result<u64, DurabilityError> {
    last.sequence.checked_add(1).ok_or_else(|| {
        DurabilityError::StoreError(format!(
            "the store answered an entry of stream {stream:?} at sequence {}, the largest \
             there is: no stream can be that long, so the store is broken",
            last.sequence
        ))
    })
}

/// The head of `stream` given all its entries, in order (the default
/// [`read_head`](super::DurableStore::read_head)).
pub(super) fn head_of_entries(
    stream: &str,
    entries: Vec<StoredEntry>,
) -> Result<StreamHead, DurabilityError> {
    match entries.into_iter().last() {
        Some(last) => StreamHead::of_last(stream, last),
        None => Ok(StreamHead::default()),
    }
}

/// The page of heads after `after`, at most `limit`, in a whole scan's
/// entries (the default [`scan_heads`](super::DurableStore::scan_heads)).
pub(super) fn page_of_scan(
    entries: Vec<ScannedEntry>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<ScannedHead>, DurabilityError> {
    let mut last_of: BTreeMap<String, StoredEntry> = BTreeMap::new();
    for ScannedEntry { stream, entry } in entries {
        if after.is_some_and(|after| stream.as_str() <= after) {
            continue;
        }
        match last_of.get(&stream) {
            Some(kept) if kept.sequence >= entry.sequence => {}
            _ => {
                last_of.insert(stream, entry);
            }
        }
    }
    last_of
        .into_iter()
        .take(limit)
        .map(|(stream, last)| ScannedHead::of_last(stream, last))
        .collect()
}
