//! [`FencedOp`]: the machinery every fenced single-key operation shares.

mod head;

use super::rules::{FencedPlan, FencedRule};
use crate::DurabilityError;
use crate::codec::FencedRecord;
use crate::core::{IoPolicy, Operation, Step, StoreReply, StoreRequest, Target, misfed};
use crate::limits::{MAX_RESOLVE_READS, MAX_SHORT_READS};
use head::is_own;

/// A fenced single-key operation: read the key's head (its last record, which
/// must decode, with a valid checksum, and belong to the key, and the
/// stream's length) with one `read_head`, flush if the store's entries may
/// not be durable yet, let the [`FencedRule`] decide, append at the stream's
/// head if it says so, and flush before answering. Nothing below the head
/// is read, so an operation costs the same whatever the key's history
/// (`docs/spec.md`, "Fenced API").
///
/// - A lost append race re-reads the head and decides again.
/// - An indeterminate append error re-reads (up to [`MAX_RESOLVE_READS`]
///   reads) and looks at the record at the sequence it appended at (the
///   head, or one record read at that sequence when the stream has grown
///   past it): if it is of the same kind and carries the operation's claim
///   id, the append was its own and landed; otherwise it decides again from
///   the head. When that record was compacted away the append's fate cannot
///   be known, and the operation reports the append's indeterminate error.
/// - A read shorter than the stream is known to be (the token's claim
///   record, a failed append's sequence) is stale and decides nothing: it is
///   read again, up to [`MAX_SHORT_READS`] reads.
///   Records are never compared byte for byte.
/// - At most [`FencedRule::MAX_APPENDS`] appends; then the last failure is
///   reported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedOp<R: FencedRule> {
    target: Target,
    io: IoPolicy,
    rule: R,
    appends: u32,
    /// The first append error whose outcome was unknown. When the operation
    /// gives up, it reports this error rather than a later one that would
    /// say it took no effect (a lost race after an append that may have
    /// landed is still an operation that may have taken effect).
    uncertain: Option<DurabilityError>,
    /// Reads that showed fewer records than the stream is known to hold.
    short_reads: u32,
    /// The latest append whose outcome was unknown, with its sequence: a
    /// lost race at that same sequence may have lost to this very append
    /// (a re-read that missed it was stale by exactly that record), so the
    /// race is resolved by that append's claim id, never taken as lost.
    uncertain_at: Option<(FencedRecord, u64)>,
    /// Flush-and-verify rounds so far (at most [`MAX_SETTLE_ROUNDS`]).
    settles: u32,
    /// True while the first append, the rule's guess made before any read
    /// ([`FencedRule::first_append`]), awaits its answer: a conflict then
    /// says the guess was wrong, not that a race was lost.
    guessing: bool,
    phase: Phase<R::Output>,
}

/// Most times an operation flushes what it read and finds the stream
/// changed under the flush before it gives up with a store error. Each
/// change needs a store crash between the read and the flush, so a second
/// round is already rare; four leaves room without looping.
const MAX_SETTLE_ROUNDS: u32 = 4;

/// What a finished read learned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct View {
    next_seq: u64,
    head: Option<(u64, FencedRecord)>,
    probed: Option<FencedRecord>,
}

/// The record appended and how its append failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Attempt {
    record: FencedRecord,
    sequence: u64,
    error: DurabilityError,
    failed_reads: u32,
    /// The record read at `sequence`, below the head, was not this
    /// append's: it did not land, and the next head read decides afresh.
    foreign: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase<T> {
    /// Reading the head; `attempt` is the failed append to resolve, if any.
    Reading {
        attempt: Option<Attempt>,
    },
    /// Reading the one record at the failed append's sequence, below the
    /// head just read.
    Probing {
        view: View,
        attempt: Attempt,
    },
    /// Flushing what was read before deciding on it.
    Settling {
        view: View,
        attempt: Option<Attempt>,
    },
    /// Reading the head again after that flush: a store crash before the
    /// flush may have dropped what was read, and the stream may have grown
    /// back to the same length with other records (a conditional append
    /// would then land on records nobody decided on). The decision is
    /// taken only when the head read is still at its sequence (then it was
    /// there when the flush made it durable); otherwise the operation reads
    /// again, at most [`MAX_SETTLE_ROUNDS`] times.
    Verifying {
        view: View,
        attempt: Option<Attempt>,
    },
    Appending {
        record: FencedRecord,
        expected_seq: u64,
    },
    /// Flushing an own append before acknowledging it.
    Flushing {
        record: FencedRecord,
        sequence: u64,
    },
    Done(Result<T, DurabilityError>),
}

impl<R: FencedRule> FencedOp<R> {
    pub(crate) fn new(target: Target, io: IoPolicy, rule: R) -> FencedOp<R> {
        let guess = rule.first_append(&target);
        let guessing = guess.is_some();
        let phase = match guess {
            Some((record, expected_seq)) => Phase::Appending {
                record,
                expected_seq,
            },
            None => Phase::Reading { attempt: None },
        };
        FencedOp {
            target,
            io,
            rule,
            appends: u32::from(guessing),
            uncertain: None,
            short_reads: 0,
            uncertain_at: None,
            settles: 0,
            guessing,
            phase,
        }
    }

    /// The key and stream this operation works on.
    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The operation's rule (its kind and parameters).
    #[must_use]
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// A short name of the phase the operation is in, for traces. Feature
    /// `testing`: a driver decides on [`PhaseKind`](crate::core::PhaseKind)-like
    /// values, never on this text.
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn phase_name(&self) -> &'static str {
        match &self.phase {
            Phase::Reading { attempt: None } => "reading",
            Phase::Reading { .. } => "re-reading after a failed append",
            Phase::Probing { .. } => "reading the failed append's record",
            Phase::Settling { .. } => "flushing before deciding",
            Phase::Verifying { .. } => "re-reading the head after the flush",
            Phase::Appending { .. } => "appending",
            Phase::Flushing { .. } => "flushing its append",
            Phase::Done(_) => "done",
        }
    }

    /// After a finished read (and, where needed, its flush).
    fn decide(&mut self, view: View, attempt: Option<Attempt>) -> Phase<R::Output> {
        // The stream is known to hold `known_len` records: the token's own
        // claim was durable before the token was handed out, and a failed
        // append went to the stream's length at the time. A read showing
        // fewer is older than that (a stale snapshot): deciding on it would
        // refuse the holder's own token or its own append. Read again, and
        // when the bound is spent give up with an indeterminate error.
        let known_len = attempt
            .as_ref()
            .map_or(0, |attempt| attempt.sequence)
            .max(self.rule.known_len());
        if view.next_seq < known_len {
            self.short_reads += 1;
            return if self.short_reads < MAX_SHORT_READS {
                Phase::Reading { attempt }
            } else {
                let error = DurabilityError::StoreError(format!(
                    "the store served {MAX_SHORT_READS} reads of stream {:?} shorter than the \
                     {known_len} records it is known to hold (stale snapshots); nothing was \
                     decided",
                    self.target.stream
                ));
                Phase::Done(Err(self.give_up(error)))
            };
        }
        // A lost race never landed; an uncertain append landed when the
        // record at its sequence is of its kind and claim id, and the rule
        // takes it for this append (a completion: the same receipt; a
        // renewal: the same lease; see `FencedRule::resolves_as_own`).
        if let Some(attempt) = &attempt
            && !matches!(attempt.error, DurabilityError::SequenceConflict { .. })
            && let Some(found) = &view.probed
            && is_own::<R>(found, attempt)
        {
            if R::OWN_MAY_BE_ANOTHERS {
                return Phase::Done(Err(self.give_up(attempt.error.clone())));
            }
            return Phase::Done(Ok(self.rule.landed(found, attempt.sequence)));
        }
        let head = view
            .head
            .as_ref()
            .map(|(sequence, record)| (*sequence, record));
        match self.rule.decide(&self.target, head, view.next_seq) {
            FencedPlan::Finish(result) => Phase::Done(result),
            FencedPlan::Append(_) if self.appends >= R::MAX_APPENDS => {
                let error = attempt.map_or_else(
                    || {
                        DurabilityError::StoreError(
                            "operation driver error: no appends allowed".into(),
                        )
                    },
                    |attempt| attempt.error,
                );
                Phase::Done(Err(self.give_up(error)))
            }
            FencedPlan::Append(record) => {
                if let Some((_, FencedRecord::Completion(_))) = head {
                    debug_assert!(
                        !matches!(record, FencedRecord::Completion(_)),
                        "a receipt is never replaced"
                    );
                }
                if let Some(fence) = fence_of(&record) {
                    debug_assert!(
                        head.and_then(|(_, head)| fence_of(head))
                            .is_none_or(|previous| fence >= previous),
                        "a key's fence never decreases along its stream"
                    );
                    debug_assert!(
                        fence <= view.next_seq,
                        "a fence never exceeds the sequence its record lands at"
                    );
                }
                self.appends += 1;
                Phase::Appending {
                    record,
                    expected_seq: view.next_seq,
                }
            }
        }
    }

    fn read_done(&mut self, view: View, attempt: Option<Attempt>) -> Phase<R::Output> {
        if self.io.flush_appends() && view.next_seq > 0 {
            Phase::Settling { view, attempt }
        } else {
            self.decide(view, attempt)
        }
    }

    /// The error an operation that gives up reports: the first uncertain
    /// append's, if it had one, else `last`.
    fn give_up(&self, last: DurabilityError) -> DurabilityError {
        self.uncertain.clone().unwrap_or(last)
    }

    fn reread(attempt: Attempt) -> Phase<R::Output> {
        Phase::Reading {
            attempt: Some(attempt),
        }
    }
}

/// The fence a version-2 record carries (version-1 records carry none).
fn fence_of(record: &FencedRecord) -> Option<u64> {
    match record {
        FencedRecord::Claim(claim) => Some(claim.fence()),
        FencedRecord::Completion(completion) => Some(completion.fence()),
        FencedRecord::Release(release) => Some(release.fence()),
        FencedRecord::Entry(_) | FencedRecord::Tombstone(_) => None,
    }
}

impl View {
    fn empty() -> View {
        View {
            next_seq: 0,
            head: None,
            probed: None,
        }
    }
}

impl<R: FencedRule> Operation for FencedOp<R> {
    type Output = R::Output;

    fn poll(&self) -> Step<R::Output> {
        match &self.phase {
            Phase::Reading { .. } => Step::Request(self.target.head_request()),
            Phase::Probing { attempt, .. } => {
                Step::Request(self.target.probe_request(attempt.sequence))
            }
            Phase::Appending {
                record,
                expected_seq,
            } => Step::Request(self.target.append_request(record.encode(), *expected_seq)),
            Phase::Verifying { view, .. } => Step::Request(StoreRequest::Read {
                stream: self.target.stream.clone(),
                offset: view.next_seq.saturating_sub(1),
                limit: 1,
            }),
            Phase::Settling { .. } | Phase::Flushing { .. } => Step::Request(StoreRequest::Flush),
            Phase::Done(result) => Step::Done(result.clone()),
        }
    }

    /// Without building the next request.
    fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    fn feed(&mut self, reply: StoreReply) {
        // `Done` is a placeholder while the real next phase is computed.
        let placeholder = Phase::Done(Err(DurabilityError::StoreError(String::new())));
        let phase = std::mem::replace(&mut self.phase, placeholder);
        let guessed = std::mem::take(&mut self.guessing);
        self.phase = match (phase, reply) {
            (Phase::Done(result), _) => Phase::Done(result),
            // The guess was wrong: the stream is not as the rule expected.
            // Read the head and decide; the guess counts as no append.
            (
                Phase::Appending { .. },
                StoreReply::Append(Err(DurabilityError::SequenceConflict { .. })),
            ) if guessed => {
                self.appends = 0;
                Phase::Reading { attempt: None }
            }
            (Phase::Reading { attempt }, StoreReply::Head(Ok(head))) => match self.view_of(head) {
                Ok(view) => self.head_read(view, attempt),
                Err(error) => Phase::Done(Err(error)),
            },
            (Phase::Probing { view, attempt }, StoreReply::Read(Ok(entries))) => {
                self.probed(view, attempt, entries)
            }
            (
                Phase::Reading {
                    attempt: Some(mut attempt),
                },
                StoreReply::Head(Err(_)),
            )
            | (Phase::Probing { mut attempt, .. }, StoreReply::Read(Err(_))) => {
                attempt.failed_reads += 1;
                if attempt.failed_reads < MAX_RESOLVE_READS {
                    Self::reread(attempt)
                } else {
                    // The append's fate stays unknown: report its own error
                    // (or an earlier uncertain one).
                    Phase::Done(Err(self.give_up(attempt.error)))
                }
            }
            (Phase::Reading { .. }, StoreReply::Head(Err(error))) => Phase::Done(Err(error)),
            (Phase::Settling { view, attempt }, StoreReply::Flush(Ok(()))) => {
                self.settles += 1;
                Phase::Verifying { view, attempt }
            }
            (Phase::Verifying { view, attempt }, StoreReply::Read(Ok(entries))) => {
                // Entries after the head are appends since the read: the
                // head was there after the flush, so it is durable, and the
                // conditional append decides the race with the newcomers.
                let unchanged = matches!(entries.as_slice(), [entry, ..]
                if entry.sequence + 1 == view.next_seq
                    && view.head.as_ref().is_some_and(|(_, head)| {
                        FencedRecord::decode(&entry.payload).is_ok_and(|read| read == *head)
                    }));
                if unchanged {
                    self.decide(view, attempt)
                } else if self.settles >= MAX_SETTLE_ROUNDS {
                    Phase::Done(Err(DurabilityError::StoreError(format!(
                        "stream {:?} changed under {MAX_SETTLE_ROUNDS} flushes of what was read",
                        self.target.stream
                    ))))
                } else {
                    Phase::Reading { attempt }
                }
            }
            (Phase::Verifying { .. }, StoreReply::Read(Err(error))) => Phase::Done(Err(error)),
            (Phase::Settling { .. }, StoreReply::Flush(Err(error))) => Phase::Done(Err(error)),
            (
                Phase::Appending {
                    record,
                    expected_seq,
                },
                StoreReply::Append(Ok(sequence)),
            ) => {
                if sequence != expected_seq {
                    Phase::Done(Err(DurabilityError::StoreError(format!(
                        "store acknowledged sequence {sequence} of stream {:?} for an append \
                         expected at {expected_seq}",
                        self.target.stream
                    ))))
                } else if self.io.flush_appends() {
                    Phase::Flushing { record, sequence }
                } else {
                    Phase::Done(Ok(self.rule.landed(&record, sequence)))
                }
            }
            (
                Phase::Appending {
                    record,
                    expected_seq,
                },
                StoreReply::Append(Err(error)),
            ) => {
                if !matches!(error, DurabilityError::SequenceConflict { .. }) {
                    if self.uncertain.is_none() {
                        self.uncertain = Some(error.clone());
                    }
                    self.uncertain_at = Some((record.clone(), expected_seq));
                    Self::reread(Attempt {
                        record,
                        sequence: expected_seq,
                        error,
                        failed_reads: 0,
                        foreign: false,
                    })
                } else if let Some((own, sequence)) = self.uncertain_at.clone()
                    && sequence == expected_seq
                    && let Some(uncertain) = self.uncertain.clone()
                {
                    // Lost to whatever holds `expected_seq`, which may be
                    // this operation's own earlier uncertain append: resolve
                    // that append (by its claim id, on a re-read) instead.
                    Self::reread(Attempt {
                        record: own,
                        sequence,
                        error: uncertain,
                        failed_reads: 0,
                        foreign: false,
                    })
                } else {
                    Self::reread(Attempt {
                        record,
                        sequence: expected_seq,
                        error,
                        failed_reads: 0,
                        foreign: false,
                    })
                }
            }
            (Phase::Flushing { record, sequence }, StoreReply::Flush(Ok(()))) => {
                Phase::Done(Ok(self.rule.landed(&record, sequence)))
            }
            (Phase::Flushing { .. }, StoreReply::Flush(Err(error))) => Phase::Done(Err(error)),
            (Phase::Reading { .. }, reply) => {
                Phase::Done(Err(misfed(&reply, "a head-read answer")))
            }
            (Phase::Probing { .. }, reply) => Phase::Done(Err(misfed(&reply, "a read answer"))),
            (Phase::Appending { .. }, reply) => {
                Phase::Done(Err(misfed(&reply, "an append answer")))
            }
            (Phase::Verifying { .. }, reply) => Phase::Done(Err(misfed(&reply, "a read answer"))),
            (Phase::Settling { .. } | Phase::Flushing { .. }, reply) => {
                Phase::Done(Err(misfed(&reply, "a flush answer")))
            }
        };
    }
}
