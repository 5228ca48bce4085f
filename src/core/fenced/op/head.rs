//! What a fenced operation reads: the key's head, and the one record at
//! an uncertain append's sequence below it (`docs/spec.md`, "Fenced API").

use std::mem::discriminant;

use super::{Attempt, FencedOp, Phase, View};
use crate::DurabilityError;
use crate::codec::FencedRecord;
use crate::core::fenced::rules::FencedRule;
use crate::core::read::consistent_head;
use crate::store::{StoredEntry, StreamHead};

impl<R: FencedRule> FencedOp<R> {
    /// The record of `entry`, which must decode and belong to the key.
    fn record_of(&self, entry: &StoredEntry) -> Result<FencedRecord, DurabilityError> {
        let record = FencedRecord::decode(&entry.payload).map_err(|error| {
            DurabilityError::EnvelopeError {
                stream: self.target.stream.clone(),
                sequence: entry.sequence,
                error,
            }
        })?;
        if record.idempotency_key() != self.target.key {
            return Err(DurabilityError::DedupCollision {
                key: self.target.key.clone(),
            });
        }
        Ok(record)
    }

    /// What a head read shows: the stream's length and its last record.
    /// The head must be consistent (its last entry at `length - 1`).
    pub(super) fn view_of(&self, head: StreamHead) -> Result<View, DurabilityError> {
        let (last, next_seq) = consistent_head(&self.target, head)?;
        let Some(last) = last else {
            return Ok(View::empty());
        };
        let record = self.record_of(&last)?;
        Ok(View {
            next_seq,
            head: Some((last.sequence, record)),
            probed: None,
        })
    }

    /// After a head read: probe the failed append's sequence when it is
    /// below the head, else go on with what was read.
    pub(super) fn head_read(
        &mut self,
        mut view: View,
        attempt: Option<Attempt>,
    ) -> Phase<R::Output> {
        let Some(attempt) = attempt else {
            return self.read_done(view, None);
        };
        if attempt.foreign || matches!(attempt.error, DurabilityError::SequenceConflict { .. }) {
            // A lost race, or an append whose sequence holds another
            // record: nothing of this append to look for.
            return self.read_done(view, Some(attempt));
        }
        match &view.head {
            Some((sequence, record)) if *sequence == attempt.sequence => {
                view.probed = Some(record.clone());
                self.read_done(view, Some(attempt))
            }
            Some((sequence, _)) if *sequence > attempt.sequence => Phase::Probing { view, attempt },
            _ => self.read_done(view, Some(attempt)),
        }
    }

    /// After the probe of the failed append's sequence: the append's own
    /// record there is its landing; another record means it did not land,
    /// and the head is read again to decide on, so that a decision always
    /// rests on the last read before it (the one its flush settles).
    pub(super) fn probed(
        &mut self,
        mut view: View,
        mut attempt: Attempt,
        entries: Vec<StoredEntry>,
    ) -> Phase<R::Output> {
        match entries.as_slice() {
            [entry] if entry.sequence == attempt.sequence => match self.record_of(entry) {
                Ok(record) if is_own::<R>(&record, &attempt) => {
                    view.probed = Some(record);
                    self.read_done(view, Some(attempt))
                }
                Ok(_) => {
                    attempt.foreign = true;
                    Phase::Reading {
                        attempt: Some(attempt),
                    }
                }
                Err(error) => Phase::Done(Err(error)),
            },
            // The stream's first entry is past the sequence (compacted
            // away): whether the append landed can no longer be known.
            [entry] if entry.sequence > attempt.sequence => {
                Phase::Done(Err(self.give_up(attempt.error)))
            }
            _ => Phase::Done(Err(DurabilityError::StoreError(format!(
                "store answered {} entries of stream {:?} for a read of the one at sequence {} \
                 below its head",
                entries.len(),
                self.target.stream,
                attempt.sequence
            )))),
        }
    }
}

/// Whether `found`, the record at the sequence of the uncertain append
/// `attempt`, is that append: of its kind, with its claim id, and the
/// rule's own by [`FencedRule::resolves_as_own`]. Never by bytes.
pub(super) fn is_own<R: FencedRule>(found: &FencedRecord, attempt: &Attempt) -> bool {
    discriminant(found) == discriminant(&attempt.record)
        && found.claim_id().is_some()
        && found.claim_id() == attempt.record.claim_id()
        && R::resolves_as_own(found, &attempt.record)
}
