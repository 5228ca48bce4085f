//! Reading a key's stream to learn its state, one batch at a time.

use super::{KeyState, StoreRequest, Target};
use crate::DurabilityError;
use crate::codec::DedupRecord;
use crate::store::StoredEntry;

/// Progress of reading one stream from its first entry to its end.
///
/// Every record is decoded and checked to belong to the target key (records
/// of two keys are never mixed); the last one is kept as the stream's head.
/// Optionally the record at one sequence is kept too (`probe`), to learn
/// whether an append answered with an indeterminate error landed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StreamRead {
    next_seq: u64,
    head: Option<DedupRecord>,
    probe: Option<Probe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Probe {
    sequence: u64,
    record: Option<DedupRecord>,
}

/// What a finished read learned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StreamView {
    /// The stream's length: where the next append goes.
    pub next_seq: u64,
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

pub(crate) enum ReadProgress {
    More,
    Finished(StreamView),
}

impl StreamRead {
    pub(crate) fn new() -> StreamRead {
        StreamRead {
            next_seq: 0,
            head: None,
            probe: None,
        }
    }

    /// A read that also keeps the record at `sequence`.
    pub(crate) fn probing(sequence: u64) -> StreamRead {
        StreamRead {
            probe: Some(Probe {
                sequence,
                record: None,
            }),
            ..StreamRead::new()
        }
    }

    pub(crate) fn request(&self, target: &Target, read_batch: usize) -> StoreRequest {
        StoreRequest::Read {
            stream: target.stream.clone(),
            offset: self.next_seq,
            limit: read_batch,
        }
    }

    /// Takes in one batch. Fails on a record that does not decode, a record
    /// of another key, or a store that answered out of order or too much.
    pub(crate) fn absorb(
        &mut self,
        target: &Target,
        read_batch: usize,
        entries: Vec<StoredEntry>,
    ) -> Result<ReadProgress, DurabilityError> {
        if entries.len() > read_batch {
            return Err(DurabilityError::StoreError(format!(
                "store returned {} entries of stream {:?} for a read of at most {read_batch}",
                entries.len(),
                target.stream
            )));
        }
        let full_batch = entries.len() == read_batch;
        for entry in entries {
            if entry.sequence != self.next_seq {
                return Err(DurabilityError::StoreError(format!(
                    "store returned sequence {} of stream {:?} where {} was next",
                    entry.sequence, target.stream, self.next_seq
                )));
            }
            let record = DedupRecord::decode(&entry.payload).map_err(|error| {
                DurabilityError::EnvelopeError {
                    stream: target.stream.clone(),
                    sequence: entry.sequence,
                    error,
                }
            })?;
            if record.idempotency_key() != target.key {
                return Err(DurabilityError::DedupCollision {
                    key: target.key.clone(),
                });
            }
            if let Some(probe) = &mut self.probe
                && probe.sequence == entry.sequence
            {
                probe.record = Some(record.clone());
            }
            self.head = Some(record);
            self.next_seq = next_sequence(target, entry.sequence)?;
        }
        debug_assert!(
            self.probe
                .as_ref()
                .is_none_or(|probe| probe.record.is_none() || probe.sequence < self.next_seq),
            "a probed record is one the read has passed"
        );
        if full_batch {
            return Ok(ReadProgress::More);
        }
        Ok(ReadProgress::Finished(StreamView {
            next_seq: self.next_seq,
            state: KeyState::of(self.head.as_ref()),
            probed: self.probe.as_mut().and_then(|probe| probe.record.take()),
        }))
    }
}
