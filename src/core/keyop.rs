//! [`KeyOp`]: the machinery every single-key operation shares.

use super::read::{StreamView, probed_record, view_of_head};
use super::rules::{LostRace, Plan, Rule};
use super::{IoPolicy, KeyState, Operation, Step, StoreReply, StoreRequest, Target, misfed};
use crate::DurabilityError;
use crate::codec::DedupRecord;
use crate::limits::MAX_RESOLVE_READS;
use crate::store::StreamHead;

/// A single-key operation: read the key's head, let the [`Rule`] decide,
/// append after the head if it says so, and flush before answering. It
/// never reads the history below the head (`docs/spec.md`, "Operations"):
/// the key's state is its last record's.
///
/// - A lost append race ([`DurabilityError::SequenceConflict`]) re-reads the
///   head and asks the rule what to do now.
/// - An indeterminate append error re-reads the head (up to
///   [`MAX_RESOLVE_READS`] times) to learn whether the append landed, and
///   when the stream has grown past the append's sequence reads the one
///   record there: if it is identical to the one appended, the append landed
///   (the seed system's test, which cannot tell two identical records
///   apart); if nothing is there (or it was compacted away), the error is
///   returned; if another record is there, the race was lost.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyOp<R: Rule> {
    target: Target,
    io: IoPolicy,
    rule: R,
    lost_races: u32,
    phase: Phase<R::Output>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase<T> {
    /// Its next request reads the head.
    Reading {
        purpose: Purpose,
    },
    /// Its next request reads the one record at the uncertain append's
    /// sequence, below the head `view` shows.
    Probing {
        view: StreamView,
        resolve: Resolve,
    },
    Appending {
        record: DedupRecord,
        expected_seq: u64,
    },
    Flushing,
    Done(Result<T, DurabilityError>),
}

/// The phase a [`KeyOp`] is in, as its drivers may ask about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PhaseKind {
    /// The first read of the key's stream, to decide.
    Reading,
    /// Re-reading the stream after an append lost its race.
    RereadingAfterLostRace,
    /// Re-reading the stream after an indeterminate append error, to learn
    /// whether the append landed.
    ResolvingIndeterminateAppend,
    /// Its next request is an append at the stream's head.
    Appending,
    /// Its next request is a flush.
    Flushing,
    /// It has its result.
    Done,
}

impl PhaseKind {
    /// A short name, for traces.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Reading => "reading",
            PhaseKind::RereadingAfterLostRace => "re-reading after a lost race",
            PhaseKind::ResolvingIndeterminateAppend => "re-reading after an indeterminate append",
            PhaseKind::Appending => "appending",
            PhaseKind::Flushing => "flushing",
            PhaseKind::Done => "done",
        }
    }
}

/// Why the stream is being read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Purpose {
    /// The first read: learn the state and decide.
    Decide,
    /// After a `SequenceConflict`: learn what the winner wrote.
    AfterRace { expected: u64, actual: u64 },
    /// After an indeterminate append error: learn whether it landed.
    Resolve(Resolve),
}

/// An append that answered with an indeterminate error, being resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Resolve {
    record: DedupRecord,
    expected_seq: u64,
    error: DurabilityError,
    /// Reads made so far to resolve it, less one.
    attempt: u32,
}

impl Resolve {
    /// After a failed read: read the head again, or give up with the
    /// append's own error (its fate stays unknown).
    fn retry<T>(self) -> Phase<T> {
        if self.attempt + 1 < MAX_RESOLVE_READS {
            Phase::Reading {
                purpose: Purpose::Resolve(Resolve {
                    attempt: self.attempt + 1,
                    ..self
                }),
            }
        } else {
            Phase::Done(Err(self.error))
        }
    }
}

impl<R: Rule> KeyOp<R> {
    pub(crate) fn new(target: Target, io: IoPolicy, rule: R) -> KeyOp<R> {
        KeyOp {
            target,
            io,
            rule,
            lost_races: 0,
            phase: Phase::Reading {
                purpose: Purpose::Decide,
            },
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

    /// Which phase the operation is in: what a driver that chooses
    /// interleavings or faults (the model checker) asks instead of reading
    /// the trace text.
    #[must_use]
    pub fn phase_kind(&self) -> PhaseKind {
        match &self.phase {
            Phase::Reading {
                purpose: Purpose::Decide,
                ..
            } => PhaseKind::Reading,
            Phase::Reading {
                purpose: Purpose::AfterRace { .. },
                ..
            } => PhaseKind::RereadingAfterLostRace,
            Phase::Reading {
                purpose: Purpose::Resolve(_),
            }
            | Phase::Probing { .. } => PhaseKind::ResolvingIndeterminateAppend,
            Phase::Appending { .. } => PhaseKind::Appending,
            Phase::Flushing => PhaseKind::Flushing,
            Phase::Done(_) => PhaseKind::Done,
        }
    }

    /// A short name of the phase the operation is in, for traces. Feature
    /// `testing`: a driver decides on [`PhaseKind`](crate::core::PhaseKind)-like
    /// values, never on this text.
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn phase_name(&self) -> &'static str {
        self.phase_kind().name()
    }

    fn after_read(&mut self, purpose: Purpose, view: StreamView) -> Phase<R::Output> {
        match purpose {
            Purpose::Decide => {
                let plan = self.rule.decide(&self.target, &view.state);
                self.follow(&view, plan)
            }
            Purpose::AfterRace { expected, actual } => {
                let race = LostRace {
                    expected,
                    actual,
                    round: self.lost_races,
                };
                let plan = self.rule.after_lost_race(&self.target, &view.state, race);
                self.follow(&view, plan)
            }
            Purpose::Resolve(Resolve {
                record,
                expected_seq,
                error,
                ..
            }) => match &view.probed {
                Some(found) if *found == record => {
                    debug_assert!(
                        view.next_seq > expected_seq,
                        "an append found by its re-read lies inside the stream"
                    );
                    self.landed()
                }
                None => Phase::Done(Err(error)),
                Some(_) => {
                    self.lost_races += 1;
                    let race = LostRace {
                        expected: expected_seq,
                        actual: view.next_seq,
                        round: self.lost_races,
                    };
                    let plan = self.rule.after_lost_race(&self.target, &view.state, race);
                    self.follow(&view, plan)
                }
            },
        }
    }

    /// The phase `plan`, decided on `view`, leads to.
    fn follow(&self, view: &StreamView, plan: Plan<R::Output>) -> Phase<R::Output> {
        match plan {
            Plan::Finish(result) => Phase::Done(result),
            Plan::Append(record) => {
                debug_assert!(
                    !matches!(view.state, KeyState::Completed { .. }),
                    "a receipt is never replaced: no single-key operation appends over one \
                     (only the sweeper's expiry does)"
                );
                debug_assert_eq!(
                    record.idempotency_key(),
                    self.target.key,
                    "an operation writes only its own key's records"
                );
                Phase::Appending {
                    record,
                    expected_seq: view.next_seq,
                }
            }
        }
    }

    fn landed(&self) -> Phase<R::Output> {
        if self.io.flush_appends() {
            Phase::Flushing
        } else {
            Phase::Done(Ok(self.rule.landed()))
        }
    }

    /// After a head read: probe the uncertain append's sequence when the
    /// stream has grown past it, else go on with what was read.
    fn after_head(&mut self, purpose: Purpose, head: StreamHead) -> Phase<R::Output> {
        let probe = match &purpose {
            Purpose::Resolve(resolve) => Some(resolve.expected_seq),
            Purpose::Decide | Purpose::AfterRace { .. } => None,
        };
        let view = match view_of_head(&self.target, head, probe) {
            Ok(view) => view,
            Err(error) => return Phase::Done(Err(error)),
        };
        match purpose {
            Purpose::Resolve(resolve)
                if view
                    .head_seq
                    .is_some_and(|head| head > resolve.expected_seq) =>
            {
                Phase::Probing { view, resolve }
            }
            purpose => self.after_read(purpose, view),
        }
    }
}

impl<R: Rule> Operation for KeyOp<R> {
    type Output = R::Output;

    fn poll(&self) -> Step<R::Output> {
        match &self.phase {
            Phase::Reading { .. } => Step::Request(self.target.head_request()),
            Phase::Probing { resolve, .. } => {
                Step::Request(self.target.probe_request(resolve.expected_seq))
            }
            Phase::Appending {
                record,
                expected_seq,
            } => Step::Request(self.target.append_request(record.encode(), *expected_seq)),
            Phase::Flushing => Step::Request(StoreRequest::Flush),
            Phase::Done(result) => Step::Done(result.clone()),
        }
    }

    /// Without building the next request.
    fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    fn feed(&mut self, reply: StoreReply) {
        // `Flushing` is a placeholder while the real next phase is computed.
        let phase = std::mem::replace(&mut self.phase, Phase::Flushing);
        self.phase = match (phase, reply) {
            (Phase::Done(result), _) => Phase::Done(result),
            (Phase::Reading { purpose }, StoreReply::Head(Ok(head))) => {
                self.after_head(purpose, head)
            }
            (
                Phase::Reading {
                    purpose: Purpose::Resolve(resolve),
                },
                StoreReply::Head(Err(_)),
            ) => resolve.retry(),
            (Phase::Reading { .. }, StoreReply::Head(Err(error))) => Phase::Done(Err(error)),
            (Phase::Probing { mut view, resolve }, StoreReply::Read(Ok(entries))) => {
                match probed_record(&self.target, resolve.expected_seq, &entries) {
                    Ok(probed) => {
                        view.probed = probed;
                        self.after_read(Purpose::Resolve(resolve), view)
                    }
                    Err(error) => Phase::Done(Err(error)),
                }
            }
            (Phase::Probing { resolve, .. }, StoreReply::Read(Err(_))) => resolve.retry(),
            (Phase::Appending { expected_seq, .. }, StoreReply::Append(Ok(sequence))) => {
                if sequence == expected_seq {
                    self.landed()
                } else {
                    Phase::Done(Err(DurabilityError::StoreError(format!(
                        "store acknowledged sequence {sequence} of stream {:?} for an append \
                         expected at {expected_seq}",
                        self.target.stream
                    ))))
                }
            }
            (
                Phase::Appending { .. },
                StoreReply::Append(Err(DurabilityError::SequenceConflict { expected, actual })),
            ) => {
                self.lost_races += 1;
                Phase::Reading {
                    purpose: Purpose::AfterRace { expected, actual },
                }
            }
            (
                Phase::Appending {
                    record,
                    expected_seq,
                },
                StoreReply::Append(Err(error)),
            ) => Phase::Reading {
                purpose: Purpose::Resolve(Resolve {
                    record,
                    expected_seq,
                    error,
                    attempt: 0,
                }),
            },
            (Phase::Flushing, StoreReply::Flush(Ok(()))) => Phase::Done(Ok(self.rule.landed())),
            (Phase::Flushing, StoreReply::Flush(Err(error))) => Phase::Done(Err(error)),
            (Phase::Reading { .. }, reply) => {
                Phase::Done(Err(misfed(&reply, "a head read's answer")))
            }
            (Phase::Probing { .. }, reply) => Phase::Done(Err(misfed(&reply, "a read answer"))),
            (Phase::Appending { .. }, reply) => {
                Phase::Done(Err(misfed(&reply, "an append answer")))
            }
            (Phase::Flushing, reply) => Phase::Done(Err(misfed(&reply, "a flush answer"))),
        };
    }
}
