//! The haematite calls behind each store call: paged reads, the prefix
//! scan, head reads and the listing of heads, and compaction.

use std::num::NonZeroUsize;

use haematite::{ApiError, Event, EventStore};

use super::keys::stream_name;
use crate::DurabilityError;
use crate::store::{ScannedEntry, ScannedHead, StoredEntry, StreamHead};

/// Events fetched per haematite page read. A page is materialised in memory
/// at once; 1024 dedup records are at most a few MiB even with maximal
/// receipts, and a key's stream is usually read in one page.
const READ_PAGE_EVENTS: usize = 1024;

/// Streams listed per haematite prefix-scan page, for the same reason.
const SCAN_PAGE_STREAMS: usize = 1024;

pub(super) fn call_error(what: &str, error: &ApiError) -> DurabilityError {
    DurabilityError::StoreError(format!(
        "haematite: {what} failed: {error}; the outcome is unknown, re-read before deciding"
    ))
}

/// Up to `limit` events of the stream at `key` from `offset`, page by page.
pub(super) fn read_events(
    events: &EventStore,
    key: &[u8],
    offset: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, ApiError> {
    let mut entries = Vec::new();
    let mut from_seq = offset;
    loop {
        let wanted = limit.saturating_sub(entries.len()).min(READ_PAGE_EVENTS);
        let Some(wanted) = NonZeroUsize::new(wanted) else {
            return Ok(entries);
        };
        let page = events.read_page(key, from_seq, wanted)?;
        entries.extend(page.events.into_iter().map(stored_entry));
        match page.next_seq {
            Some(next_seq) => from_seq = next_seq,
            None => return Ok(entries),
        }
    }
}

fn stored_entry(event: Event) -> StoredEntry {
    /// haematite stamps events in nanoseconds; the contract wants milliseconds.
    const NANOS_PER_MILLI: u64 = 1_000_000;
    StoredEntry {
        payload: event.payload,
        sequence: event.seq,
        timestamp: event.timestamp / NANOS_PER_MILLI,
    }
}

/// Every event of every stream whose key starts with `key_prefix`, by stream
/// name then sequence. Streams are listed page by page and each is read
/// separately, so the result is not one snapshot: a stream appended to
/// meanwhile may show its new entries. haematite lists only streams whose
/// first append is in a committed tree (see `Shared::buffered`).
pub(super) fn scan_prefix(
    events: &EventStore,
    key_prefix: &[u8],
    what: &str,
) -> Result<Vec<ScannedEntry>, DurabilityError> {
    let page_streams = page_streams();
    let mut scanned = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = events
            .scan_prefix(key_prefix, page_streams, after.as_deref())
            .map_err(|error| call_error(what, &error))?;
        for found in &page.streams {
            let stream = stream_of(&found.stream_key, what)?;
            let entries = read_events(events, &found.stream_key, 0, usize::MAX)
                .map_err(|error| call_error(what, &error))?;
            scanned.extend(entries.into_iter().map(|entry| ScannedEntry {
                stream: stream.clone(),
                entry,
            }));
        }
        match page.next_after {
            Some(next_after) => after = Some(next_after),
            None => return Ok(scanned),
        }
    }
}

/// The head of the stream at `key`: haematite's sequence counter (the
/// stream's length, kept through compaction) and one page read of the entry
/// just below it. Both come from the stream's shard; an append landing
/// between the two shows as a head whose entry is not the counter's
/// predecessor, which is refused as indeterminate, never answered.
pub(super) fn read_head(
    events: &EventStore,
    key: &[u8],
    stream: &str,
    what: &str,
) -> Result<StreamHead, DurabilityError> {
    let next_seq = events
        .read_stream_next_seq(key)
        .map_err(|error| call_error(what, &error))?;
    let Some(length) = next_seq.filter(|&length| length > 0) else {
        return Ok(StreamHead::default());
    };
    let last = last_event(events, key, length, what)?;
    StreamHead::of_last(stream, last)
}

/// The entry at `length - 1` of the stream at `key`, which must be there:
/// a stream's last entry is never compacted away.
fn last_event(
    events: &EventStore,
    key: &[u8],
    length: u64,
    what: &str,
) -> Result<StoredEntry, DurabilityError> {
    let last_seq = length - 1;
    let page = events
        .read_page(key, last_seq, NonZeroUsize::MIN)
        .map_err(|error| call_error(what, &error))?;
    match page.events.into_iter().next().map(stored_entry) {
        Some(entry) if entry.sequence == last_seq => Ok(entry),
        found => Err(DurabilityError::StoreError(format!(
            "haematite: {what}: the stream's length is {length} but its entry at sequence \
             {last_seq} is {}; the stream changed under the read or lost its last entry, \
             re-read before deciding",
            match found {
                Some(entry) => format!("at sequence {} instead", entry.sequence),
                None => "missing".to_owned(),
            }
        ))),
    }
}

/// At most `limit` heads of the streams whose keys start with `key_prefix`
/// and sort after `after`, by name: one prefix listing (which carries each
/// stream's length) and one single-entry read per stream listed.
pub(super) fn scan_heads(
    events: &EventStore,
    key_prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    what: &str,
) -> Result<Vec<ScannedHead>, DurabilityError> {
    let mut heads = Vec::new();
    let mut after = after.map(<[u8]>::to_vec);
    while let Some(wanted) = NonZeroUsize::new(limit.saturating_sub(heads.len())) {
        let page = events
            .scan_prefix(key_prefix, wanted.min(page_streams()), after.as_deref())
            .map_err(|error| call_error(what, &error))?;
        for found in page.streams {
            let stream = stream_of(&found.stream_key, what)?;
            let last = last_event(events, &found.stream_key, found.next_seq, what)?;
            heads.push(ScannedHead::of_last(stream, last)?);
        }
        match page.next_after {
            Some(next_after) => after = Some(next_after),
            None => break,
        }
    }
    Ok(heads)
}

/// Deletes the events of the stream at `key` below `below_seq`, never its
/// last one, and returns how many haematite deleted. The cut is capped at
/// the sequence counter less one, read on the same shard just before: an
/// append racing the cut only moves the head above it.
pub(super) fn compact(
    events: &EventStore,
    key: &[u8],
    below_seq: u64,
    what: &str,
) -> Result<u64, DurabilityError> {
    let next_seq = events
        .read_stream_next_seq(key)
        .map_err(|error| call_error(what, &error))?;
    let Some(last_seq) = next_seq.and_then(|length| length.checked_sub(1)) else {
        return Ok(0);
    };
    let cut = below_seq.min(last_seq);
    if cut == 0 {
        return Ok(0);
    }
    events
        .truncate_stream(key, cut)
        .map_err(|error| call_error(what, &error))
}

fn page_streams() -> NonZeroUsize {
    // A non-zero constant: the `unwrap_or` default is never used.
    NonZeroUsize::new(SCAN_PAGE_STREAMS).unwrap_or(NonZeroUsize::MIN)
}

fn stream_of(key: &[u8], what: &str) -> Result<String, DurabilityError> {
    stream_name(key).ok_or_else(|| {
        DurabilityError::StoreError(format!(
            "haematite: {what}: the database holds a stream key this store did not write \
             ({key:?}); is another program using the same database?"
        ))
    })
}
