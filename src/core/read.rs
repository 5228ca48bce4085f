//! Reading what a single-key operation needs of its stream: the head, and
//! the one record at an uncertain append's sequence below it.

use super::{KeyState, Target};
use crate::DurabilityError;
use crate::codec::DedupRecord;
use crate::store::{StoredEntry, StreamHead};

/// What a read learned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StreamView {
    /// The stream's length: where the next append goes.
    pub next_seq: u64,
    /// The sequence of the stream's last record (`None`: an empty stream).
    pub head_seq: Option<u64>,
    /// The key's state by the stream's last record.
    pub state: KeyState,
    /// The record at the probed sequence, if one was asked for and exists.
    pub probed: Option<DedupRecord>,
}

/// The sequence after `sequence`, an entry the store returned for
/// `target`'s stream: an error, not an overflow, when the store claims the
/// last representable sequence (no append could ever follow it).
pub(crate) fn next_sequence(target: &Target, sequence: u64) -> Result<u64, DurabilityError> {
    sequence.checked_add(1).ok_or_else(|| {
        DurabilityError::StoreError(format!(
            "store returned sequence {sequence} of stream {:?}, the last one a stream can \
             have; no append can follow it",
            target.stream
        ))
    })
}

/// The last entry of a head the store answered for `target`'s stream, and
/// the stream's length, once the head is consistent: its last entry at
/// `length - 1`, and no length without a last entry. Shared by both APIs;
/// each decodes the entry with its own codec.
pub(crate) fn consistent_head(
    target: &Target,
    head: StreamHead,
) -> Result<(Option<StoredEntry>, u64), DurabilityError> {
    let Some(last) = head.last else {
        return if head.length == 0 {
            Ok((None, 0))
        } else {
            Err(DurabilityError::StoreError(format!(
                "store answered a head of stream {:?} with length {} and no last entry",
                target.stream, head.length
            )))
        };
    };
    let next_seq = next_sequence(target, last.sequence)?;
    if next_seq != head.length {
        return Err(DurabilityError::StoreError(format!(
            "store answered a head of stream {:?} with its last entry at sequence {} and \
             length {}",
            target.stream, last.sequence, head.length
        )));
    }
    Ok((Some(last), next_seq))
}

/// The seed record of `entry`, which must decode and belong to the target
/// key (records of two keys are never mixed: every append is conditioned on
/// a head that passed this check).
pub(crate) fn seed_record(
    target: &Target,
    entry: &StoredEntry,
) -> Result<DedupRecord, DurabilityError> {
    let record =
        DedupRecord::decode(&entry.payload).map_err(|error| DurabilityError::EnvelopeError {
            stream: target.stream.clone(),
            sequence: entry.sequence,
            error,
        })?;
    if record.idempotency_key() != target.key {
        return Err(DurabilityError::DedupCollision {
            key: target.key.clone(),
        });
    }
    Ok(record)
}

/// The view a head read gives; when `probe` is the head's own sequence,
/// the head is the probed record too.
pub(crate) fn view_of_head(
    target: &Target,
    head: StreamHead,
    probe: Option<u64>,
) -> Result<StreamView, DurabilityError> {
    let (last, next_seq) = consistent_head(target, head)?;
    let Some(last) = last else {
        return Ok(StreamView {
            next_seq,
            head_seq: None,
            state: KeyState::of(None),
            probed: None,
        });
    };
    let record = seed_record(target, &last)?;
    let probed = (probe == Some(last.sequence)).then(|| record.clone());
    Ok(StreamView {
        next_seq,
        head_seq: Some(last.sequence),
        state: KeyState::of(Some(&record)),
        probed,
    })
}

/// The record at `sequence` from the answer to a one-record read there:
/// `None` when the stream's first entry is past it (compacted away).
pub(crate) fn probed_record(
    target: &Target,
    sequence: u64,
    entries: &[StoredEntry],
) -> Result<Option<DedupRecord>, DurabilityError> {
    match entries {
        [entry] if entry.sequence == sequence => seed_record(target, entry).map(Some),
        [entry] if entry.sequence > sequence => Ok(None),
        _ => Err(DurabilityError::StoreError(format!(
            "store answered {} entries of stream {:?} for a read of the one at sequence \
             {sequence} below its head",
            entries.len(),
            target.stream
        ))),
    }
}
