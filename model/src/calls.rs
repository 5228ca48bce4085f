//! One store call of an engine operation: build its request (`poll`), let
//! the model's store answer it as the step says, feed the answer (`feed`),
//! and apply what the call did to the store. Answers are memoized per
//! thread (see [`crate::memo`]).

use atmostonce::DurabilityError;
use atmostonce::core::fenced::{FencedClaimOp, FencedCompleteOp, FencedReleaseOp, FencedSweepOp};
use atmostonce::core::{
    ClaimOp, CompleteOp, Operation, ReleaseOp, Step, StoreReply, StoreRequest, SweepOp,
};
use atmostonce_verify::oracle::record;
use atmostonce_verify::table::CallFault;

mod append;
mod settle;

pub use settle::injected_error;
use settle::{settle, unexplained};

use crate::action::Call;
use crate::checks::Made;
use crate::config::Fault;
use crate::fenced_judge::{self, Judged};
use crate::hashed::{Hashed, Internable};
use crate::memo::{self, Memoized};
use crate::model::{Actor, DedupModel};
use crate::narration::{Narration, show_record};
use atmostonce_verify::catalogue::Invariant;

use crate::state::{Event, State, violation_bit};
use crate::store::{ModelStore, RecordSummary, Session};

/// How many of each stream's newest entries a stale read does not see:
/// one, the smallest lag, which is what a read decided on a view that
/// misses the latest write needs.
const STALE_BY: usize = 1;

/// What one store call of an operation gave: the fed operation, its
/// result if it ended, and the sequence it appended at if it appended.
pub(crate) type Called<O> = (
    Hashed<O>,
    Option<Result<<O as Operation>::Output, DurabilityError>>,
    Made,
);

/// What one store call of an operation gives, as far as it depends on the
/// operation, the store, the call and the caller's session only (see
/// [`DedupModel::answer`]).
#[derive(Debug, Clone)]
pub(crate) struct Answer<O: Operation + 'static> {
    /// The operation, fed the store's reply.
    op: Hashed<O>,
    /// Its result, if it ended.
    result: Option<Result<O::Output, DurabilityError>>,
    /// The kind of call it made.
    made: Made,
    /// What the call did to the store.
    effect: Effect,
    /// For an operation that flushes what it read before deciding on it
    /// ([`Machine::SETTLES`]), after a read or scan: the operation as it is
    /// once that flush succeeds, which shows what it decided on the store
    /// this call read (an answer, or an append).
    settled: Option<Hashed<O>>,
    /// The invariants the oracle's judgement of the call sees violated
    /// (bits of `violation_bit`; see [`Machine::judge`]).
    flags: u16,
    /// The call read one record below a head and the store answered the
    /// first entry it keeps, past the sequence asked for: the record was
    /// compacted away.
    probe_compacted: bool,
}

/// What a store call did to the store.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// Nothing (a read, a scan, an append that did not land).
    Nothing,
    /// An append landed.
    Appended {
        index: usize,
        expected_seq: u64,
        summary: RecordSummary,
        store: Hashed<ModelStore>,
    },
    /// A flush made every append durable.
    Flushed { store: Hashed<ModelStore> },
    /// A compaction removed entries below a head.
    Compacted { store: Hashed<ModelStore> },
    /// A flush failed: a crash had dropped the caller's appends.
    FlushFailed,
    /// The model cannot explain the call: an append to a stream no key of
    /// the model names, of a record that does not decode, or of a record
    /// of a key the model does not have. The store refuses it, and the step
    /// flags `Invariant::Internal` (the run fails; nothing is mapped to a
    /// default).
    Unexplained,
}

/// An engine operation the model drives: its values are interned and its
/// answers memoized per thread.
pub(crate) trait Machine:
    Operation + Internable + Memoized<Answer = Option<Answer<Self>>>
{
    /// True for the fenced operations, which read, flush what they read,
    /// and only then decide (see [`Answer::settled`]).
    const SETTLES: bool = false;

    /// The invariants the oracle sees `call` violate, as bits of
    /// `violation_bit`. The fenced operations are judged here, with the
    /// call (memoized); the seed API's steps are judged by
    /// [`crate::checks`] as they happen.
    fn judge(_model: &DedupModel, _call: &Judged<'_, Self>) -> u16 {
        0
    }
}

/// The thread-local memo of `Option<Answer<T>>` for operation types `T`.
macro_rules! memoized {
    ($($t:ty),* $(,)?) => {$(
        impl Memoized for $t {
            type Answer = Option<Answer<$t>>;
            fn with_memo<R>(f: impl FnOnce(&mut memo::Memo<Option<Answer<$t>>>) -> R) -> R {
                thread_local! {
                    static MEMO: std::cell::RefCell<memo::Memo<Option<Answer<$t>>>> =
                        std::cell::RefCell::default();
                }
                MEMO.with_borrow_mut(f)
            }
        }
    )*};
}

memoized!(
    ClaimOp,
    CompleteOp,
    ReleaseOp,
    SweepOp,
    FencedClaimOp,
    FencedCompleteOp,
    FencedReleaseOp,
    FencedSweepOp,
);

impl Machine for ClaimOp {}
impl Machine for CompleteOp {}
impl Machine for ReleaseOp {}
impl Machine for SweepOp {}

/// The fenced operations: settled decisions, judged by the oracle.
macro_rules! fenced_machine {
    ($($t:ty),* $(,)?) => {$(
        impl Machine for $t {
            const SETTLES: bool = true;
            fn judge(model: &DedupModel, call: &Judged<'_, Self>) -> u16 {
                fenced_judge::judge(model, call)
            }
        }
    )*};
}

fenced_machine!(
    FencedClaimOp,
    FencedCompleteOp,
    FencedReleaseOp,
    FencedSweepOp
);

impl DedupModel {
    /// Performs `op`'s next store call as `call` says, feeds the answer, and
    /// returns the operation and, if it ended, its result.
    ///
    /// What the call gives depends only on the operation, the store, the
    /// call and the caller's session ([`Answer`], computed by
    /// [`DedupModel::answer`]); what depends on the rest of the state (the
    /// fault budget, the checks and ghost variables an append updates) is
    /// done here. While the checker explores (no narration), answers are
    /// memoized: see [`crate::memo`].
    pub(crate) fn call<O: Machine>(
        &self,
        s: &mut State,
        actor: Actor,
        op: &Hashed<O>,
        call: Call,
        words: &mut Narration,
    ) -> Option<Called<O>> {
        let session = *Self::session(s, actor);
        let (lost, stale) = (session.lost, session.stale || call == Call::StaleRead);
        let store = s.store;
        let answer = if words.is_silent() {
            let how = (lost, stale);
            let key = memo::Key::new(self.id, op.id(), store.id(), call as u8, how, actor.kind());
            memo::remember::<O>(key, || {
                self.answer(op, store, actor, call, how, &mut Narration::silent())
            })
        } else {
            self.answer(op, store, actor, call, (lost, stale), words)
        }?;
        // Whether the operation under way was served a stale read; the
        // next operation starts afresh.
        Self::session(s, actor).stale = stale && answer.result.is_none();
        match call {
            Call::Normal => {}
            Call::AppendFailsApplied | Call::AppendFailsNotApplied => {
                s.budget.spend(Fault::Indeterminate)?;
            }
            Call::StaleRead => {
                s.budget.spend(Fault::StaleReads)?;
                s.note(Event::StaleReadSeen);
            }
        }
        match answer.effect {
            Effect::Nothing => {}
            Effect::Appended {
                index,
                expected_seq,
                summary,
                store,
            } => self.appended(s, actor, index, expected_seq, summary, store),
            Effect::Flushed { store } => {
                s.store = store;
                s.all_flushed();
            }
            Effect::Compacted { store } => s.store = store,
            Effect::Unexplained => s.flag(Invariant::Internal),
            Effect::FlushFailed => {
                let failed = Self::session(s, actor).flush();
                debug_assert!(failed.is_err(), "the session had lost appends");
            }
        }
        s.violations |= answer.flags;
        // (The sweeper's own compaction may do it too; the event splits
        // states, so only runs with the janitor note it.)
        if answer.probe_compacted && self.config.faults.contains(Fault::Compaction) {
            s.note(Event::ProbeFoundCompacted);
        }
        // An envelope error must name a record that was damaged (S8: the
        // decoder rejected none that the encoder wrote).
        if let Some(Err(DurabilityError::EnvelopeError {
            stream, sequence, ..
        })) = &answer.result
        {
            match self.stream_index(stream) {
                Some(index) if s.store.streams[index].is_damaged(*sequence) => {
                    s.note(Event::CorruptReported);
                }
                _ => s.flag(Invariant::S8),
            }
        }
        Some((answer.op, answer.result, answer.made))
    }

    /// True when `op`'s next store call, made normally by `actor` in state
    /// `s`, would leave the operation asking to append: the engine's own
    /// operation decides, fed what the store holds now. Nothing is
    /// performed; the answer is memoized as the call itself would be.
    pub(crate) fn would_append_next<O: Machine>(
        &self,
        s: &State,
        actor: Actor,
        op: &Hashed<O>,
    ) -> bool {
        let lost = match actor {
            Actor::Producer(p) => s.producers.get(p).is_some_and(|p| p.session.lost),
            Actor::Sweeper => s.sweeper.session.lost,
        };
        let store = s.store;
        let call = Call::Normal;
        let stale = match actor {
            Actor::Producer(p) => s.producers.get(p).is_some_and(|p| p.session.stale),
            Actor::Sweeper => s.sweeper.session.stale,
        };
        let how = (lost, stale);
        let key = memo::Key::new(self.id, op.id(), store.id(), call as u8, how, actor.kind());
        let answer = memo::remember::<O>(key, || {
            self.answer(op, store, actor, call, how, &mut Narration::silent())
        });
        answer.is_some_and(|answer| {
            let next = answer.settled.unwrap_or(answer.op);
            !next.is_done() && matches!(next.poll(), Step::Request(StoreRequest::Append { .. }))
        })
    }

    /// What `op`'s next store call, made by `actor` as `call` says against
    /// `store`, gives (`lost`: a crash dropped the caller's unflushed
    /// appends): the operation fed the store's reply, its result if it
    /// ended, and what the call did to the store. `None` when the call is
    /// not enabled. It reads nothing else of the state, so it can be
    /// memoized.
    fn answer<O: Machine>(
        &self,
        op: &Hashed<O>,
        store: Hashed<ModelStore>,
        actor: Actor,
        call: Call,
        (lost, stale): (bool, bool),
        words: &mut Narration,
    ) -> Option<Answer<O>> {
        let Step::Request(request) = op.poll() else {
            return None;
        };
        let who = || match actor {
            Actor::Producer(p) => format!("producer {p}"),
            Actor::Sweeper => "the sweeper".to_owned(),
        };
        let mut read_something = false;
        let mut probe_compacted = false;
        let (reply, made, effect) = match &request {
            StoreRequest::Read {
                stream,
                offset,
                limit,
            } => {
                if !matches!(call, Call::Normal | Call::StaleRead) {
                    return None;
                }
                let entries = store.read(stream, *offset, *limit);
                read_something = !entries.is_empty();
                probe_compacted = entries
                    .first()
                    .is_some_and(|entry| entry.sequence > *offset);
                words.say(|| {
                    format!(
                        "{} reads {} from {offset} ({} entries)",
                        who(),
                        stream,
                        entries.len()
                    )
                });
                (StoreReply::Read(Ok(entries)), Made::Read, Effect::Nothing)
            }
            StoreRequest::Scan { prefix } => {
                if !matches!(call, Call::Normal | Call::StaleRead) {
                    return None;
                }
                words.say(|| format!("{} scans {prefix:?}", who()));
                let reply = StoreReply::Scan(Ok(store.scan(prefix)));
                (reply, Made::Other, Effect::Nothing)
            }
            StoreRequest::ReadHead { stream } => {
                if !matches!(call, Call::Normal | Call::StaleRead) {
                    return None;
                }
                let head = store.head(stream);
                read_something = head.last.is_some();
                words.say(|| {
                    format!(
                        "{} reads the head of {stream} (length {})",
                        who(),
                        head.length
                    )
                });
                (StoreReply::Head(Ok(head)), Made::Read, Effect::Nothing)
            }
            StoreRequest::ScanHeads {
                prefix,
                after,
                limit,
            } => {
                if !matches!(call, Call::Normal | Call::StaleRead) {
                    return None;
                }
                words.say(|| format!("{} scans the heads under {prefix:?} after {after:?}", who()));
                let reply = StoreReply::Heads(Ok(store.heads(prefix, after.as_deref(), *limit)));
                (reply, Made::Other, Effect::Nothing)
            }
            StoreRequest::Compact { stream, below_seq } => {
                if call != Call::Normal {
                    return None;
                }
                if self.stream_index(stream).is_none() {
                    words.say(|| format!("{} compacts {stream}, which no key names", who()));
                    let refused = unexplained("a compaction of a stream no key of the model names");
                    (
                        StoreReply::Compact(Err(refused)),
                        Made::Other,
                        Effect::Unexplained,
                    )
                } else {
                    let mut removed = 0;
                    let after = store.with(|store| removed = store.compact(stream, *below_seq));
                    words.say(|| {
                        format!(
                            "{} compacts {stream} below {below_seq}: {removed} removed",
                            who()
                        )
                    });
                    let effect = if removed > 0 {
                        Effect::Compacted { store: after }
                    } else {
                        Effect::Nothing
                    };
                    (StoreReply::Compact(Ok(removed)), Made::Other, effect)
                }
            }
            StoreRequest::Flush => {
                if call != Call::Normal {
                    return None;
                }
                let mut session = Session {
                    unflushed: false,
                    lost,
                    stale: false,
                };
                let result = session.flush();
                let effect = match result {
                    Ok(()) => Effect::Flushed {
                        store: store.with(ModelStore::make_durable),
                    },
                    Err(_) => Effect::FlushFailed,
                };
                words.say(|| format!("{} flushes: {result:?}", who()));
                (StoreReply::Flush(result), Made::Other, effect)
            }
            StoreRequest::Append {
                stream,
                payload,
                expected_seq,
            } => 'append: {
                let Some(index) = self.stream_index(stream) else {
                    if call != Call::Normal {
                        return None;
                    }
                    words.say(|| {
                        format!(
                            "{} appends to {stream}, which no key of the model names",
                            who()
                        )
                    });
                    let refused = unexplained("an append to a stream no key of the model names");
                    let made = Made::Append {
                        seq: *expected_seq,
                        applied: false,
                    };
                    break 'append (StoreReply::Append(Err(refused)), made, Effect::Unexplained);
                };
                let apply = match call {
                    Call::Normal => true,
                    Call::AppendFailsApplied => store.would_apply(stream, *expected_seq),
                    Call::AppendFailsNotApplied => false,
                    Call::StaleRead => return None,
                };
                if call == Call::AppendFailsApplied && !apply {
                    return None;
                }
                let (result, effect) = if apply {
                    self.append_to(store, actor, index, stream, payload, *expected_seq)
                } else {
                    (Ok(*expected_seq), Effect::Nothing)
                };
                let made = Made::Append {
                    seq: *expected_seq,
                    applied: matches!(effect, Effect::Appended { .. }),
                };
                let summary = || {
                    record::decode(payload)
                        .map_or_else(|_| "garbage".to_owned(), |r| show_record(&r))
                };
                let reply = match (call, result) {
                    (Call::Normal, result) => {
                        words.say(|| {
                            format!(
                                "{} appends {} at seq {expected_seq}: {result:?}",
                                who(),
                                summary()
                            )
                        });
                        result
                    }
                    (Call::AppendFailsApplied, _) => {
                        words.say(|| format!("{} appends {} at seq {expected_seq}: applied, but answered with an error", who(), summary()));
                        Err(injected_error())
                    }
                    (Call::AppendFailsNotApplied | Call::StaleRead, _) => {
                        words.say(|| format!("{} appends {} at seq {expected_seq}: not applied, answered with an error", who(), summary()));
                        Err(injected_error())
                    }
                };
                (StoreReply::Append(reply), made, effect)
            }
        };
        // A stale read: the same request served from an older view of the
        // store, the newest entry of each stream not there yet (the
        // harness's one fault table, `verify::table`, serves it). Where that
        // view is the same as the latest, the call is not a fault and is
        // not enabled (the normal call covers it, with the budget kept).
        let reply = if call == Call::StaleRead {
            let stale = store.table.view(&request, CallFault::StaleBy(STALE_BY))?;
            if stale == reply {
                return None;
            }
            words.say(|| {
                format!(
                    "{} is served an older view of the store: the newest entry of each stream \
                     is not there yet",
                    who()
                )
            });
            stale
        } else {
            reply
        };
        let before = op;
        let op = op.with(|op| op.feed(reply));
        // `is_done` first: `poll` builds the next request, which is wanted
        // only at the next step.
        let result = match op.is_done().then(|| op.poll()) {
            Some(Step::Done(result)) => {
                words.ended(&result);
                Some(result)
            }
            Some(Step::Request(_)) | None => None,
        };
        let read = matches!(
            request,
            StoreRequest::Read { .. }
                | StoreRequest::Scan { .. }
                | StoreRequest::ReadHead { .. }
                | StoreRequest::ScanHeads { .. }
        );
        let settled = (O::SETTLES
            && read
            && !op.is_done()
            && matches!(op.poll(), Step::Request(StoreRequest::Flush)))
        .then(|| settle(op, &store));
        let flags = if O::SETTLES {
            let decision = settled
                .filter(|settled| settled.is_done())
                .and_then(|settled| match settled.poll() {
                    Step::Done(result) => Some(result),
                    Step::Request(_) => None,
                });
            let (after, appended) = match &effect {
                Effect::Appended {
                    store,
                    index,
                    expected_seq,
                    ..
                } => (*store, Some((*index, *expected_seq))),
                Effect::Flushed { store } | Effect::Compacted { store } => (*store, None),
                _ => (store, None),
            };
            let call = Judged {
                before: &**before,
                store: &after,
                appended,
                decided: if read {
                    result.as_ref().or(decision.as_ref())
                } else {
                    None
                },
                ended: if read { None } else { result.as_ref() },
                // A read that ends the operation after reading records is
                // the re-read after its flush (a first read of records
                // flushes them before deciding).
                reread: read_something && decision.is_none() && result.is_some(),
                flushed: matches!(request, StoreRequest::Flush),
            };
            let flags = O::judge(self, &call);
            // An operation served a stale read may answer from a state the
            // key already left without writing anything: no engine can tell
            // from the snapshot alone, and the fenced API does not promise
            // otherwise (README, "The fenced API"; the simulator's and the
            // fuzzer's checkers exempt such answers alike). Its appends are
            // still judged (each is conditioned on the stream's length), and
            // so is everything the step checks beside the judge (S1, S3, S5
            // and A1 on grants, receipts and deliveries).
            // (S8 too: a stale view's head may be older than a damaged one.)
            if stale && appended.is_none() {
                flags
                    & !(violation_bit(Invariant::S2)
                        | violation_bit(Invariant::S4)
                        | violation_bit(Invariant::S7)
                        | violation_bit(Invariant::S8))
            } else {
                flags
            }
        } else {
            0
        };
        Some(Answer {
            op,
            result,
            made,
            effect,
            settled,
            flags,
            probe_compacted,
        })
    }
}
