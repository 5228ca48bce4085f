//! The oracle's judgement of one store call of a fenced operation: every
//! record it appends must be a step of the fenced sequential specification
//! (`verify::oracle::fenced`) from the key's state, every answer one the
//! specification gives, and every acknowledged write must have landed.
//!
//! A judgement depends only on the operation, the store and the call, so
//! it is computed with the call's answer and memoized with it (see
//! [`crate::memo`]). Records are read with the oracle's reference decoder
//! (`oracle::record`), never the engine's codec.
//!
//! Linearization points. The fenced operations read a key's whole stream,
//! flush it, then decide: an answer decided on a read is judged against
//! the store that read returned, in the step of the read (the operation's
//! decision is taken from the operation itself, fed a successful flush;
//! see `Answer::settled`). An acknowledged write is judged by its record,
//! which the judgement of its append already checked.

use atmostonce::DurabilityError;
use atmostonce::core::Operation;
use atmostonce::core::fenced::{
    Claim, ClaimToken, FencedClaimOp, FencedCompleteOp, FencedReleaseOp, FencedSweepOp,
};
use atmostonce_verify::catalogue::Invariant;
use atmostonce_verify::oracle::ErrorClass;
use atmostonce_verify::oracle::fenced::{
    Current, FencedAnswer, FencedError, FencedOp as SpecOp, FencedParams, FencedResponse,
    FencedState, Token,
};
use atmostonce_verify::oracle::record::{self, ClaimId, Record};
use atmostonce_verify::oracle::spec::Judgement;

use crate::config::{LEASE_MS, TTL_MS};
use crate::model::DedupModel;
use crate::state::violation_bit;
use crate::store::ModelStore;

/// The fenced cache's settings as the oracle knows them (the model's own
/// constants, not read from the engine).
pub(crate) const PARAMS: FencedParams = FencedParams {
    lease_ms: LEASE_MS,
    receipt_ttl_ms: TTL_MS,
};

/// One store call to judge.
pub(crate) struct Judged<'a, O: Operation> {
    /// The operation before the call.
    pub(crate) before: &'a O,
    /// The store after the call.
    pub(crate) store: &'a ModelStore,
    /// The stream index and sequence of the record the call appended.
    pub(crate) appended: Option<(usize, u64)>,
    /// The operation's answer decided on the store this call read.
    pub(crate) decided: Option<&'a Result<O::Output, DurabilityError>>,
    /// The operation's answer, when it ended in a call that was not a read.
    pub(crate) ended: Option<&'a Result<O::Output, DurabilityError>>,
    /// The call was a flush.
    pub(crate) flushed: bool,
    /// The call was the re-read after a flush, which ended the operation
    /// with the decision it took on its first read (judged there).
    pub(crate) reread: bool,
}

/// How an answer is judged.
pub(crate) enum Observed {
    /// By the sequential specification, from the key's state.
    Answer(FencedResponse),
    /// An acknowledged write: its own record must be in the key's stream.
    Landed(Landing),
    /// Nothing to judge (a sweep's report).
    Nothing,
}

/// The record an acknowledged write must have left.
pub(crate) enum Landing {
    /// A grant: at the token's sequence, a claim with the operation's own
    /// claim id (`own`), and the token's fence that sequence.
    Claim {
        own: ClaimId,
        token: Token,
        sequence: u64,
    },
    /// A completion of claim `claim` with `receipt`.
    Completion { claim: ClaimId, receipt: Vec<u8> },
    /// A release (or the sweeper's expiry) of claim `claim`.
    Release { claim: ClaimId },
}

/// A fenced operation, as the oracle sees it.
pub(crate) trait Oracled: Operation {
    /// The key it acts on (`None`: the sweeper, which acts on the key of
    /// the record it appends).
    fn key(&self) -> Option<&str>;
    /// The specification's operation.
    fn spec_op(&self) -> SpecOp;
    /// How its answer is judged.
    fn observe(&self, result: &Result<Self::Output, DurabilityError>) -> Observed;
}

/// The oracle's class of an engine error (`docs/spec.md`, "Error classes").
fn classify(error: &DurabilityError) -> FencedError {
    match error {
        DurabilityError::StaleClaim { .. } => FencedError::StaleClaim,
        DurabilityError::FingerprintMismatch { .. } => FencedError::FingerprintMismatch,
        _ => match ErrorClass::of(error) {
            ErrorClass::Indeterminate => FencedError::Indeterminate,
            ErrorClass::NoEffect => FencedError::NoEffect,
            ErrorClass::Collision => FencedError::Collision,
            ErrorClass::Unclassified => FencedError::Unclassified,
        },
    }
}

fn oracle_id(id: atmostonce::codec::ClaimId) -> ClaimId {
    ClaimId(*id.as_bytes())
}

fn oracle_token(token: &ClaimToken) -> Token {
    Token {
        claim_id: oracle_id(token.claim_id()),
        fence: token.fence(),
        lease_expires_millis: token.lease_expires_millis(),
    }
}

fn error_or(result: &Result<(), DurabilityError>, landing: impl FnOnce() -> Landing) -> Observed {
    match result {
        Ok(()) => Observed::Landed(landing()),
        Err(error) => Observed::Answer(Err(classify(error))),
    }
}

impl Oracled for FencedClaimOp {
    fn key(&self) -> Option<&str> {
        Some(&self.target().key)
    }

    fn spec_op(&self) -> SpecOp {
        SpecOp::Claim {
            now_millis: self.rule().now_millis,
            fingerprint: self.rule().fingerprint.clone(),
        }
    }

    fn observe(&self, result: &Result<Claim, DurabilityError>) -> Observed {
        match result {
            Ok(Claim::Granted(token)) => Observed::Landed(Landing::Claim {
                own: oracle_id(self.rule().claim_id),
                token: oracle_token(token),
                sequence: token.sequence(),
            }),
            Ok(Claim::InFlight {
                lease_expires_millis,
                ..
            }) => Observed::Answer(Ok(FencedAnswer::InFlight {
                lease_expires_millis: *lease_expires_millis,
            })),
            Ok(Claim::Completed(receipt)) => {
                Observed::Answer(Ok(FencedAnswer::Completed(receipt.clone())))
            }
            Ok(_) => Observed::Answer(Err(FencedError::Unclassified)),
            Err(error) => Observed::Answer(Err(classify(error))),
        }
    }
}

impl Oracled for FencedCompleteOp {
    fn key(&self) -> Option<&str> {
        Some(&self.target().key)
    }

    fn spec_op(&self) -> SpecOp {
        SpecOp::Complete {
            token: oracle_token(&self.rule().token),
            receipt: self.rule().receipt.clone(),
            now_millis: self.rule().now_millis,
        }
    }

    fn observe(&self, result: &Result<(), DurabilityError>) -> Observed {
        error_or(result, || Landing::Completion {
            claim: oracle_id(self.rule().token.claim_id()),
            receipt: self.rule().receipt.as_bytes().to_vec(),
        })
    }
}

impl Oracled for FencedReleaseOp {
    fn key(&self) -> Option<&str> {
        Some(&self.target().key)
    }

    fn spec_op(&self) -> SpecOp {
        SpecOp::Release {
            token: oracle_token(&self.rule().token),
            now_millis: self.rule().now_millis,
        }
    }

    fn observe(&self, result: &Result<(), DurabilityError>) -> Observed {
        error_or(result, || Landing::Release {
            claim: oracle_id(self.rule().token.claim_id()),
        })
    }
}

impl Oracled for FencedSweepOp {
    fn key(&self) -> Option<&str> {
        None
    }

    fn spec_op(&self) -> SpecOp {
        SpecOp::Expire {
            now_millis: self.now_millis(),
        }
    }

    fn observe(&self, _: &Result<Self::Output, DurabilityError>) -> Observed {
        Observed::Nothing
    }
}

/// The invariants `call` violates, as bits of [`violation_bit`].
pub(crate) fn judge<O: Oracled>(model: &DedupModel, call: &Judged<'_, O>) -> u16 {
    let mut flags = 0;
    if let Some((index, sequence)) = call.appended {
        flags |= judge_append(model, call.before, call.store, index, sequence);
    }
    if let Some(result) = call.decided {
        let judged_at_first_read = call.reread
            && matches!(call.before.observe(result), Observed::Answer(response)
                if matches!(response, Ok(_)
                    | Err(FencedError::StaleClaim | FencedError::FingerprintMismatch)));
        if !judged_at_first_read {
            flags |= judge_answer(model, call.before, call.store, result, true);
        }
    }
    if let Some(result) = call.ended {
        // An answer decided on a read and given after the flush that
        // settled it was judged at that read.
        let settled = call.flushed
            && matches!(call.before.observe(result), Observed::Answer(response)
                if !matches!(response, Err(FencedError::Indeterminate
                    | FencedError::NoEffect
                    | FencedError::Unclassified)));
        if !settled {
            flags |= judge_answer(model, call.before, call.store, result, false);
        }
    }
    flags
}

/// Every record of stream `index` as it was appended, read with the
/// oracle's decoder: a damaged record as it was before the damage (the
/// key's state is what was written; `None` when one does not decode, which
/// the engine appended and its own judgement flags).
fn records(model: &DedupModel, store: &ModelStore, index: usize) -> Option<Vec<Record>> {
    let stream = model.stream_names().get(index)?;
    let meta = store.streams.get(index)?;
    // The whole history, compacted records included: the judge reads
    // records by position (sequence) and needs the one before an append.
    store
        .history(stream)
        .iter()
        .map(|entry| {
            let payload = meta.original(entry.sequence).unwrap_or(&entry.payload);
            record::decode(payload).ok()
        })
        .collect()
}

/// True when the head of stream `index` in `store` is a damaged record.
fn damaged_head(model: &DedupModel, store: &ModelStore, index: usize) -> bool {
    let (Some(stream), Some(meta)) = (model.stream_names().get(index), store.streams.get(index))
    else {
        return false;
    };
    store
        .head(stream)
        .last
        .is_some_and(|last| meta.is_damaged(last.sequence))
}

fn key_of(record: &Record) -> &str {
    match record {
        Record::V1Entry { key, .. }
        | Record::V1Tombstone { key, .. }
        | Record::Claim { key, .. }
        | Record::Completion { key, .. }
        | Record::Release { key, .. } => key,
    }
}

/// `key`'s state in the specification after `records` (a stream holding
/// them), and whether another key's records share the stream.
fn state_of(records: &[Record], key: &str) -> (FencedState, bool) {
    let shared = records.iter().any(|r| key_of(r) != key);
    let length = records.len() as u64;
    let state = match records.last() {
        Some(head) if key_of(head) == key => FencedState::after(head, length - 1, &PARAMS),
        _ => FencedState {
            next_sequence: length,
            ..FencedState::default()
        },
    };
    (state, shared)
}

/// S7 (and S5, S6) on the record appended at `sequence` of stream `index`.
fn judge_append<O: Oracled>(
    model: &DedupModel,
    op: &O,
    store: &ModelStore,
    index: usize,
    sequence: u64,
) -> u16 {
    let Some(records) = records(model, store, index) else {
        return violation_bit(Invariant::Internal);
    };
    let at = usize::try_from(sequence).unwrap_or(usize::MAX);
    let Some(new) = records.get(at) else {
        return violation_bit(Invariant::Internal);
    };
    let key = op.key().unwrap_or(key_of(new));
    let (state, shared) = state_of(&records[..at], key);
    if shared || key_of(new) != key {
        return violation_bit(Invariant::S6);
    }
    let granted = match new {
        Record::Claim { claim_id, .. } => Some(*claim_id),
        _ => None,
    };
    let (next, response) = state.apply(&op.spec_op(), &PARAMS, granted);
    // S2: a stored receipt is followed only by what the specification
    // allows once it has expired.
    let receipt = if matches!(state.current, Current::Completion { .. }) {
        violation_bit(Invariant::S2)
    } else {
        0
    };
    let wrong = match response {
        Err(FencedError::StaleClaim) => violation_bit(Invariant::S5) | violation_bit(Invariant::S7),
        Err(_) => violation_bit(Invariant::S7),
        // The record decides the state; the key's past completions, which
        // the stored head alone cannot tell, are not compared.
        Ok(_) if !same_record_state(&next, &FencedState::after(new, sequence, &PARAMS)) => {
            violation_bit(Invariant::S7)
        }
        Ok(_) => 0,
    };
    if wrong == 0 { 0 } else { wrong | receipt }
}

/// S7 (and S5, S6) on an answer of `op`, given on `store`.
fn judge_answer<O: Oracled>(
    model: &DedupModel,
    op: &O,
    store: &ModelStore,
    result: &Result<O::Output, DurabilityError>,
    at_read: bool,
) -> u16 {
    let Some(key) = op.key() else { return 0 };
    let Some(index) = model.key_index(key).map(|k| model.stream_of(k)) else {
        return violation_bit(Invariant::Internal);
    };
    // An answer decided on a read of a damaged head is an error that
    // claims nothing (the envelope error naming it, whose naming every
    // call checks, see `DedupModel::call`, or an indeterminate one, as
    // when the head's bytes changed under the operation's last flush
    // round), never an answer from what the damage made of the record
    // (S8: the checksum rejects every flipped bit).
    if at_read && damaged_head(model, store, index) {
        let claims_nothing = matches!(
            op.observe(result),
            Observed::Answer(Err(FencedError::Indeterminate | FencedError::NoEffect))
        );
        if !claims_nothing {
            return violation_bit(Invariant::S7) | violation_bit(Invariant::S8);
        }
    }
    let Some(records) = records(model, store, index) else {
        return violation_bit(Invariant::Internal);
    };
    match op.observe(result) {
        Observed::Nothing => 0,
        Observed::Landed(landing) => {
            if landed(&records, key, &landing) {
                return 0;
            }
            match landing {
                Landing::Claim { .. } => violation_bit(Invariant::S7),
                // A completion or release acknowledged without its record:
                // a token that completed or released nothing said it did.
                Landing::Completion { .. } | Landing::Release { .. } => {
                    violation_bit(Invariant::S5) | violation_bit(Invariant::S7)
                }
            }
        }
        Observed::Answer(Err(FencedError::Unclassified)) => violation_bit(Invariant::Internal),
        Observed::Answer(Err(FencedError::Indeterminate | FencedError::NoEffect)) if !at_read => 0,
        Observed::Answer(response) => {
            let (state, shared) = state_of(&records, key);
            match state.judge(&op.spec_op(), &response, &PARAMS, shared) {
                Judgement::Admissible(_) if shared && response.is_ok() => {
                    violation_bit(Invariant::S6)
                }
                Judgement::Admissible(_) => 0,
                Judgement::Inadmissible { expected }
                    if expected == Err(FencedError::StaleClaim) && response.is_ok() =>
                {
                    violation_bit(Invariant::S5) | violation_bit(Invariant::S7)
                }
                Judgement::Inadmissible { .. } => violation_bit(Invariant::S7),
                Judgement::Unexplained { .. } => violation_bit(Invariant::Internal),
            }
        }
    }
}

/// True when `records` (of `key`'s stream) hold the record `landing` says.
fn landed(records: &[Record], key: &str, landing: &Landing) -> bool {
    match landing {
        Landing::Claim {
            own,
            token,
            sequence,
        } => {
            token.claim_id == *own
                && token.fence == *sequence
                && usize::try_from(*sequence)
                    .ok()
                    .and_then(|at| records.get(at))
                    .is_some_and(|record| {
                        matches!(record, Record::Claim { key: k, claim_id, fence, lease_expires_millis, .. }
                            if k == key && claim_id == own && *fence == token.fence
                                && *lease_expires_millis == token.lease_expires_millis)
                    })
        }
        Landing::Completion { claim, receipt } => records.iter().any(|record| {
            matches!(record, Record::Completion { key: k, claim_id, receipt: stored, .. }
                if k == key && claim_id == claim && stored == receipt)
        }),
        Landing::Release { claim } => records.iter().any(|record| {
            matches!(record, Record::Release { key: k, claim_id, .. } if k == key && claim_id == claim)
        }),
    }
}

/// Whether two states have the same current record and length.
fn same_record_state(a: &FencedState, b: &FencedState) -> bool {
    a.current == b.current && a.next_sequence == b.next_sequence
}
