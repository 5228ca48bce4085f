//! Judging a fenced run against `docs/spec.md` ("Fenced API",
//! "Invariants"), by the oracle only: records are read with the reference
//! decoder ([`atmostonce_verify::oracle::record`]), streams named with
//! [`atmostonce_verify::oracle::naming`], expiry decided by
//! [`atmostonce_verify::oracle::expiry`], answers judged by the sequential
//! specification extended with tokens
//! ([`atmostonce_verify::oracle::fenced`]).
//!
//! - **S7** per key: the history is linearizable against the fenced
//!   specification (the oracle's search, [`linearize_checked`] over
//!   [`FencedHistoryOp`]); a stale token must be answered `StaleClaim`, a
//!   differing fingerprint `FingerprintMismatch`, a grant's fence is the
//!   sequence it lands at.
//! - **S5** from the store: every completion, holder's release and renewal
//!   was appended right after the claim record of its own claim id and
//!   fence; a stale token never wrote.
//! - **S2** from the store: a receipt is followed only by the sweeper's
//!   release written after the receipt expired; **S1**: a grant lands only
//!   on an absent, released or expired key, and the sweeper expires only an
//!   expired claim.
//! - **S1/S4**: every acknowledged grant, renewal, completion and release is
//!   in the store (they are flushed before they are acknowledged, so a store
//!   crash cannot take them).
//! - **S6**: every stream holds version-2 records of the one key it is
//!   named after; **S8**: every record the engine wrote decodes, and a
//!   record the program damaged with one bit flip never does.

use std::collections::BTreeMap;

use atmostonce_verify::catalogue::{Excused, Invariant, KnownCause, Verdict, Violation};
use atmostonce_verify::oracle::expiry::is_expired;
use atmostonce_verify::oracle::fenced::{
    FencedAnswer, FencedHistoryOp, FencedOp, FencedParams, FencedResponse, FencedState,
};
use atmostonce_verify::oracle::linear::linearize_checked;
use atmostonce_verify::oracle::naming::stream_name_with_hash_bits;
use atmostonce_verify::oracle::record::{Record, ReleaseReason, decode};
use atmostonce_verify::table::FaultTable;

use crate::history::{MAX_EVENTS_PER_KEY, Shown, search_verdict};

/// One fenced operation on one key, as invoked and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedEvent {
    /// The idempotency key.
    pub key: String,
    /// The key's stream.
    pub stream: String,
    /// The operation, as the oracle names it.
    pub op: FencedOp,
    /// Logical time of the invocation.
    pub invoked_tick: u64,
    /// Logical time of the answer (`>= invoked_tick`).
    pub responded_tick: u64,
    /// What the engine answered, in the oracle's terms.
    pub observed: FencedResponse,
    /// The key's stream held another key's records when the answer came.
    pub stream_shared: bool,
    /// A claim or lookup that was served a stale read (an older snapshot)
    /// and answered with no append of its own landed: its answer may
    /// describe a state the key had already left, which no engine can tell
    /// from the snapshot alone ([`KnownCause::StaleRead`]). Token
    /// operations never are: a view that ends before the token's own
    /// record is provably stale, and one that holds it decides correctly.
    pub stale_read_only: bool,
}

/// A stored record the program damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// Its bytes as the engine appended them.
    pub original: Vec<u8>,
    /// True when it was damaged once, by one bit flip: CRC32C then rejects
    /// it for certain (`docs/record-format.md`, S8).
    pub one_bit_flip: bool,
}

/// A fenced run to judge.
#[derive(Debug, Clone)]
pub struct FencedHistory {
    /// The namespace the streams are in.
    pub namespace: String,
    /// The key-hash width of the stream names.
    pub hash_bits: u8,
    /// The lease and receipt TTL.
    pub params: FencedParams,
    /// Every operation, in any order.
    pub events: Vec<FencedEvent>,
    /// The records the program damaged, by stream and sequence.
    pub damaged: BTreeMap<(String, u64), Damaged>,
}

/// A stream's records as the reference decoder reads them; `None` for a
/// damaged one.
type Records = Vec<Option<Record>>;

/// Judges a fenced run. `Ok` is a passing verdict; its `excused` list is
/// empty unless a violation goes away once the answers marked
/// [`FencedEvent::stale_read_only`] are left out (then it names
/// [`KnownCause::StaleRead`]). The store's invariants (S1, S2, S5, S6, S8)
/// and every other answer are never excused.
pub fn verify_fenced(history: &FencedHistory, table: &FaultTable) -> Result<Verdict, Violation> {
    let streams = read_streams(history, table)?;
    for (stream, records) in &streams {
        check_writes(stream, records, &history.params)?;
    }
    let strict = match check_answers(history, &streams, false) {
        Ok(()) => return Ok(Verdict::default()),
        Err(violation) => violation,
    };
    let stale = history.events.iter().any(|event| event.stale_read_only);
    if strict.invariant == Invariant::Internal || !stale {
        return Err(strict);
    }
    check_answers(history, &streams, true)?;
    Ok(Verdict {
        violations: Vec::new(),
        excused: vec![Excused {
            cause: KnownCause::StaleRead,
            violation: strict,
        }],
        notes: (),
    })
}

/// S7, S1 and S4 per key, leaving out the stale read-only answers if
/// `exempt_stale`.
fn check_answers(
    history: &FencedHistory,
    streams: &BTreeMap<String, Records>,
    exempt_stale: bool,
) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&FencedEvent>> = BTreeMap::new();
    for event in &history.events {
        if !(exempt_stale && event.stale_read_only) {
            by_key.entry(&event.key).or_default().push(event);
        }
    }
    for (key, events) in by_key {
        check_linearizable(key, &events, &history.params)?;
        let records = events
            .first()
            .and_then(|event| streams.get(&event.stream))
            .map_or(&[][..], Vec::as_slice);
        check_acknowledged(key, &events, records)?;
    }
    Ok(())
}

fn violation(invariant: Invariant, key: &str, detail: String) -> Violation {
    Violation::new(invariant, Some(key.to_owned()), detail)
}

/// Every stream, decoded; S6 and S8 on the way.
fn read_streams(
    history: &FencedHistory,
    table: &FaultTable,
) -> Result<BTreeMap<String, Records>, Violation> {
    let mut streams = BTreeMap::new();
    for stream in table.stream_names() {
        let mut records = Vec::new();
        let mut owner: Option<String> = None;
        // The history, compacted records included: records are judged
        // against the one before them and tokens found by their fence, so
        // a record's position must be its sequence.
        for entry in table.history(stream) {
            if entry.sequence != records.len() as u64 {
                return Err(violation(
                    Invariant::Internal,
                    stream,
                    format!(
                        "the table's history of the stream holds sequence {} at position {}",
                        entry.sequence,
                        records.len()
                    ),
                ));
            }
            let decoded = decode(&entry.payload);
            let damage = history
                .damaged
                .get(&(stream.to_owned(), entry.sequence))
                .filter(|damaged| damaged.original != entry.payload);
            let record = match (decoded, damage) {
                (Ok(record), Some(damaged)) if damaged.one_bit_flip => {
                    return Err(violation(
                        Invariant::S8,
                        stream,
                        format!(
                            "record {} with one bit flipped still decodes, as {record:?}",
                            entry.sequence
                        ),
                    ));
                }
                (_, Some(_)) => {
                    records.push(None);
                    continue;
                }
                (Err(error), None) => {
                    return Err(violation(
                        Invariant::S8,
                        stream,
                        format!(
                            "record {} the engine wrote does not decode: {error}",
                            entry.sequence
                        ),
                    ));
                }
                (Ok(record), None) => record,
            };
            let key = record.key().to_owned();
            if !record.is_v2() {
                return Err(violation(
                    Invariant::S6,
                    stream,
                    format!(
                        "record {} is a version-1 record; the fenced API writes version 2",
                        entry.sequence
                    ),
                ));
            }
            if stream_name_with_hash_bits(&history.namespace, &key, history.hash_bits) != stream {
                return Err(violation(
                    Invariant::S6,
                    stream,
                    format!(
                        "record {} belongs to key {key:?}, named to another stream",
                        entry.sequence
                    ),
                ));
            }
            match &owner {
                Some(first) if *first != key => {
                    return Err(violation(
                        Invariant::S6,
                        stream,
                        format!("records of keys {first:?} and {key:?} are mixed"),
                    ));
                }
                _ => owner = Some(key),
            }
            records.push(Some(record));
        }
        streams.insert(stream.to_owned(), records);
    }
    Ok(streams)
}

/// True when `record` is the claim record of claim `claim_id` with `fence`.
fn is_claim_of(
    record: &Record,
    id: &atmostonce_verify::oracle::record::ClaimId,
    of_fence: u64,
) -> bool {
    matches!(record, Record::Claim { claim_id, fence, .. } if claim_id == id && *fence == of_fence)
}

/// S5, S2 and S1 from the store: each record is one the specification lets
/// follow the record before it.
fn check_writes(stream: &str, records: &Records, params: &FencedParams) -> Result<(), Violation> {
    for (index, pair) in records.iter().enumerate() {
        let sequence = index as u64;
        let Some(record) = pair else { continue };
        let previous = match index.checked_sub(1).map(|before| &records[before]) {
            Some(None) => continue,
            Some(Some(previous)) => Some(previous),
            None => None,
        };
        let fail = |invariant: Invariant, why: &str| {
            Err(violation(
                invariant,
                stream,
                format!("record {sequence} {record:?} {why}; the record before is {previous:?}"),
            ))
        };
        match record {
            Record::Claim {
                fence,
                claimed_at_millis,
                ..
            } if *fence == sequence => {
                let free = match previous {
                    None | Some(Record::Release { .. } | Record::V1Tombstone { .. }) => true,
                    Some(Record::Claim {
                        lease_expires_millis,
                        ..
                    }) => is_expired(*lease_expires_millis, 0, *claimed_at_millis),
                    Some(Record::Completion {
                        completed_at_millis,
                        ..
                    }) => is_expired(
                        *completed_at_millis,
                        params.receipt_ttl_ms,
                        *claimed_at_millis,
                    ),
                    Some(Record::V1Entry { .. }) => false,
                };
                if !free {
                    return fail(Invariant::S1, "grants a key that was held or completed");
                }
            }
            Record::Claim {
                claim_id, fence, ..
            } if *fence < sequence => {
                if !previous.is_some_and(|p| is_claim_of(p, claim_id, *fence)) {
                    return fail(
                        Invariant::S5,
                        "renews a claim that was not the current record",
                    );
                }
            }
            Record::Claim { .. } => {
                return fail(Invariant::S1, "has a fence after its own sequence");
            }
            Record::Completion {
                claim_id, fence, ..
            } => {
                if matches!(previous, Some(Record::Completion { .. })) {
                    return fail(Invariant::S2, "replaces a receipt");
                }
                if !previous.is_some_and(|p| is_claim_of(p, claim_id, *fence)) {
                    return fail(
                        Invariant::S5,
                        "completes a claim that was not the current record",
                    );
                }
            }
            Record::Release {
                claim_id,
                fence,
                reason: ReleaseReason::Holder,
                ..
            } => {
                if matches!(previous, Some(Record::Completion { .. })) {
                    return fail(Invariant::S2, "releases a receipt");
                }
                if !previous.is_some_and(|p| is_claim_of(p, claim_id, *fence)) {
                    return fail(
                        Invariant::S5,
                        "releases a claim that was not the current record",
                    );
                }
            }
            Record::Release {
                claim_id,
                fence,
                released_at_millis,
                reason: ReleaseReason::Expired,
                ..
            } => match previous {
                Some(Record::Completion {
                    claim_id: held,
                    fence: held_fence,
                    completed_at_millis,
                    ..
                }) => {
                    if !is_expired(
                        *completed_at_millis,
                        params.receipt_ttl_ms,
                        *released_at_millis,
                    ) {
                        return fail(Invariant::S2, "expires a receipt before its TTL passed");
                    }
                    if held != claim_id || held_fence != fence {
                        return fail(Invariant::S5, "names another claim than the receipt's");
                    }
                }
                Some(Record::Claim {
                    lease_expires_millis,
                    ..
                }) => {
                    if !is_expired(*lease_expires_millis, 0, *released_at_millis) {
                        return fail(Invariant::S1, "expires a claim before its lease passed");
                    }
                    if !previous.is_some_and(|p| is_claim_of(p, claim_id, *fence)) {
                        return fail(Invariant::S5, "names another claim than the one it ends");
                    }
                }
                _ => return fail(Invariant::S1, "expires what was no claim and no receipt"),
            },
            Record::V1Entry { .. } | Record::V1Tombstone { .. } => {
                return fail(Invariant::S6, "is a version-1 record");
            }
        }
    }
    Ok(())
}

/// S1 and S4: every acknowledged write of `key` is in its stream (unless a
/// damaged record may be it), and no two grants share a fence.
fn check_acknowledged(
    key: &str,
    events: &[&FencedEvent],
    records: &[Option<Record>],
) -> Result<(), Violation> {
    let damaged = records.iter().any(Option::is_none);
    let stored = |found: &dyn Fn(&Record) -> bool| damaged || records.iter().flatten().any(found);
    let mut fences: BTreeMap<u64, &FencedEvent> = BTreeMap::new();
    for event in events {
        let present = match (&event.op, &event.observed) {
            (_, Ok(FencedAnswer::Granted(token))) => {
                if let Some(other) = fences.insert(token.fence, event) {
                    return Err(violation(
                        Invariant::S1,
                        key,
                        format!(
                            "two grants share fence {}: {other:?} and {event:?}",
                            token.fence
                        ),
                    ));
                }
                let index = usize::try_from(token.fence).unwrap_or(usize::MAX);
                match records.get(index) {
                    Some(Some(record)) => is_claim_of(record, &token.claim_id, token.fence),
                    Some(None) => true,
                    None => false,
                }
            }
            (_, Ok(FencedAnswer::Renewed(token))) => stored(&|record| {
                is_claim_of(record, &token.claim_id, token.fence)
                    && matches!(record, Record::Claim { lease_expires_millis, .. }
                        if *lease_expires_millis == token.lease_expires_millis)
            }),
            (FencedOp::Complete { token, receipt, .. }, Ok(FencedAnswer::Done)) => {
                stored(&|record| {
                    matches!(record, Record::Completion { claim_id, receipt: stored, .. }
                        if *claim_id == token.claim_id && stored == receipt.as_bytes())
                })
            }
            (FencedOp::Release { token, .. }, Ok(FencedAnswer::Done)) => stored(
                &|record| matches!(record, Record::Release { claim_id, .. } if *claim_id == token.claim_id),
            ),
            _ => true,
        };
        if !present {
            return Err(violation(
                Invariant::S4,
                key,
                format!("an acknowledged write is not in the store: {event:?}"),
            ));
        }
    }
    Ok(())
}

/// S7: the oracle's search over the key's events.
fn check_linearizable(
    key: &str,
    events: &[&FencedEvent],
    params: &FencedParams,
) -> Result<(), Violation> {
    if events.len() > MAX_EVENTS_PER_KEY {
        return Err(violation(
            Invariant::S7,
            key,
            format!(
                "{} operations on one key, more than the checker's {MAX_EVENTS_PER_KEY}",
                events.len()
            ),
        ));
    }
    let history: Vec<FencedHistoryOp<'_>> = events
        .iter()
        .map(|event| FencedHistoryOp {
            op: &event.op,
            invoked_at: event.invoked_tick,
            answered_at: Some(event.responded_tick),
            answer: Some(&event.observed),
            stream_shared: event.stream_shared,
            params: *params,
        })
        .collect();
    let shown: Vec<Shown> = events
        .iter()
        .map(|event| Shown {
            invoked_tick: event.invoked_tick,
            responded_tick: event.responded_tick,
            line: format!(
                "[{}..{}] {:?} -> {:?}",
                event.invoked_tick, event.responded_tick, event.op, event.observed
            ),
        })
        .collect();
    search_verdict(
        key,
        linearize_checked(&history, FencedState::default()),
        &shown,
    )
}
